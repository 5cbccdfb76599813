"""Which configuration keys only an admin may send: those naming the server's hosts and files.

Infrastructure is the admin's, environments are the users': a configuration from an
API user who is not an admin must not choose which private key the worker reads,
which known_hosts it trusts or which host it logs in to as root (and a file it
cannot parse must not be read back to them). Such keys are refused before anything
reads the configuration, by looking at which keys are present and never at their
values, so the answer is the same whether a named path exists or not. Users name
a host pool the admin registered (``ssh_config: {pool: NAME}``) instead.

Admin-only keys are marked on the backends' models (``admin_only_keys``); any key
typed as a path is admin-only too, so a new file key is covered without a list here.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devenv.backends import registry
from devenv.backends.ssh.config import POOL_PATTERN, admin_only_keys
from devenv.backends.ssh.pools import PoolError, get_pool
from devenv.errors import InvalidValueError, NotAllowedError
from devenv.settings import Settings


def check_start(config: Mapping[str, Any], admin: bool, settings: Settings) -> None:
    """Refuse (403) a non-admin's configuration naming admin-only keys, and (422) a pool
    this server does not have; before anything reads a file or starts anything."""
    if not admin:
        keys = refused_keys(config)
        if keys:
            raise NotAllowedError(refusal(keys))
    section = config.get("ssh_config")
    pool = section.get("pool") if isinstance(section, Mapping) else None
    if config.get("backend") == "ssh" and isinstance(pool, str) and POOL_PATTERN.fullmatch(pool):
        try:
            get_pool(settings, pool)
        except PoolError as problem:
            raise InvalidValueError(str(problem)) from None


def refused_keys(config: Mapping[str, Any]) -> list[str]:
    """The admin-only keys present in ``config`` (``ssh_config.identity_file`` ...),
    in every backend's sections; whatever their values."""
    found: dict[str, None] = {}
    for name in registry.names():
        for key in _present(registry.config_model(name), config, ""):
            found[key] = None
    return list(found)


def refusal(keys: list[str]) -> str:
    """The one line a non-admin gets: which keys, why, and what to use instead."""
    return (
        f"{', '.join(keys)}: admin-only (they name hosts and files of the server); "
        "name a host pool the server's admin registered instead: ssh_config: {pool: NAME} "
        "(`devenv hosts list` on the server shows them)"
    )


def _present(model: type[BaseModel], data: Mapping[str, Any], prefix: str) -> list[str]:
    marked = set(admin_only_keys(model))
    found = []
    for key, field in model.model_fields.items():
        if key not in data:
            continue
        if key in marked or _is_path(field.annotation):
            found.append(prefix + key)
            continue
        nested = _model_of(field.annotation)
        value = data[key]
        if nested is not None and isinstance(value, Mapping):
            found += _present(nested, value, f"{prefix}{key}.")
    return found


def _members(annotation: Any) -> list[Any]:
    """``X | None``, ``Annotated[X, ...]``, ``list[X]`` -> the types inside."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation]
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType, list, tuple, set, frozenset):
        return [member for arg in typing.get_args(annotation) for member in _members(arg)]
    return [annotation]


def _is_path(annotation: Any) -> bool:
    return any(isinstance(t, type) and issubclass(t, Path) for t in _members(annotation))


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for member in _members(annotation):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None
