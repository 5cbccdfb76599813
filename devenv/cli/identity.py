"""The user's SSH key: theirs if they have one, else one devenv generates for them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from devenv.keys import ensure_keypair, public_key_line
from devenv.settings import Settings

USER_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")


class UserKey(BaseModel):
    private_key: Path
    public_key: str


def user_key(settings: Settings) -> UserKey:
    """~/.ssh/id_ed25519 (or ecdsa, rsa) if both halves exist, else one under DEVENV_HOME."""
    ssh_dir = Path.home() / ".ssh"
    for name in USER_KEY_NAMES:
        private, public = ssh_dir / name, ssh_dir / f"{name}.pub"
        if private.is_file() and public.is_file():
            return UserKey(private_key=private, public_key=public.read_text().strip())
    key = ensure_keypair(settings.generated_user_key, comment="devenv-user")
    return UserKey(private_key=settings.generated_user_key, public_key=public_key_line(key))
