"""A devenv deployment whose parts are separate processes, so each can be kill -9'd alone.

The Temporal dev server is the real ``temporal`` binary with the arguments `devenv
server` would give it (SQLite under the test's DEVENV_HOME), and the worker is the
real ``devenv server --worker-only``. Everything else goes through the installed
``devenv`` command and the real ``ssh`` client, as in tests/e2e.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from devenv.backends.local.files import SERVER_MODULE
from devenv.backends.local.proctools import is_running as alive
from devenv.backends.local.proctools import parent
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.settings import Settings, host_task_queue
from devenv.worker.devserver import dev_server_command
from devenv.worker.temporal_connection import ServerUnreachableError, connect
from tests.e2e.harness import DEVENV, Devenv, port_open, wait_for

PROC = Path("/proc")
KEEPALIVE_INTERVAL = "0.5"
KEEPALIVE_COUNT_MAX = "3"
"""Instances of these tests drop a silent user after 0.5 s x 3 (production: 15 s x 4)."""


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def now() -> datetime:
    return datetime.now(UTC)


def kill9(process: subprocess.Popen[bytes] | None) -> None:
    """SIGKILL and reap: the crash under test, or the last word of a cleanup."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGKILL)
    process.wait(10)


def cmdline(pid: int) -> bytes:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def environ(pid: int) -> list[bytes]:
    try:
        return (PROC / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return []


def pids() -> Iterator[int]:
    for entry in PROC.iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            yield int(entry.name)


@dataclass
class Cluster(Devenv):
    """A private DEVENV_HOME with its own Temporal process and worker process."""

    extra_env_vars: dict[str, str] = field(
        default_factory=lambda: {
            "DEVENV_LOCAL_KEEPALIVE_INTERVAL": KEEPALIVE_INTERVAL,
            "DEVENV_LOCAL_KEEPALIVE_COUNT_MAX": KEEPALIVE_COUNT_MAX,
        }
    )
    temporal: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        env.update(self.extra_env_vars)
        return env

    @property
    def settings(self) -> Settings:
        return Settings(
            home=self.home, address=f"127.0.0.1:{self.temporal_port}", namespace="default"
        )

    # --- the Temporal dev server ----------------------------------------------------

    def start_temporal(self) -> None:
        """The embedded server's exact command, as a process of its own."""
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.root / "temporal.out").open("ab") as log:
            self.temporal = subprocess.Popen(
                dev_server_command(self.settings, None),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._temporal_answers, 30, "the Temporal dev server", every=0.1)

    def kill_temporal(self) -> None:
        kill9(self.temporal)

    def _temporal_answers(self) -> bool:
        try:
            asyncio.run(connect(self.settings, timeout=1.0))
        except ServerUnreachableError:
            return False
        return True

    # --- the worker -------------------------------------------------------------------

    def start_worker(self) -> float:
        """`devenv server --worker-only`; returns once it polls both queues (seconds taken)."""
        began = time.monotonic()
        with (self.root / "worker.out").open("ab") as log:
            self.worker = subprocess.Popen(
                [DEVENV, "server", "--worker-only"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        pid = self.worker.pid
        wait_for(lambda: self._polled_by(pid), 30, f"worker {pid} to poll", every=0.1)
        return time.monotonic() - began

    def kill_worker(self) -> None:
        kill9(self.worker)

    def _polled_by(self, pid: int) -> bool:
        """Whether worker ``pid`` polls the shared and this host's queue (by poller identity)."""
        if self.worker is not None and self.worker.poll() is not None:
            raise AssertionError(f"the worker exited with {self.worker.returncode}")
        return asyncio.run(self._queues_polled_by(f"{pid}@"))

    async def _queues_polled_by(self, identity: str) -> bool:
        try:
            client = await connect(self.settings, timeout=2.0)
        except ServerUnreachableError:
            return False
        for queue, kind in (
            (SHARED_TASK_QUEUE, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW),
            (host_task_queue(), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
        ):
            response = await client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind
                )
            )
            if not any(p.identity.startswith(identity) for p in response.pollers):
                return False
        return True

    def ensure_up(self) -> None:
        """Whatever an earlier test killed comes back before the next test."""
        if self.temporal is None or self.temporal.poll() is not None:
            self.start_temporal()
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()

    # --- environments and their processes --------------------------------------------

    def start_env(self, name: str, *args: str) -> dict[str, Any]:
        self.run("start", str(example_file()), "--name", name, "--max-duration", "off", *args)
        return self.ps(name)

    def instance_pids(self, name: str) -> list[int]:
        """Every live instance server of ``name``: ``python -m ...local.server <its folder>``.

        Neither the short-lived launcher (``python -c ... -m ...local.server``) nor a
        server's fork is one.
        """
        folder = str(self.home / "envs" / name / "instances").encode()
        found = {
            pid
            for pid in pids()
            if (argv := cmdline(pid).split(b"\0"))[1:3] == [b"-m", SERVER_MODULE.encode()]
            and argv[3].startswith(folder)
            and alive(pid)
        }
        # A server's own child between fork and exec still has the server's argv.
        return sorted(pid for pid in found if parent(pid) not in found)

    def ready_port(self, name: str) -> int:
        """The port the running instance of ``name`` announced (also for --detach starts)."""
        [ready] = (self.home / "envs" / name / "instances").glob("*/ready.json")
        return int(json.loads(ready.read_text())["port"])

    def wait_status(self, name: str, status: str, timeout: float) -> dict[str, Any]:
        return wait_for(
            lambda: (row := self.ps(name))["status"] == status and row,
            timeout,
            f"{name} to be {status}",
            every=0.2,
        )

    def logs(self, name: str) -> str:
        return self.run("logs", name).stdout

    # --- cleanup ----------------------------------------------------------------------

    def teardown(self) -> None:
        """Kill every process of this deployment, even after a failed test."""
        kill9(self.worker)
        kill9(self.temporal)
        kill_everything_of(self.home)


def kill_everything_of(home: Path) -> None:
    """SIGKILL each process that belongs to ``home``: servers, workers, instances, shells.

    Found by cmdline (the dev server's database, an instance folder), by environment
    (DEVENV_HOME of workers and background servers) and by the instances' tokens.
    """
    marker = str(home).encode()
    tokens = {f"DEVENV_ENV={path.name}".encode() for path in home.glob("envs/*/instances/*")}
    home_var = b"DEVENV_HOME=" + marker
    for _ in range(3):  # processes started while we were sweeping
        victims = [
            pid
            for pid in pids()
            if marker in cmdline(pid)
            or home_var in (env := environ(pid))
            or tokens.intersection(env)
        ]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if not victims:
            return
        time.sleep(0.1)  # a pause between sweeps, so the processes they started show up


def example_file() -> Path:
    return Path(__file__).parents[2] / "examples" / "dev.yml"


def closes_at(port: int, timeout: float, every: float = 0.05) -> datetime:
    """The moment ``port`` stops accepting connections (polled every ``every`` seconds)."""
    wait_for(lambda: not port_open(port), timeout, f"port {port} to close", every=every)
    return now()


__all__ = [
    "Cluster",
    "closes_at",
    "kill9",
    "kill_everything_of",
    "now",
    "port_open",
    "wait_for",
    "when",
]


def tcp_connections(pid: int, remote_port: int) -> list[int]:
    """Local ports of ``pid``'s established TCP connections to 127.0.0.1:``remote_port``."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established", "dst", f"127.0.0.1:{remote_port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        int(line.split()[2].rsplit(":", 1)[1])
        for line in listing.splitlines()
        if f"pid={pid}," in line
    ]


SS_K_REQUIREMENT = (
    "this test cuts one TCP connection with `ss -K` (iproute2), which needs CAP_NET_ADMIN "
    "(root) and a kernel built with CONFIG_INET_DIAG_DESTROY. CI (.ci/run) runs the suite "
    "as root on Debian 12, where iproute2 provides `ss`; locally: `apt-get install iproute2` "
    "and run the fault tests as root"
)


def require_ss_kill() -> None:
    """Fail (never skip) when ``ss`` is missing: the guarantee would go unchecked."""
    if shutil.which("ss") is None:
        pytest.fail(f"`ss` was not found on PATH: {SS_K_REQUIREMENT}", pytrace=False)


def _ss_k_failed(what: str) -> None:
    pytest.fail(f"{what} (running as uid {os.geteuid()}): {SS_K_REQUIREMENT}", pytrace=False)


def cut_tcp(local_port: int, remote_port: int) -> None:
    """Destroy one loopback TCP connection in the kernel (``ss -K``), as a network cut does:
    the owner's socket fails with ECONNABORTED and the peer gets a reset. Fails the test,
    saying what is missing, when the kernel did not do it."""
    require_ss_kill()
    result = subprocess.run(
        [
            "ss", "-K", "-tnH", "state", "established",
            "src", f"127.0.0.1:{local_port}", "dst", f"127.0.0.1:{remote_port}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        _ss_k_failed(f"`ss -K` exited {result.returncode}: {result.stderr.strip() or 'no message'}")
    listing = subprocess.run(
        ["ss", "-tnH", "state", "established", "src", f"127.0.0.1:{local_port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if f":{remote_port}" in listing:
        said = result.stderr.strip() or "nothing"
        _ss_k_failed(
            f"`ss -K` ran (it said: {said}) but 127.0.0.1:{local_port} -> :{remote_port} is "
            "still established (no CAP_NET_ADMIN, or a kernel without CONFIG_INET_DIAG_DESTROY)"
        )
