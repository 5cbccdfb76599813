"""The ``env`` and ``init`` keys (dstack's shape), checked before anything starts.

``env`` is a mapping (``KEY: value``) or a list (``- KEY=value`` / ``- KEY``); both become
one mapping of name to value, where ``None`` (a bare ``KEY``, or ``KEY:`` left empty) means
"taken from the caller's environment at start" (``devenv.client.caller_env``). Those
values are secrets: they never travel in the workflow's spec (``devenv.env_secrets``).

Names are POSIX environment variable names; the names a login sets itself (``HOME``,
``PATH``...) and devenv's own (``DEVENV_*``, ``SSH_*``) are refused: overriding them would
break logins, jobs or the presence count rather than configure the environment.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
RESERVED_NAMES = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "PATH", "PWD", "OLDPWD", "TERM"})
RESERVED_PREFIXES = ("SSH_", "DEVENV_")
MAX_VARIABLES = 256
MAX_VALUE = 32_768
MAX_COMMANDS = 100
MAX_COMMAND = 10_000
MAX_TOTAL = 65_536
"""Characters of all of ``env`` (names and values), and of all of ``init``: both travel in
the workflow's state (a secret's value aside), which must stay far below Temporal's
payload limit."""
NAME_ACCEPTED = (
    "a letter or _ then letters, digits or _ (at most 128), other than "
    + ", ".join(sorted(RESERVED_NAMES))
    + " and names starting with "
    + " or ".join(RESERVED_PREFIXES)
)
ENV_ACCEPTED = "a mapping of NAME: value, or a list of NAME=value and NAME"


def check_name(name: str) -> str:
    """A POSIX name the login does not own (see the module docstring)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"accepted: {NAME_ACCEPTED}")
    if name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES):
        hint = " (extend PATH in ~/.profile with an init command)" if name == "PATH" else ""
        raise ValueError(f"{name} is set by every login itself; accepted: {NAME_ACCEPTED}{hint}")
    return name


def _value(value: object) -> str | None:
    """Scalars become strings as YAML wrote them; ``None`` stays (from the caller)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        raise ValueError("accepted: a string, a number, true/false, or nothing (from the caller)")
    if "\x00" in value or len(value) > MAX_VALUE:
        raise ValueError(f"accepted: at most {MAX_VALUE:,} characters, no NUL")
    return value


def _env_mapping(value: object) -> object:
    """The list form (``- KEY=value`` / ``- KEY``) as the mapping form."""
    if value is None:
        return {}
    if isinstance(value, dict):
        if len(value) > MAX_VARIABLES:
            raise ValueError(f"accepted: at most {MAX_VARIABLES} variables")
        return value
    if not isinstance(value, list):
        raise ValueError(f"accepted: {ENV_ACCEPTED}")
    if len(value) > MAX_VARIABLES:
        raise ValueError(f"accepted: at most {MAX_VARIABLES} variables")
    result: dict[str, str | None] = {}
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"an item is not NAME=value or NAME; accepted: {ENV_ACCEPTED}")
        name, sep, text = item.partition("=")
        if name in result:
            raise ValueError(f"{name} is given twice; accepted: each name once")
        result[name] = text if sep else None
    return result


EnvName = Annotated[str, AfterValidator(check_name)]
EnvValue = Annotated[str | None, BeforeValidator(_value)]


def _env_total(value: dict[str, str | None]) -> dict[str, str | None]:
    if sum(len(name) + len(text or "") for name, text in value.items()) > MAX_TOTAL:
        raise ValueError(f"accepted: at most {MAX_TOTAL:,} characters in all")
    return value


def _init_total(value: list[str]) -> list[str]:
    if sum(map(len, value)) > MAX_TOTAL:
        raise ValueError(f"accepted: at most {MAX_TOTAL:,} characters in all")
    return value


EnvVars = Annotated[
    dict[EnvName, EnvValue], BeforeValidator(_env_mapping), AfterValidator(_env_total)
]
"""Name to value; ``None``: the caller's value of that name, read at start (a secret)."""


def _command(value: str) -> str:
    if not value.strip() or "\x00" in value or len(value) > MAX_COMMAND:
        raise ValueError(f"accepted: a non-empty shell command of at most {MAX_COMMAND:,} chars")
    return value


def _init_commands(value: object) -> object:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("accepted: a list of shell commands (- make setup)")
    if len(value) > MAX_COMMANDS:
        raise ValueError(f"accepted: at most {MAX_COMMANDS} commands")
    return value


InitCommands = Annotated[
    list[Annotated[str, AfterValidator(_command)]],
    BeforeValidator(_init_commands),
    AfterValidator(_init_total),
]
"""Shell commands run once, at the first start, in the workspace as the user."""
