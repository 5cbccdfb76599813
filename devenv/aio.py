"""``await devenv.aio.start(...)``: the module-level functions for asyncio programs.

One ``AsyncClient`` per event loop, made on first use from the CLI's settings. For
explicit settings use ``devenv.AsyncClient(address=..., namespace=...)``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from devenv.client.async_client import AsyncClient, AsyncEnvironment, ConfigSource, Progress
from devenv.models.status import EnvironmentList

__all__ = ["AsyncClient", "AsyncEnvironment", "get", "list", "start"]

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        client = _clients[loop] = AsyncClient()
    return client


async def start(
    config: ConfigSource,
    *,
    name: str | None = None,
    wait: bool = True,
    progress: Progress | None = None,
    **overrides: Any,
) -> AsyncEnvironment:
    """Start an environment (see ``devenv.start``)."""
    return await _client().start(config, name=name, wait=wait, progress=progress, **overrides)


async def get(ref: str) -> AsyncEnvironment:
    """The environment called ``ref`` (a name or its workflow id)."""
    return await _client().get(ref)


async def list(*, all: bool = False, group: str | None = None) -> EnvironmentList:
    """Running environments (``all``: ended ones too; ``group``: only that group's), with
    the fields of ``ps --json``."""
    return await _client().list(all=all, group=group)
