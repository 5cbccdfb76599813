"""Sharing an environment with colleagues: what the workflow accepts and what it tells the
instance. Pure functions (the workflow imports them): no I/O, no clock."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the local instance server imports this module: no pydantic there
    from devenv.models.state import SharedUser

MAX_SHARED = 50
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
KEY_LINE = re.compile(
    r"^(?P<type>ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)"
    r"|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)"
    r" (?P<blob>[A-Za-z0-9+/]+={0,3})(?: [^\r\n]*)?$"
)
"""One public key without options: a line with options (``command=...``) or a second line
could widen what the key may do on the instance, so it is refused."""
SHARED_MARK = "devenv-shared:"


def validate_shared(users: list[SharedUser], owner: str | None) -> None:
    """ValueError naming the first bad entry: a user name, a key, a duplicate, the owner."""
    if len(users) > MAX_SHARED:
        raise ValueError(f"shared_with: {len(users)} users; accepted: at most {MAX_SHARED}")
    seen: set[str] = set()
    for user in users:
        if not USER_NAME.fullmatch(user.name):
            raise ValueError(f"shared_with: {user.name[:40]!r} is not a user name")
        if user.name in seen:
            raise ValueError(f"shared_with: {user.name!r} is listed twice")
        if owner is not None and user.name == owner:
            raise ValueError(f"shared_with: {user.name!r} owns it already")
        if not KEY_LINE.fullmatch(user.public_key.strip()):
            raise ValueError(
                f"shared_with: the key of {user.name!r} is not one OpenSSH public key line"
            )
        seen.add(user.name)


def shared_key_line(user: SharedUser) -> str:
    """``TYPE BASE64 devenv-shared:NAME``: the instance accepts it and can tell it is a
    member's (and whose) from the comment; the user's own comment is dropped."""
    found = KEY_LINE.fullmatch(user.public_key.strip())
    assert found is not None, "validated when it was shared"
    return f"{found['type']} {found['blob']} {SHARED_MARK}{user.name}"
