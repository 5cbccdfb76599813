"""One way to connect to Temporal, used by the worker and every CLI command."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from devenv.settings import Settings


class ServerUnreachableError(ConnectionError):
    pass


async def connect(settings: Settings, timeout: float = 5.0) -> Client:
    """A client for ``settings``; ServerUnreachableError within ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.address,
                namespace=settings.namespace,
                api_key=settings.api_key,
                tls=settings.tls,
                data_converter=pydantic_data_converter,
            ),
            timeout,
        )
    except (TimeoutError, RuntimeError, OSError) as err:
        raise ServerUnreachableError(
            f"no Temporal server answers at {settings.address}: {_first_line(err)}"
        ) from err


async def wait_reachable(settings: Settings, timeout: float) -> Client:
    """Retry ``connect`` until it works or ``timeout`` seconds have passed."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        try:
            return await connect(settings, timeout=2.0)
        except ServerUnreachableError:
            if loop.time() >= give_up:
                raise
            await asyncio.sleep(0.2)


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:200]
