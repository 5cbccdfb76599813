"""A benchmark-only backend: instances cost nothing, users follow a script.

Provision and terminate do no work; presence follows the plan each environment
carries in its own configuration (``bench: {connect_at, leave_at}``, epoch seconds):
one user is connected from ``connect_at`` until ``leave_at``, as a real user who
opens a session and leaves. Everything is derived from the instance's data, so any
worker process can run any activity (``--workers K``).

Every provision, terminate and monitor start appends ``KIND WORKFLOW_ID EPOCH_SECONDS
ATTEMPT`` to ``$DEVENV_BENCH_RECORD_DIR/events-<pid>.log`` (one file per worker process):
the benchmark reads the wall-clock time each terminate ran and compares it with the
deadline the workflow computed, and, when it kills a worker, which process ran what and
how often (a retried terminate is recorded once per attempt). The probe reads the script
directly, so a monitor record is a monitor activity attempt.

Registered only by the benchmark (driver and worker entry) with ``registry.register(ENTRY)``;
the product never imports it.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio import activity

from devenv.backends.base import Backend
from devenv.backends.registry import BackendEntry
from devenv.models.config import EnvironmentConfig
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.models.state import InstanceInfo, PresenceReport
from devenv.settings import Settings

NAME = "bench"
ENTRY = BackendEntry(NAME, f"{__name__}:BenchConfig", f"{__name__}:BenchBackend")
RECORD_DIR_VAR = "DEVENV_BENCH_RECORD_DIR"
PROVISIONED = "P"
TERMINATED = "T"
MONITORED = "M"


class BenchSection(BaseModel):
    """When the one scripted user connects and leaves (epoch seconds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    connect_at: float | None = Field(default=None, description="None: nobody ever connects.")
    leave_at: float | None = Field(default=None, description="None: stays until the end.")


class BenchConfig(EnvironmentConfig):
    """``backend: bench`` with its ``bench`` section; activities run on the shared queue."""

    backend: Literal["bench"] = "bench"
    bench: BenchSection = BenchSection()

    def backend_section(self) -> dict[str, object]:
        return self.bench.model_dump(mode="json")


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Script:
    """One instance's presence as a function of time."""

    def __init__(self, data: dict[str, object]) -> None:
        self.born = float(data.get("provisioned_at") or 0.0)  # type: ignore[arg-type]
        connect = data.get("connect_at")
        leave = data.get("leave_at")
        self.connect = None if connect is None else float(connect)  # type: ignore[arg-type]
        self.leave = None if leave is None else float(leave)  # type: ignore[arg-type]

    def report(self, now: float) -> PresenceReport:
        """Who is present at ``now`` and since when that has been so."""
        if self.connect is None or now < self.connect:
            return PresenceReport(connections=0, last_change=_at(self.born))
        if self.leave is None or now < self.leave:
            return PresenceReport(connections=1, last_change=_at(self.connect))
        return PresenceReport(connections=0, last_change=_at(self.leave))

    def next_change(self, now: float) -> float | None:
        """The next moment the count changes after ``now`` (None: never again)."""
        for moment in (self.connect, self.leave):
            if moment is not None and moment > now:
                return moment
        return None


class BenchBackend(Backend):
    """Instances are a few numbers; only the time of each call is recorded."""

    name = NAME
    _records: ClassVar[dict[Path, IO[str]]] = {}

    def __init__(self, settings: Settings, record_dir: Path | None = None) -> None:
        super().__init__(settings)
        self.record_dir = record_dir

    @classmethod
    def for_worker(cls, settings: Settings) -> BenchBackend:
        raw = os.environ.get(RECORD_DIR_VAR)
        return cls(settings, Path(raw) if raw else None)

    def _record(self, kind: str, workflow_id: str | None = None) -> None:
        """One line per call; the workflow id and attempt come from the activity's info."""
        if self.record_dir is None:
            return
        try:
            info = activity.info()
        except RuntimeError:  # not in an activity (a direct call)
            attempt = 0
        else:
            workflow_id = workflow_id or info.workflow_id
            attempt = info.attempt
        path = self.record_dir / f"events-{os.getpid()}.log"
        out = self._records.get(path)
        if out is None:
            out = self._records[path] = path.open("a", buffering=1)
        out.write(f"{kind} {workflow_id} {time.time():.6f} {attempt}\n")

    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        self._record(PROVISIONED, request.workflow_id)
        section = request.spec.backend_config
        return InstanceInfo(
            instance_id=request.instance_token,
            backend=self.name,
            host="127.0.0.1",
            port=1,
            username="bench",
            host_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBench",
            task_queue=request.spec.host_task_queue or SHARED_TASK_QUEUE,
            data={
                "provisioned_at": time.time(),
                "connect_at": section.get("connect_at"),
                "leave_at": section.get("leave_at"),
            },
        )

    async def terminate(self, request: TerminateInput) -> None:
        self._record(TERMINATED, request.workflow_id)

    async def is_alive(self, instance: InstanceInfo) -> bool:
        return True

    async def probe(self, instance: InstanceInfo) -> PresenceReport:
        return Script(instance.data).report(time.time())

    async def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        self._record(MONITORED)
        script = Script(instance.data)
        while True:
            now = time.time()
            yield script.report(now)
            change = script.next_change(now)
            if change is None:
                await asyncio.Future()  # nothing changes any more: wait to be cancelled
            else:
                await asyncio.sleep(max(change - time.time(), 0.0))
