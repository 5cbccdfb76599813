"""Checks of what a caller gives the SDK, before anything is sent: one clear line
naming the key, the value and what is accepted (``InvalidValueError``).

Shared by both transports, so that a bad value reads the same whichever one runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devenv.client.options import ConfigSource
from devenv.errors import InvalidValueError
from devenv.models.config import EnvironmentConfig

DURATION_KEYS = frozenset({"inactivity_duration", "max_duration", "min_connection_duration"})
MAX_OWNER_LENGTH = 64
MAX_REASON_LENGTH = 200


def checked_owner(owner: str) -> str:
    """A short printable name: it lands in history, listings and the API's checks."""
    from devenv.models.problems import shorten

    if (
        not owner
        or len(owner) > MAX_OWNER_LENGTH
        or not owner.isprintable()
        or owner.strip() != owner
    ):
        raise InvalidValueError(
            f"owner: invalid value {shorten(repr(owner), owner)}: accepted: 1-"
            f"{MAX_OWNER_LENGTH} printable characters"
        )
    return owner


def checked_reason(reason: str) -> str:
    """One printable line: it becomes an event of the environment."""
    from devenv.models.problems import shorten

    if not reason or len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidValueError(
            f"reason: invalid value {shorten(repr(reason), reason)}: accepted: one line of "
            f"1-{MAX_REASON_LENGTH} printable characters"
        )
    return reason


def checked_public_key(text: str) -> str:
    """``text`` as one canonical OpenSSH public key line.

    It becomes the instance's only authorized user key: a second line or leading
    options (``devenv-internal``) must never get through, so it is re-exported.
    """
    import asyncssh  # lazily: only a start with a given key pays its import

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        if len(lines) != 1:
            raise ValueError(len(lines))
        key = asyncssh.import_public_key(lines[0])
    except (asyncssh.KeyImportError, ValueError):
        raise InvalidValueError(
            "public_key: expected exactly one OpenSSH public key line "
            "('ssh-ed25519 AAAA... comment')"
        ) from None
    return key.export_public_key().decode().strip()


def checked_name(name: str) -> str:
    """An environment name given as an argument, checked as the file's ``name`` is."""
    from devenv.models.config import validate_name
    from devenv.models.problems import shorten

    try:
        return validate_name(name)
    except ValueError as problem:
        raise InvalidValueError(f"name: {shorten(str(problem), name)}") from None


def checked_group(group: str | None) -> str | None:
    """A group given as an argument (``ps --group``), checked as the file's ``group`` is."""
    from devenv.models.config import validate_name
    from devenv.models.problems import shorten

    if group is None:
        return None
    try:
        return validate_name(group)
    except ValueError as problem:
        raise InvalidValueError(f"group: {shorten(str(problem), group)}") from None


def configuration(config: ConfigSource, overrides: Mapping[str, Any]) -> EnvironmentConfig:
    """The validated configuration with the keyword overrides applied."""
    if isinstance(config, EnvironmentConfig) and not overrides:
        return config
    from devenv.config.loader import parse_config

    return parse_config(*configuration_data(config, overrides))


def configuration_data(
    config: ConfigSource, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], str]:
    """The configuration's keys with the keyword overrides applied, and where they came
    from (the file, or "config"), for error lines. Not validated yet."""
    from devenv.config.loader import read_mapping

    if isinstance(config, EnvironmentConfig):
        data: dict[str, Any] = {
            key: "off" if value is None else value
            for key, value in config.model_dump(exclude_unset=True).items()
        }
        source = "config"
    elif isinstance(config, Mapping):
        data, source = dict(config), "config"
    else:
        path = Path(config)
        data, source = read_mapping(path), str(path)
    data.update(
        {
            key: "off" if value is None and key in DURATION_KEYS else value
            for key, value in overrides.items()
        }
    )
    return data, source
