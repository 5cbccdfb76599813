"""One way to connect to Temporal, used by the worker and every CLI command."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from temporalio.service import ConnectConfig, ServiceClient

from devenv.errors import ServerNotAnsweringError, ServerRefusedError, ServerUnreachableError
from devenv.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client

__all__ = [
    "ServerNotAnsweringError",
    "ServerUnreachableError",
    "client_for",
    "connect",
    "connect_service",
    "wait_reachable",
]


async def connect(settings: Settings, timeout: float = 5.0) -> Client:
    """A client for ``settings``; ServerUnreachableError within ``timeout`` seconds."""
    return client_for(await connect_service(settings, timeout), settings)


def client_for(service: ServiceClient, settings: Settings) -> Client:
    """The Temporal client over a connection ``connect_service`` made (what
    ``Client.connect`` builds, with devenv's pydantic data converter)."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    return Client(service, namespace=settings.namespace, data_converter=pydantic_data_converter)


async def connect_service(settings: Settings, timeout: float = 5.0) -> ServiceClient:
    """The bare gRPC connection to Temporal; ServerUnreachableError within ``timeout``.

    Commands that only read the visibility store (``devenv ps``) use it alone:
    importing ``temporalio.client`` costs a short command ~100 ms more.
    """
    config = ConnectConfig(
        target_host=settings.address,
        api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        tls=settings.tls,
    )
    try:
        return await asyncio.wait_for(ServiceClient.connect(config), timeout)
    except TimeoutError as err:
        if await _accepts_tcp(settings):
            raise ServerNotAnsweringError(
                f"something at {settings.address} accepts connections but gave no Temporal "
                f"answer within {timeout:g}s"
            ) from err
        raise ServerUnreachableError(
            f"no Temporal server answers at {settings.address} ({_reason(err, timeout)})"
        ) from err
    except (RuntimeError, OSError) as err:
        if settings.tls and any(sign in str(err) for sign in _PLAINTEXT_SIGNS):
            raise ServerRefusedError(
                f"TLS handshake with the Temporal server at {settings.address} failed: it "
                "speaks plaintext; set DEVENV_TEMPORAL_TLS=false (or unset it) for this server"
            ) from err
        raise ServerUnreachableError(
            f"no Temporal server answers at {settings.address} ({_reason(err, timeout)})"
        ) from err


_PLAINTEXT_SIGNS = ("InvalidContentType", "kind: InvalidData", "WrongVersionNumber")
"""What the transport says when a TLS client hears a plaintext answer (rustls)."""


async def _accepts_tcp(settings: Settings, timeout: float = 1.0) -> bool:
    """Whether a plain TCP connection to the address succeeds (tells silent from absent)."""
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(settings.host.strip("[]"), settings.port), timeout
        )
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


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


def _reason(err: BaseException, timeout: float) -> str:
    """The gist of a connection failure, without the transport's stack of wrappers."""
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout:g}s"
    text = str(err)
    for needle, gist in (
        ("ConnectionRefused", "connection refused"),
        ("dns error", "host name not found"),
        ("HostUnreachable", "host unreachable"),
        ("certificate", "TLS certificate problem"),
    ):
        if needle in text:
            return gist
    line = (text.strip() or type(err).__name__).splitlines()[0]
    if len(line) <= 120:
        return line
    return line[: line.rfind(" ", 0, 120)].rstrip(" ,:({[") + " …"  # never cut mid-word
