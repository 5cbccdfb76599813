"""The caller's half of ``env``: bare ``KEY`` entries read from the caller's environment.

A bare ``KEY`` (or ``KEY:`` left empty) takes its value from whoever runs ``devenv start``,
as in dstack. Such values are secrets: they are split from the literal ones here, so that
the spec carries only the literals and a reference (``devenv.env_secrets``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from devenv.errors import InvalidValueError


def split_env(
    env: Mapping[str, str | None], caller: Mapping[str, str] | None
) -> tuple[dict[str, str], dict[str, str]]:
    """(literal values, values taken from ``caller``: default this process's environment).

    A bare KEY the caller does not have is refused in one line naming it.
    """
    source = os.environ if caller is None else caller
    literal: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in env.items():
        if value is not None:
            literal[name] = value
        elif name in source and isinstance(source[name], str):
            secret[name] = source[name]
        else:
            raise InvalidValueError(
                f"env.{name}: not set in the environment of devenv start; accepted: export "
                f"{name} before starting, or give its value ({name}=value)"
            )
    return literal, secret


def bare_names(env: Mapping[str, str | None]) -> list[str]:
    """The names whose value the caller gives."""
    return [name for name, value in env.items() if value is None]
