"""SSH key material: generated once, 0600 files in 0700 folders, never logged."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def ensure_keypair(path: Path, comment: str = "devenv") -> asyncssh.SSHKey:
    """The ed25519 key at ``path`` (``path.pub`` beside it), created if missing.

    Written to a temporary name and renamed, so a crash never leaves half a key.
    """
    private_dir(path.parent)
    if path.exists():
        return asyncssh.read_private_key(str(path))
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.export_private_key())
    os.replace(tmp, path)
    path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
    return key


def public_key_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()
