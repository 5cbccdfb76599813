"""Keeps exactly one ``monitor`` activity running for a RUNNING environment.

A monitor that ended is restarted: at once after a healthy run, with growing
delays when it keeps ending quickly (an instance that refuses the stream must not
make the workflow spin). One that reports the instance lost ends the environment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

from devenv.workflows.display import failure_message
from devenv.workflows.messages import INSTANCE_LOST, MonitorInput
from devenv.workflows.policies import (
    MONITOR_HEALTHY_RUN,
    MONITOR_HEARTBEAT,
    MONITOR_MAX_RESTART_DELAY,
    MONITOR_RETRY,
    MONITOR_TIMEOUT,
)
from devenv.workflows.state import EnvState


class MonitorSupervisor:
    def __init__(self, state: EnvState, event: Callable[[str], None]) -> None:
        self._state = state
        self._event = event
        self.handle: workflow.ActivityHandle[None] | None = None
        self._started_at: datetime | None = None
        self._quick_ends = 0
        self.restart_at: datetime | None = None
        """When a monitor that ended too quickly is started again (None: not waiting)."""

    def finished(self) -> bool:
        """The monitor ended: the workflow must wake up and tend it."""
        return self.handle is not None and self.handle.done()

    def tend(self, now: datetime) -> str | None:
        """Restart an ended monitor when due; returns why the instance is lost, if it is."""
        s = self._state
        if s.instance is None or not s.tuning.monitor or s.termination_reason is not None:
            return None
        handle = self.handle
        if handle is not None and handle.done():
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
            self.handle = workflow.start_activity(
                "monitor",
                MonitorInput(
                    workflow_id=s.workflow_id,
                    instance=s.instance,
                    keepalive_seconds=s.tuning.keepalive_seconds,
                ),
                task_queue=s.instance.task_queue,
                start_to_close_timeout=MONITOR_TIMEOUT,
                heartbeat_timeout=MONITOR_HEARTBEAT,
                retry_policy=MONITOR_RETRY,
                cancellation_type=ActivityCancellationType.TRY_CANCEL,
                summary="monitor: who is present (presence stream)",
            )
        return None

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
