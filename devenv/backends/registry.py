"""Which backends exist: a name, its configuration model and its implementation.

Entries name their classes by import path, so reading a configuration (the CLI,
the SDK) never imports a backend's heavy parts (SSH, cloud SDKs); only workers do.
A new backend is one module (or package) and one ``register`` line below.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devenv.backends.base import Backend
    from devenv.models.config import EnvironmentConfig


@dataclass(frozen=True)
class BackendEntry:
    name: str
    config: str
    """``module:Class`` of its ``EnvironmentConfig`` subclass (light to import)."""
    implementation: str
    """``module:Class`` of its ``Backend`` (imported by workers only)."""


_ENTRIES: dict[str, BackendEntry] = {}


def register(entry: BackendEntry) -> None:
    """Make a backend known to the configuration loader and to workers of this process."""
    _ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    """Forget a backend (tests that register a toy one clean up after themselves)."""
    _ENTRIES.pop(name, None)


def names() -> list[str]:
    return list(_ENTRIES)


def entry(name: str) -> BackendEntry:
    """KeyError for a name nobody registered."""
    return _ENTRIES[name]


def config_model(name: str) -> type[EnvironmentConfig]:
    model: type[EnvironmentConfig] = _load(entry(name).config)
    return model


def backend_class(name: str) -> type[Backend]:
    cls: type[Backend] = _load(entry(name).implementation)
    return cls


def _load(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


register(
    BackendEntry(
        "local",
        "devenv.backends.local.config:LocalConfig",
        "devenv.backends.local.backend:LocalBackend",
    )
)
register(
    BackendEntry(
        "ssh", "devenv.backends.ssh.config:SshConfig", "devenv.backends.ssh.backend:SshBackend"
    )
)
register(
    BackendEntry(
        "aws", "devenv.backends.aws.config:AwsConfig", "devenv.backends.aws.backend:AwsBackend"
    )
)
register(
    BackendEntry(
        "aws", "devenv.backends.aws.config:AwsConfig", "devenv.backends.aws.backend:AwsBackend"
    )
)
