"""Keeps exactly one ``monitor`` activity running for a RUNNING environment.

A monitor that ended is restarted: at once after a healthy run, with growing
delays when it keeps ending quickly (an instance that refuses the stream must not
make the workflow spin). One that reports the instance lost ends the environment.

Where it runs: a local instance's monitor on its host's queue, heartbeating (its
worker is the only one that can reach it). Any other's on the watch queue of the
worker process running the workflow task, without periodic heartbeats: that process's
lease stands for all its monitors, and when it lapses the environment is told
(``watcher_gone``) and starts its monitor again on a live worker (``lease``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

from devenv.models.messages import INSTANCE_LOST, MonitorInput
from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.state import EnvState
from devenv.workflows.display import failure_message
from devenv.workflows.patches import WATCH_PATCH
from devenv.workflows.policies import (
    MONITOR_HEALTHY_RUN,
    MONITOR_HEARTBEAT,
    MONITOR_MAX_RESTART_DELAY,
    MONITOR_RETRY,
    MONITOR_TIMEOUT,
    WATCH_QUEUE_RETRY,
    WATCH_QUEUE_TIMEOUT,
)
from devenv.workflows.visibility import WATCHER_MEMO


class MonitorSupervisor:
    def __init__(self, state: EnvState, event: Callable[[str], None]) -> None:
        self._state = state
        self._event = event
        self.handle: workflow.ActivityHandle[None] | None = None
        self._started_at: datetime | None = None
        self._quick_ends = 0
        self.restart_at: datetime | None = None
        """When a monitor that ended too quickly is started again (None: not waiting)."""
        self.queue: str | None = None
        """The watch queue the current monitor was scheduled on (None: its instance's)."""
        self._moving_from: str | None = None
        """The watch queue of a worker that died, while its monitor is being replaced."""

    def finished(self) -> bool:
        """The monitor ended: the workflow must wake up and tend it."""
        return self.handle is not None and self.handle.done()

    def watcher_gone(self, queue: str) -> bool:
        """The worker of ``queue`` died: if the monitor runs there, give it up (True)."""
        handle = self.handle
        if handle is None or handle.done() or self.queue != queue:
            return False
        self._moving_from = queue
        handle.cancel()
        return True

    async def tend(self, now: datetime) -> str | None:
        """Restart an ended monitor when due; returns why the instance is lost, if it is."""
        s = self._state
        if s.instance is None or not s.tuning.monitor or s.termination_reason is not None:
            return None
        handle = self.handle
        if handle is not None and handle.done() and self._moving_from is not None:
            self.handle = None
            self._event(f"the worker watching from {self._moving_from} is gone; monitor restarting")
            self._moving_from = None
        elif handle is not None and handle.done():
            self.handle = None
            err = None if handle.cancelled() else handle.exception()
            cause = err.cause if isinstance(err, ActivityError) else None
            if isinstance(cause, ApplicationError) and cause.type == INSTANCE_LOST:
                return cause.message
            started = self._started_at or now
            if now - started >= MONITOR_HEALTHY_RUN:
                self._quick_ends = 0
            delay = 0 if self._quick_ends == 0 else 2 ** (self._quick_ends - 1)
            delay = min(delay, MONITOR_MAX_RESTART_DELAY)
            self._quick_ends += 1
            self.restart_at = now + timedelta(seconds=delay) if delay else None
            why = "completed" if err is None else f"failed: {failure_message(err)}"
            self._event(f"monitor {why}; restarting" + (f" in {delay}s" if delay else ""))
        if self.handle is None and (self.restart_at is None or self.restart_at <= now):
            self.restart_at = None
            self._started_at = now
            queue = await self._watch_queue()
            if s.termination_reason is not None:
                return None  # a stop arrived while the queue was asked
            self.queue = queue
            self.handle = workflow.start_activity(
                Activity.MONITOR,
                MonitorInput(
                    workflow_id=s.workflow_id,
                    instance=s.instance,
                    keepalive_seconds=s.tuning.keepalive_seconds,
                    run_id=workflow.info().run_id if queue else None,
                ),
                task_queue=queue or s.instance.task_queue,
                start_to_close_timeout=MONITOR_TIMEOUT,
                heartbeat_timeout=None if queue else MONITOR_HEARTBEAT,
                retry_policy=MONITOR_RETRY,
                cancellation_type=ActivityCancellationType.TRY_CANCEL,
                summary="monitor: who is present (presence stream)",
            )
        return None

    async def _watch_queue(self) -> str | None:
        """The watch queue of the worker running this task, for an instance any worker
        can reach; None: the instance's own queue, with heartbeats (also when that
        worker runs no watch queue, or asking failed)."""
        s = self._state
        assert s.instance is not None
        if s.instance.task_queue != SHARED_TASK_QUEUE or not workflow.patched(WATCH_PATCH):
            return None
        asking = workflow.start_local_activity(
            Activity.WATCH_QUEUE,
            result_type=str,
            start_to_close_timeout=WATCH_QUEUE_TIMEOUT,
            retry_policy=WATCH_QUEUE_RETRY,
        )
        try:
            queue: str = await asking
        except ActivityError as err:
            self._event(f"no watch queue ({failure_message(err)}); monitor on the shared queue")
            return None
        if not queue:
            return None
        if workflow.memo_value(WATCHER_MEMO, None, type_hint=str) != queue:
            workflow.upsert_memo({WATCHER_MEMO: queue})
        return queue

    async def stop(self) -> None:
        """Cancel the running monitor and wait until it has ended."""
        handle, self.handle = self.handle, None
        self.restart_at = None
        if handle is None or handle.done():
            return
        handle.cancel()
        try:
            await handle
        except (ActivityError, asyncio.CancelledError):
            pass
