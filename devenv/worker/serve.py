"""`devenv server`: the embedded Temporal dev server plus the worker, in the foreground."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess

from rich.console import Console
from temporalio.client import Client

from devenv.errors import UserError
from devenv.keys import private_dir
from devenv.settings import Settings
from devenv.worker.client import ServerUnreachableError, connect, wait_reachable
from devenv.worker.devserver import start_dev_server, stop_dev_server
from devenv.worker.pidfile import clear_pid, write_pid
from devenv.worker.worker import run_until

STARTUP_TIMEOUT = 60.0


async def serve(settings: Settings, ui_port: int, worker_only: bool, console: Console) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    private_dir(settings.home)
    process: subprocess.Popen[bytes] | None = None
    if not worker_only:
        if not settings.is_loopback:
            raise UserError(
                f"DEVENV_TEMPORAL_ADDRESS={settings.address} is not on this machine; "
                "run `devenv server --worker-only` to serve it"
            )
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
    try:
        client = await _wait_for(settings, process)
        console.print(f"devenv worker running against {settings.address} (Ctrl-C stops)")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_until(client, settings, stop)
    finally:
        if process is not None:
            stop_dev_server(process)
        clear_pid(settings)


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
