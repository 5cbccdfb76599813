"""The user's SSH key: theirs if they have one, else one devenv generates for them."""

from __future__ import annotations

import stat
from pathlib import Path

from pydantic import BaseModel

from devenv.errors import UserError
from devenv.keys import ensure_keypair, public_key_line
from devenv.settings import Settings

USER_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
MAX_PUBLIC_KEY_BYTES = 16_384


class UserKey(BaseModel):
    private_key: Path
    public_key: str


def user_key(settings: Settings) -> UserKey:
    """~/.ssh/id_ed25519 (or ecdsa, rsa) if both halves exist, else one under DEVENV_HOME."""
    ssh_dir = Path.home() / ".ssh"
    for name in USER_KEY_NAMES:
        private, public = ssh_dir / name, ssh_dir / f"{name}.pub"
        if private.is_file() and public.is_file():
            _check_private_key_mode(private)
            return UserKey(private_key=private, public_key=canonical_public_key(public))
    key = ensure_keypair(settings.generated_user_key, comment="devenv-user")
    return UserKey(private_key=settings.generated_user_key, public_key=public_key_line(key))


def canonical_public_key(path: Path) -> str:
    """The one key in ``path`` as a single ``type base64 comment`` line.

    The line ends up in the instance's authorized keys: a second line (or leading
    options such as ``devenv-internal``) in a ``.pub`` file would otherwise let
    another key in, or let the user's key pose as devenv's internal key.
    """
    try:
        if path.stat().st_size > MAX_PUBLIC_KEY_BYTES:
            raise UserError(f"{path}: {path.stat().st_size:,} bytes is not an SSH public key")
        text = path.read_text(encoding="utf-8")
    except OSError as problem:
        reason = problem.strerror or type(problem).__name__
        raise UserError(f"{path}: cannot read the SSH public key ({reason})") from None
    except UnicodeDecodeError:  # its message quotes the bytes: never a file's content
        raise UserError(f"{path}: not an SSH public key (not UTF-8 text)") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise UserError(
            f"{path}: expected exactly one OpenSSH public key line, found {len(lines)}; "
            "keep one key per .pub file"
        )
    import asyncssh  # lazily: commands that need no key must not pay its import

    try:
        key = asyncssh.import_public_key(lines[0])
    except (asyncssh.KeyImportError, ValueError):
        raise UserError(
            f"{path}: not an OpenSSH public key line (expected 'ssh-ed25519 AAAA... comment')"
        ) from None
    return key.export_public_key().decode().strip()


def _check_private_key_mode(path: Path) -> None:
    """OpenSSH ignores a private key others can read; say so now, not at `ssh NAME`."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise UserError(
            f"{path}: private key is readable by others (mode {mode:04o}); "
            f"ssh refuses such keys: run `chmod 600 {path}`"
        )
