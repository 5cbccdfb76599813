"""Finds the devenv server (Temporal + worker), starting it in the background when needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from devenv.errors import UserError
from devenv.keys import private_dir
from devenv.settings import Settings, host_task_queue
from devenv.worker.pidfile import read_pid
from devenv.worker.temporal_connection import ServerUnreachableError, connect, wait_reachable

STARTUP_TIMEOUT = 90.0


def launch_background(settings: Settings, worker_only: bool) -> Path:
    """Start `devenv server` detached from this terminal; returns its log file."""
    log_file = private_dir(settings.logs_dir) / "server.log"
    command = [sys.executable, "-m", "devenv.cli", "server"]
    if worker_only:
        command.append("--worker-only")
    with log_file.open("ab") as log:
        subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return log_file


async def has_host_worker(client: Client, settings: Settings) -> bool:
    """Whether a worker of this host polls its queue (local instances need one here)."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=settings.namespace,
            task_queue=TaskQueue(name=host_task_queue()),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
        )
    )
    return len(response.pollers) > 0


async def ensure_server(settings: Settings, say: Callable[[str], None]) -> Client:
    """A client to a server with a worker for this host, starting what is missing."""
    if read_pid(settings) is not None:
        return await _wait(settings, say, None)
    try:
        client = await connect(settings, timeout=3.0)
    except ServerUnreachableError:
        if not settings.is_loopback:
            raise UserError(
                f"no Temporal server answers at {settings.address}; check "
                "DEVENV_TEMPORAL_ADDRESS, or unset it to use the embedded server"
            ) from None
        log = launch_background(settings, worker_only=False)
        say(
            f"No devenv server answered at {settings.address}: started one in the background "
            f"(Web UI {settings.ui_url}, logs {log})"
        )
        return await _wait(settings, say, log)
    if not await has_host_worker(client, settings):
        log = launch_background(settings, worker_only=True)
        say(f"No devenv worker runs on this host: started one in the background (logs {log})")
    return client


async def _wait(settings: Settings, say: Callable[[str], None], log: Path | None) -> Client:
    try:
        return await wait_reachable(settings, STARTUP_TIMEOUT)
    except ServerUnreachableError:
        where = f"; see {log}" if log else ""
        raise UserError(
            f"the devenv server did not answer at {settings.address} within "
            f"{STARTUP_TIMEOUT:.0f}s{where}"
        ) from None


def stop_background(settings: Settings, timeout: float = 20.0) -> int | None:
    """SIGTERM the recorded `devenv server` and wait for it; returns its pid if one ran."""
    pid = read_pid(settings)
    if pid is None:
        return None
    os.kill(pid, signal.SIGTERM)
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up and read_pid(settings) == pid:
        time.sleep(0.1)
    if read_pid(settings) == pid:
        os.kill(pid, signal.SIGKILL)
    return pid
