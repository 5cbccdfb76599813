"""The module-level functions ``devenv.start`` / ``get`` / ``list``: one blocking client
made on first use from the CLI's settings (``DEVENV_HOME``, ``DEVENV_TEMPORAL_*``)."""

from __future__ import annotations

from typing import Any

from devenv.client.options import ConfigSource, Progress
from devenv.client.sync import Client, Environment
from devenv.models.status import EnvironmentList

_default: Client | None = None


def default_client() -> Client:
    """The client of the module-level functions: the CLI's settings, made on first use."""
    global _default
    if _default is None:
        _default = Client()
    return _default


def start(
    config: ConfigSource,
    *,
    name: str | None = None,
    wait: bool = True,
    progress: Progress | None = None,
    **overrides: Any,
) -> Environment:
    """Start an environment from a YAML path, a mapping or a configuration model;
    keyword overrides replace its keys (``inactivity_duration="2h"``)."""
    return default_client().start(config, name=name, wait=wait, progress=progress, **overrides)


def get(ref: str) -> Environment:
    """The environment called ``ref`` (a name or its workflow id)."""
    return default_client().get(ref)


def list(*, all: bool = False, group: str | None = None) -> EnvironmentList:
    """Running environments (``all``: ended ones too; ``group``: only that group's), with
    the fields of ``ps --json``."""
    return default_client().list(all=all, group=group)
