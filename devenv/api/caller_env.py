"""The values of bare ``env`` KEYs a remote caller sends beside its configuration.

The server never reads its own environment for them (that would hand the server's
credentials to whoever names them): a bare KEY the caller did not send is refused.
"""

from __future__ import annotations

from typing import Any

from devenv import wire
from devenv.api.errors import ApiError
from devenv.errors import InvalidValueError
from devenv.models.env_vars import MAX_VALUE, MAX_VARIABLES, NAME_PATTERN


def pop_caller_env(config: dict[str, Any]) -> dict[str, str]:
    """``config``'s ``caller_env`` taken out of it (so the configuration validates as
    the YAML); refused (422) unless a mapping of names to strings. No value is quoted."""
    sent = config.pop(wire.CALLER_ENV, None)
    if sent is None:
        return {}
    if (
        not isinstance(sent, dict)
        or len(sent) > MAX_VARIABLES
        or not all(
            isinstance(name, str)
            and NAME_PATTERN.fullmatch(name)
            and isinstance(value, str)
            and len(value) <= MAX_VALUE
            and "\x00" not in value
            for name, value in sent.items()
        )
    ):
        raise ApiError(
            422,
            f"{wire.CALLER_ENV}: accepted: a mapping of at most {MAX_VARIABLES} variable "
            f"names to strings (at most {MAX_VALUE:,} characters, no NUL)",
            InvalidValueError,
        )
    return dict(sent)
