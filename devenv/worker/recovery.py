"""What a worker does about the work of a worker that died (kill -9, OOM, power loss).

Temporal alone recovers everything, but slowly:

* A workflow is *sticky* to the worker that ran it last. After that worker dies, its
  next task (the idle deadline's timer, a query from `devenv ps`) is first offered to
  the dead worker's queue and only moves on after the sticky schedule-to-start
  timeout. A starting worker therefore releases the stickiness of every running
  environment, and our workers ask for a short sticky timeout.
* An activity attempt of a dead worker is retried only when it times out: the
  monitor after its heartbeat timeout (no user connection is seen meanwhile),
  provision and terminate after their start-to-close timeouts (minutes), a dead
  worker's lease after its heartbeat timeout (its monitors move then). A starting
  worker therefore fails, by id, every started attempt whose worker identity
  (``pid@host``) names a process of this host that is gone, so that Temporal retries
  it now (provision and terminate are idempotent; the monitor reports absolute
  counts). The identity is recorded by the server when it hands out the task, so
  this also covers a task the dead worker received but never began to run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import timedelta
from pathlib import Path

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import ResetStickyTaskQueueRequest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from devenv.models.state import WORKFLOW_TYPE
from devenv.settings import Settings
from devenv.workflows.lease import LEASE_WORKFLOW_TYPE

log = logging.getLogger(__name__)

STICKY_TIMEOUT = timedelta(seconds=2)
"""Sticky schedule-to-start timeout of our workers (SDK default 10 s): bounds how late a
task of a workflow cached by a worker that just died can be."""
WORKER_CRASHED = "WorkerCrashed"
"""ApplicationError type of an attempt failed on behalf of a dead worker (retryable)."""
CONCURRENCY = 16
RUNNING_STATES = (
    PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
    PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED,
)
"""A dead worker's attempt in these states waits for a timeout unless failed."""
PROC = Path("/proc")


def dead_local_worker(identity: str, hostname: str | None = None) -> int | None:
    """The pid in a worker identity ``pid@host`` if it names a gone process of this host.

    The SDK's default identity is ``pid@hostname``. A pid now used by a process that is
    not devenv counts as gone; identities of other hosts are never judged.
    """
    pid_text, _, host = identity.partition("@")
    if host != (hostname or socket.gethostname()) or not pid_text.isdigit():
        return None
    pid = int(pid_text)
    if pid == os.getpid():
        return None
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        argv = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return pid
    alive = stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
    return None if alive and b"devenv" in argv else pid


async def _running_environments(client: Client) -> list[tuple[str, str]]:
    """Environments, and the leases of workers (a dead one's monitors move when it ends)."""
    query = (
        f'(WorkflowType="{WORKFLOW_TYPE}" OR WorkflowType="{LEASE_WORKFLOW_TYPE}") '
        'AND ExecutionStatus="Running"'
    )
    return [(execution.id, execution.run_id) async for execution in client.list_workflows(query)]


async def release_sticky(client: Client, settings: Settings, workflow_id: str, run_id: str) -> bool:
    """Send this environment's next task to the shared queue, not to the sticky queue of a
    worker that may be dead; a live worker that cached it just replays once."""
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


async def fail_orphaned_attempts(client: Client, workflow_id: str, run_id: str) -> int:
    """Fail the started activity attempts of dead workers of this host; Temporal retries them."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    try:
        description = await handle.describe()
    except RPCError as err:
        log.info("could not describe %s: %s", workflow_id, err.message)
        return 0
    failed = 0
    for pending in description.raw_description.pending_activities:
        if pending.state not in RUNNING_STATES:
            continue
        pid = dead_local_worker(pending.last_worker_identity)
        if pid is None:
            continue
        what = f"attempt {pending.attempt} of {pending.activity_type.name} for {workflow_id}"
        error = ApplicationError(
            f"the worker running this attempt (pid {pid}) died; retrying at once",
            type=WORKER_CRASHED,
        )
        try:
            await client.get_async_activity_handle(
                workflow_id=workflow_id, run_id=run_id, activity_id=pending.activity_id
            ).fail(error)
        except RPCError as err:
            log.info("%s had already ended: %s", what, err.message)
            continue
        log.warning("failed %s on behalf of dead worker pid %d, so it is retried now", what, pid)
        failed += 1
    return failed


async def recover(client: Client, settings: Settings) -> None:
    """Both recoveries for every running environment; a failure here delays recovery but
    never stops the worker."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(workflow_id: str, run_id: str) -> tuple[bool, int]:
        async with gate:
            released = await release_sticky(client, settings, workflow_id, run_id)
            return released, await fail_orphaned_attempts(client, workflow_id, run_id)

    try:
        results = await asyncio.gather(
            *(one(*execution) for execution in await _running_environments(client))
        )
    except (RPCError, RuntimeError) as err:
        log.warning("recovery after a worker crash incomplete: %s", err)
        return
    log.info(
        "recovery: %d running environment(s) released to this worker, "
        "%d attempt(s) of dead workers retried",
        sum(released for released, _ in results),
        sum(failed for _, failed in results),
    )
