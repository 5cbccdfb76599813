"""SSH key material: generated once, 0600 files in 0700 folders, never logged."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from devenv.settings import Settings, SettingsError

if TYPE_CHECKING:  # asyncssh costs ~0.1 s to import: only the commands that need keys pay it
    import asyncssh

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def ensure_keypair(path: Path, comment: str = "devenv") -> asyncssh.SSHKey:
    """The ed25519 key at ``path`` (``path.pub`` beside it), created if missing.

    Both halves are written 0600 to a temporary name and renamed, so a crash never
    leaves half a key and no other user can read one even for a moment. An existing
    key whose mode was loosened is tightened again (OpenSSH would refuse it).
    """
    import asyncssh

    private_dir(path.parent)
    with file_lock(path):
        if path.exists():
            path.chmod(PRIVATE_FILE_MODE)
            return asyncssh.read_private_key(str(path))
        key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
        # Public half first: a private key is never left without its .pub.
        write_private_file(path.with_name(path.name + ".pub"), key.export_public_key())
        write_private_file(path, key.export_private_key())
        return key


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Serialise writers of ``path`` across processes (CLI and workers may race for it)."""
    fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()  # a stale one from a crashed process with the same pid
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def public_key_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


def ensure_internal_key(settings: Settings) -> asyncssh.SSHKey:
    """The control plane's key: the operator's shared file, or one generated under home.

    A shared file (DEVENV_INTERNAL_KEY_FILE) is never generated or rewritten: a typo
    must not give one worker a key the instances do not know.
    """
    import asyncssh

    path = settings.internal_key_file
    if path is None:
        return ensure_keypair(settings.internal_key, comment="devenv-internal")
    variable = "DEVENV_INTERNAL_KEY_FILE"
    try:
        mode = path.stat().st_mode & 0o777
        key = asyncssh.read_private_key(str(path))
    except (OSError, asyncssh.KeyImportError) as problem:
        raise SettingsError(
            f"{variable}: cannot use {str(path)!r} ({type(problem).__name__}): accepted: an "
            "unencrypted OpenSSH private key file, e.g. from `ssh-keygen -t ed25519 -N ''`"
        ) from None
    if mode & 0o077:
        raise SettingsError(
            f"{variable}: {str(path)!r} is readable by others (mode {mode:04o}); "
            f"run `chmod 600 {path}`"
        )
    return key


def internal_public_key(settings: Settings) -> str:
    """The public half that instances authorize, as one OpenSSH line."""
    return public_key_line(ensure_internal_key(settings))
