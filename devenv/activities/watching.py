"""Where monitors run: this worker process's watch queue, its lease, and re-homing.

See ``devenv.workflows.lease`` for why: monitors on the shared queue heartbeat for
nothing; one lease per process proves all of them alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devenv.activities.activities import heartbeat_forever
from devenv.models.messages import LeaseInput, WatcherGone
from devenv.models.names import Activity
from devenv.models.state import WORKFLOW_TYPE
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.policies import LEASE_TERM
from devenv.workflows.visibility import WATCHER_MEMO

log = logging.getLogger(__name__)

LEASE_BEAT_SECONDS = 10.0
"""The SDK sends at most one heartbeat per 0.8 x the lease's 60 s timeout; calling more
often only makes sure one is always pending."""
REHOME_CONCURRENCY = 16


class WatchActivities:
    """The activities of one worker process's watch queue (``queue``; None: this process
    runs no watch worker, and monitors stay on the shared queue with heartbeats)."""

    def __init__(self, client: Client, queue: str | None):
        self._client = client
        self.queue = queue

    @activity.defn(name=Activity.WATCH_QUEUE)
    async def watch_queue(self) -> str | None:
        """Local activity: the queue of the process running the workflow task."""
        return self.queue

    @activity.defn(name=Activity.HOLD_LEASE)
    async def hold_lease(self, lease: LeaseInput) -> None:
        """Heartbeat for ``LEASE_TERM``; ends (failed) only with this process."""
        beating = asyncio.create_task(heartbeat_forever(LEASE_BEAT_SECONDS))
        try:
            await asyncio.sleep(LEASE_TERM.total_seconds())
        finally:
            beating.cancel()

    @activity.defn(name=Activity.REHOME)
    async def rehome(self, lease: LeaseInput) -> int:
        """Tell every running environment watched from ``lease.queue`` to watch again."""
        query = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
        gate = asyncio.Semaphore(REHOME_CONCURRENCY)
        gone = WatcherGone(queue=lease.queue)

        async def tell(workflow_id: str, run_id: str | None) -> int:
            async with gate:
                try:
                    await self._client.get_workflow_handle(workflow_id, run_id=run_id).signal(
                        DevEnvironmentWorkflow.watcher_gone, gone
                    )
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND:
                        return 0  # ended meanwhile
                    raise
                return 1

        tasks: list[asyncio.Task[int]] = []
        seen = 0
        beating = asyncio.create_task(heartbeat_forever(LEASE_BEAT_SECONDS))
        try:
            async for execution in self._client.list_workflows(query):
                seen += 1
                watcher = await execution.memo_value(WATCHER_MEMO, None, type_hint=str)
                if watcher == lease.queue:
                    tasks.append(asyncio.create_task(tell(execution.id, execution.run_id)))
            moved = sum(await asyncio.gather(*tasks))
        finally:
            beating.cancel()
            for task in tasks:
                task.cancel()
        log.info("worker of %s gone: %d of %d environment(s) re-homed", lease.queue, moved, seen)
        return moved


def watch_activities(acts: WatchActivities) -> list[Callable[..., object]]:
    """What the shared queue's worker registers (``watch_queue`` as a local activity)."""
    return [acts.watch_queue, acts.rehome]


__all__ = ["WatchActivities", "watch_activities"]
