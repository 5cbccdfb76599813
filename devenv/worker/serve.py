"""`devenv server`: the embedded Temporal dev server plus the worker, in the foreground."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from rich.console import Console
from temporalio.client import Client

from devenv import logging_redact
from devenv.errors import UserError
from devenv.keys import private_dir
from devenv.settings import Settings
from devenv.worker.devserver import start_dev_server, stop_dev_server
from devenv.worker.pidfile import clear_pid, read_pid, write_pid
from devenv.worker.search_attributes import add_missing
from devenv.worker.temporal_connection import ServerUnreachableError, connect, wait_reachable
from devenv.worker.worker import run_until

STARTUP_TIMEOUT = 60.0
RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 30.0
HEALTHY_RUN_SECONDS = 60.0
"""A dev server that ran this long before dying is restarted after the minimum delay."""
WATCH_SECONDS = 0.2

log = logging.getLogger("devenv.server")


Beside = Callable[[], AbstractAsyncContextManager[Any]]
"""What runs beside the worker once Temporal answers (the HTTP API), given by the CLI so
that the worker layer knows nothing of the layers above it."""


async def serve(
    settings: Settings,
    ui_port: int,
    worker_only: bool,
    console: Console,
    beside: Beside | None = None,
) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # No token, webhook URL, key or password in any line, from any library (httpx logs
    # every request's URL at INFO).
    logging_redact.install()
    # asyncssh logs every monitor connection at INFO; its warnings are enough.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    private_dir(settings.home)
    process: subprocess.Popen[bytes] | None = None
    lock: int | None = None
    if not worker_only:
        if not settings.is_loopback:
            raise UserError(
                f"DEVENV_TEMPORAL_ADDRESS={settings.address} is not on this machine; "
                "run `devenv server --worker-only` to serve it"
            )
        lock = _lock_database(settings)
        if await _answers(settings):
            raise UserError(
                f"a Temporal server already answers at {settings.address}; "
                "`devenv server --worker-only` adds a worker to it"
            )
        log_file = settings.logs_dir / "temporal.log"
        process = start_dev_server(settings, ui_port or None, log_file)
        console.print(
            f"Temporal dev server on {settings.address} (state {settings.server_db}, "
            f"logs {log_file})" + (f", Web UI http://127.0.0.1:{ui_port}" if ui_port else "")
        )
    write_pid(settings)
    supervisor = None if process is None else DevServerSupervisor(settings, ui_port, process)
    try:
        client = await _wait_for(settings, process)
        if process is not None:  # its database may predate a search attribute
            await add_missing(client, settings.namespace)
        console.print(f"devenv worker running against {settings.address} (Ctrl-C stops)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        watching = None if supervisor is None else asyncio.create_task(supervisor.watch(stop))
        try:
            async with contextlib.AsyncExitStack() as services:
                if beside is not None:
                    await services.enter_async_context(beside())
                await run_until(client, settings, stop)
        finally:
            if watching is not None:
                watching.cancel()
                await asyncio.gather(watching, return_exceptions=True)
    finally:
        if supervisor is not None:
            stop_dev_server(supervisor.process)
        clear_pid(settings)
        if lock is not None:
            os.close(lock)


def _lock_database(settings: Settings) -> int:
    """One embedded server per DEVENV_HOME: two `devenv start` racing to start one must
    not run two dev servers on the same SQLite file. The kernel drops the lock when the
    process dies, even by kill -9; the dev server does not inherit it."""
    path = settings.home / "server.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = read_pid(settings)
        raise UserError(
            f"another devenv server{f' (pid {holder})' if holder else ''} already runs the "
            f"embedded Temporal server of {settings.home}; stop it with `devenv server stop`"
        ) from None
    return fd


class DevServerSupervisor:
    """Restarts the embedded dev server on its database when it dies unexpectedly.

    Its state is in SQLite under DEVENV_HOME, so a restart loses nothing; the worker's
    client reconnects by itself. Restarts back off (1 s, 2 s ... 30 s) while the server
    keeps dying quickly, and every death and restart is logged.
    """

    def __init__(self, settings: Settings, ui_port: int, process: subprocess.Popen[bytes]) -> None:
        self.settings = settings
        self.ui_port = ui_port
        self.process = process
        self.restarts = 0

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / "temporal.log"

    async def watch(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        backoff = RESTART_MIN_SECONDS
        started = loop.time()
        while not stop.is_set():
            if self.process.poll() is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), WATCH_SECONDS)
                continue
            ran = loop.time() - started
            if ran >= HEALTHY_RUN_SECONDS:
                backoff = RESTART_MIN_SECONDS
            log.error(
                "the Temporal dev server (pid %d) exited unexpectedly with code %s after %.0fs; "
                "restarting it on %s in %.0fs (see %s)",
                self.process.pid,
                self.process.returncode,
                ran,
                self.settings.server_db,
                backoff,
                self.log_file,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            if stop.is_set():
                return
            backoff = min(backoff * 2, RESTART_MAX_SECONDS)
            try:
                self.process = start_dev_server(self.settings, self.ui_port or None, self.log_file)
            except OSError as err:
                log.error("could not restart the Temporal dev server: %s", err)
                continue  # poll() of the dead process keeps us in the restart branch
            started = loop.time()
            self.restarts += 1
            log.warning(
                "restarted the Temporal dev server (pid %d, restart %d) on %s",
                self.process.pid,
                self.restarts,
                self.settings.server_db,
            )


async def _answers(settings: Settings) -> bool:
    try:
        await connect(settings, timeout=1.0)
    except ServerUnreachableError:
        return False
    return True


async def _wait_for(settings: Settings, process: subprocess.Popen[bytes] | None) -> Client:
    waiter = asyncio.create_task(wait_reachable(settings, STARTUP_TIMEOUT))
    while not waiter.done():
        if process is not None and process.poll() is not None:
            waiter.cancel()
            raise UserError(
                f"the Temporal dev server exited with code {process.returncode}; "
                f"see {settings.logs_dir / 'temporal.log'}"
            )
        await asyncio.sleep(0.1)
    return waiter.result()
