"""Runs the HTTP API under uvicorn in `devenv server`'s event loop, beside the worker.

The socket is bound here, before uvicorn starts, so that a port in use is one clear
line. The default port (8234) in use only costs the API, with a warning: several
`devenv server` of one machine (test worlds, `--worker-only` helpers) must still run.
A port chosen explicitly (``--api-port``, ``DEVENV_API_PORT``) that cannot be bound
stops the server instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Callable, Generator
from pathlib import Path

import uvicorn

from devenv.api.app import create_app
from devenv.api.transport import is_loopback
from devenv.client.async_client import AsyncClient
from devenv.client.tokens import UserStore
from devenv.errors import DevenvError, UserError
from devenv.settings import Settings

SHUTDOWN_GRACE_SECONDS = 5

log = logging.getLogger("devenv.api")


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: `devenv server` owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def api_running(
    settings: Settings,
    host: str,
    port: int,
    *,
    explicit: bool,
    say: Callable[[str], None],
    tls: tuple[Path, Path] | None = None,
) -> AsyncIterator[str | None]:
    """Serve the API on ``host:port`` for the duration of the block; yields its URL
    (None when disabled by port 0, or when the default port is taken). ``tls``: the
    certificate and key to serve HTTPS with (``transport.check_transport`` checked them)."""
    if port == 0:
        say("HTTP API disabled (port 0)")
        yield None
        return
    try:
        sock = _bind(host, port)
    except OSError as problem:
        line = (
            f"cannot serve the HTTP API on {host}:{port} ({problem.strerror or problem}); "
            "choose another with --api-port or DEVENV_API_PORT (0 disables it)"
        )
        if explicit:
            raise UserError(line) from None
        log.warning("%s", line)
        say(f"HTTP API not started: {line}")
        yield None
        return
    store = UserStore(settings)
    try:
        store.local_admin_token()  # the admin exists from the start: `devenv token` prints it
    except DevenvError as problem:
        log.warning("the HTTP API has no local admin: %s", problem)
    client = AsyncClient(settings=settings)  # explicit settings: always direct, never remote
    config = uvicorn.Config(
        create_app(client, store),
        lifespan="off",
        log_config=None,
        access_log=False,  # the API logs its own line per request, without headers
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        ssl_certfile=None if tls is None else str(tls[0]),
        ssl_keyfile=None if tls is None else str(tls[1]),
    )
    server = _Server(config)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    scheme = "http" if tls is None else "https"
    url = f"{scheme}://{_show_host(host)}:{sock.getsockname()[1]}"
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="devenv-api")
    try:
        # The socket listens already: connections wait in its backlog until uvicorn runs.
        plain = tls is None and not is_loopback(host)
        where = (
            " (plain HTTP, as --insecure-http asked: keep a TLS proxy in front)" if plain else ""
        )
        say(f"HTTP API on {url}{where}; docs {url}/docs; admin token: `devenv token`")
        yield url
    finally:
        server.should_exit = True
        try:
            await serving
        except Exception:
            log.exception("the HTTP API stopped with an error")
        sock.close()


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket. Made with the TCP protocol number so that asyncio sets
    TCP_NODELAY on every connection (a socket made with proto 0 is skipped, and Nagle
    then holds a keep-alive answer's body for the client's delayed ACK: +40 ms a call);
    set on the listener too, which accepted sockets inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(512)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _show_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
