"""Taking and keeping this worker process's lease (``devenv.workflows.lease``).

The lease workflow is started before the workers poll, so no monitor can land on a
watch queue that nothing would re-home. A lease that lapsed while the process lives
(its heartbeats starved for a minute) has re-homed the monitors; a new one is taken
for the same queue, and monitors that land there again are covered by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from devenv.models.messages import LeaseInput
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.workflows.lease import WorkerLeaseWorkflow, lease_workflow_id

log = logging.getLogger(__name__)

RETAKE_DELAY_SECONDS = 5.0


async def take_lease(client: Client, queue: str) -> WorkflowHandle[WorkerLeaseWorkflow, str]:
    """Start the lease of ``queue`` (or attach to the one running)."""
    return await client.start_workflow(
        WorkerLeaseWorkflow.run,
        LeaseInput(queue=queue),
        id=lease_workflow_id(queue),
        task_queue=SHARED_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def _keep(
    client: Client, queue: str, handle: WorkflowHandle[WorkerLeaseWorkflow, str]
) -> None:
    while True:
        try:
            ended = await handle.result()
            log.warning(
                "the lease of %s lapsed while this worker runs (%s); retaking", queue, ended
            )
        except (RPCError, WorkflowFailureError) as err:
            log.warning("lease of %s: %s; retaking", queue, err)
        await asyncio.sleep(RETAKE_DELAY_SECONDS)
        try:
            handle = await take_lease(client, queue)
        except RPCError as err:
            log.warning("could not retake the lease of %s: %s", queue, err.message)


@contextlib.asynccontextmanager
async def holding_lease(client: Client, queue: str) -> AsyncIterator[None]:
    """Hold the lease of ``queue`` for the duration of the block.

    Leaving the block does not end the lease: the workers' shutdown fails its activity,
    and the lease workflow re-homes the monitors to whichever worker runs next.
    """
    keeping = asyncio.create_task(_keep(client, queue, await take_lease(client, queue)))
    try:
        yield
    finally:
        keeping.cancel()
        await asyncio.gather(keeping, return_exceptions=True)
