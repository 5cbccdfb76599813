"""What a worker does about the work of a worker that died (kill -9, OOM, power loss).

Temporal alone recovers everything, but slowly:

* A workflow is *sticky* to the worker that ran it last. After that worker dies, its
  next task (the idle deadline's timer, a query from `devenv ps`) is first offered to
  the dead worker's queue and only moves on after the sticky schedule-to-start
  timeout. A starting worker therefore releases the stickiness of every running
  environment, and our workers ask for a short sticky timeout.
* An activity attempt of a dead worker is retried only when it times out: the
  monitor after its heartbeat timeout (no user connection is seen meanwhile),
  provision and terminate after their start-to-close timeouts (minutes). So every
  attempt leaves its task token in a folder of its worker process under
  ``DEVENV_HOME/run/attempts``, and a starting worker fails the attempts of dead
  worker processes at once, so that Temporal retries them now (provision and
  terminate are idempotent; the monitor reports absolute counts).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from devenv.keys import private_dir
from devenv.settings import Settings
from devenv.workflows.state import WORKFLOW_TYPE

log = logging.getLogger(__name__)

STICKY_TIMEOUT = timedelta(seconds=2)
"""Sticky schedule-to-start timeout of our workers (SDK default 10 s): bounds how late a
task of a workflow cached by a worker that just died can be."""
WORKER_CRASHED = "WorkerCrashed"
"""ApplicationError type of an attempt failed on behalf of a dead worker (retryable)."""
RELEASE_CONCURRENCY = 16
PROC = Path("/proc")


def attempts_root(settings: Settings) -> Path:
    return settings.home / "run" / "attempts"


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot): tells pid reuse apart."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    if fields[0] in ("Z", "X"):
        return None
    return fields[19]


def process_tag(pid: int | None = None) -> str:
    """``PID-STARTTIME`` of a live process (default: this one)."""
    pid = pid or os.getpid()
    return f"{pid}-{_start_time(pid)}"


def _is_live(tag: str) -> bool:
    pid, _, started = tag.partition("-")
    return pid.isdigit() and _start_time(int(pid)) == started


class AttemptRegistry:
    """The task tokens of this process's running activity attempts, one file each."""

    def __init__(self, settings: Settings) -> None:
        self.folder = attempts_root(settings) / process_tag()

    @contextlib.contextmanager
    def running(self, info: activity.Info) -> Iterator[None]:
        """Record the attempt while it runs; a registry that cannot be written is logged only."""
        name = hashlib.sha256(info.task_token).hexdigest()[:32] + ".json"
        path = self.folder / name
        record = {
            "token": base64.b64encode(info.task_token).decode(),
            "activity": info.activity_type,
            "workflow_id": info.workflow_id,
            "attempt": info.attempt,
        }
        try:
            private_dir(self.folder)
            path.write_text(json.dumps(record))
        except OSError as err:
            log.warning("cannot record activity attempt in %s: %s", self.folder, err)
        try:
            yield
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        """At a graceful exit: the SDK has reported every attempt itself."""
        shutil.rmtree(self.folder, ignore_errors=True)


class _RecordAttempts(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, registry: AttemptRegistry) -> None:
        super().__init__(next)
        self._registry = registry

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with self._registry.running(activity.info()):
            return await self.next.execute_activity(input)


class RecordAttempts(Interceptor):
    """Worker interceptor: every activity attempt is in the registry while it runs."""

    def __init__(self, registry: AttemptRegistry) -> None:
        self._registry = registry

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _RecordAttempts(next, self._registry)


async def fail_orphaned_attempts(client: Client, settings: Settings) -> int:
    """Fail the recorded attempts of dead worker processes so Temporal retries them now."""
    orphans = await asyncio.to_thread(_claim_orphans, attempts_root(settings))
    failed = 0
    for pid, record in orphans:
        failed += await _fail(client, pid, record)
    return failed


def _claim_orphans(root: Path) -> list[tuple[str, dict[str, Any]]]:
    """The records of dead workers, their folders removed.

    A folder is claimed by renaming it first, so two workers starting together never
    both act on it; a claim by a worker that died meanwhile is taken over.
    """
    try:
        folders = sorted(root.iterdir())
    except OSError:
        return []
    me = process_tag()
    orphans: list[tuple[str, dict[str, Any]]] = []
    for folder in folders:
        tag, _, claimer = folder.name.partition(".claimed-")
        if not folder.is_dir() or _is_live(tag) or (claimer and _is_live(claimer)):
            continue  # a live worker's own attempts, or another starting worker is on it
        claimed = folder.with_name(f"{tag}.claimed-{me}")
        try:
            folder.rename(claimed)
        except OSError:
            continue
        for record_file in sorted(claimed.glob("*.json")):
            try:
                record = json.loads(record_file.read_text())
            except (OSError, ValueError):
                continue
            if isinstance(record, dict):
                orphans.append((tag.split("-", 1)[0], record))
        shutil.rmtree(claimed, ignore_errors=True)
    return orphans


async def _fail(client: Client, pid: str, record: dict[str, Any]) -> int:
    try:
        token = base64.b64decode(record["token"], validate=True)
    except (KeyError, TypeError, ValueError):
        return 0
    what = f"attempt {record.get('attempt')} of {record.get('activity')} for " + str(
        record.get("workflow_id")
    )
    error = ApplicationError(
        f"the worker running this attempt (pid {pid}) died; retrying at once",
        type=WORKER_CRASHED,
    )
    try:
        await client.get_async_activity_handle(task_token=token).fail(error)
    except RPCError as err:
        log.info("%s had already ended: %s", what, err.message)
        return 0
    log.warning("failed %s on behalf of dead worker pid %s, so it is retried now", what, pid)
    return 1


async def release_sticky_workflows(client: Client, settings: Settings) -> int:
    """Make every running environment's next task go to the shared queue, not to the
    sticky queue of a worker that may be dead; live workers just replay once."""
    query = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
    gate = asyncio.Semaphore(RELEASE_CONCURRENCY)

    async def release(workflow_id: str, run_id: str) -> bool:
        async with gate:
            try:
                await client.workflow_service.reset_sticky_task_queue(
                    ResetStickyTaskQueueRequest(
                        namespace=settings.namespace,
                        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    )
                )
            except RPCError as err:
                log.info("could not release %s: %s", workflow_id, err.message)
                return False
            return True

    jobs = [
        asyncio.create_task(release(execution.id, execution.run_id))
        async for execution in client.list_workflows(query)
    ]
    return sum(await asyncio.gather(*jobs))


async def recover(client: Client, settings: Settings) -> None:
    """Both recoveries, logged; a failure here delays recovery but never stops the worker."""
    try:
        released = await release_sticky_workflows(client, settings)
        failed = await fail_orphaned_attempts(client, settings)
    except (RPCError, RuntimeError, OSError) as err:
        log.warning("recovery after a worker crash incomplete: %s", err)
        return
    log.info(
        "recovery: %d running environment(s) released to this worker, "
        "%d attempt(s) of dead workers retried",
        released,
        failed,
    )
