"""Suspend and resume inside an environment's workflow: which requests are accepted, and
the two transitions SUSPENDING -> SUSPENDED and RESUMING -> RUNNING.

Suspended, nothing runs and the disk is kept; the workflow sleeps on its one durable
timer until a resume, a stop, or ``delete_after``. Both activities are idempotent and
retried (bounded, ``policies.SUSPEND_RETRY``): a worker killed mid-way is retried, and a
backend that keeps failing leaves the environment as it was, with an event saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from devenv.models import deadline
from devenv.models.durations import format_duration
from devenv.models.messages import INSTANCE_LOST, SuspendInput
from devenv.models.names import Activity
from devenv.models.state import EnvState, InstanceInfo, Status, TerminationReason
from devenv.workflows import changes, policies
from devenv.workflows.display import clock, failure_message

SUSPENDING_OR_SUSPENDED = (Status.SUSPENDING, Status.SUSPENDED)


def validate_suspend(s: EnvState) -> None:
    """Refuse, in one line, a suspend that cannot apply now."""
    changes.validate_not_ending(s)
    name = s.spec.name
    if not s.spec.suspendable:
        raise ValueError(
            f"{name} cannot be suspended: backend {s.spec.backend} cannot suspend "
            "(`devenv stop` ends it)"
        )
    if s.status in SUSPENDING_OR_SUSPENDED:
        raise ValueError(f"{name} is already {s.status.value}; `devenv resume {name}` resumes it")
    if s.status != Status.RUNNING:
        raise ValueError(f"{name} is {s.status.value}; suspend it once it is running")


def validate_resume(s: EnvState) -> None:
    """Refuse, in one line, a resume of an environment that is not suspended."""
    changes.validate_not_ending(s)
    if s.status in (Status.PROVISIONING, Status.RUNNING):
        raise ValueError(f"{s.spec.name} is {s.status.value}, not suspended: nothing to resume")


def idle_words(s: EnvState) -> str:
    """Why an idle rule suspends it: idle for the threshold, or the idle budget spent."""
    return f"{deadline.rule_words(s)} (on_idle: suspend)"


def asked_words(reason: str | None) -> str:
    return "asked" + (f": {reason}" if reason else "")


class Suspension:
    """The two transitions; ``event`` records, ``publish`` shows the state, ``end`` begins
    a termination (a workflow cancelled meanwhile, or the instance lost)."""

    def __init__(
        self,
        state: EnvState,
        event: Callable[[str], None],
        publish: Callable[[], None],
        end: Callable[[TerminationReason, str], None],
    ) -> None:
        self._state = state
        self._event = event
        self._publish = publish
        self._end = end

    async def suspend(self) -> None:
        """SUSPENDING -> SUSPENDED (RESUMING if a resume came meanwhile); back to RUNNING
        when the backend could not; TERMINATING when a stop came or the instance is gone."""
        s = self._state
        assert s.instance is not None and s.instance_token is not None
        try:
            info = await self._run(Activity.SUSPEND, "suspend", policies.SUSPEND_TIMEOUT)
        except ActivityError as err:
            if self._instance_lost(err) or s.termination_reason is not None:
                return
            s.status = Status.RUNNING
            s.suspended_at = s.suspend_reason = None
            s.resume_requested = False
            s.idle_since = workflow.now()
            self._event(f"suspend failed ({failure_message(err)}); still running")
            self._publish()
            return
        s.instance = info
        s.connections = s.jobs = 0
        s.sessions = []
        if s.termination_reason is not None:
            return  # stopped while suspending: terminate runs on the suspended instance
        s.status = Status.SUSPENDED
        s.warned_for = None
        ends = "kept until stopped"
        if s.spec.delete_after is not None:
            assert s.suspended_at is not None
            at = s.suspended_at + timedelta(seconds=s.spec.delete_after)
            ends = f"deleted at {clock(at)} unless resumed"
        self._event(f"suspended: {s.suspend_reason}; workspace kept, {ends}")
        if s.resume_requested:
            self.begin_resume("resume asked while suspending")
        self._publish()

    def begin_resume(self, why: str) -> None:
        s = self._state
        s.resume_requested = False
        s.status = Status.RESUMING
        s.warned_for = None
        self._event(f"resuming ({why})")

    async def resume(self) -> None:
        """RESUMING -> RUNNING on the instance's new address (same host key); back to
        SUSPENDED when the backend could not; TERMINATING when the instance is gone."""
        s = self._state
        assert s.instance is not None and s.suspended_at is not None
        try:
            info = await self._run(Activity.RESUME, "resume", policies.RESUME_TIMEOUT)
        except ActivityError as err:
            if self._instance_lost(err) or s.termination_reason is not None:
                return
            s.status = Status.SUSPENDED
            s.error = f"resume failed: {failure_message(err)}"
            self._event(f"{s.error}; still suspended")
            self._publish()
            return
        now = workflow.now()
        away = now - s.suspended_at
        s.suspended_seconds += away.total_seconds()
        s.instance = info
        s.suspended_at = s.suspend_reason = None
        s.error = None
        s.idle_since = now
        s.connections = s.jobs = 0
        # The machine started again: its failsafe and banner are told afresh.
        s.failsafe_policy = None
        s.login = None
        if s.termination_reason is not None:
            return
        s.status = Status.RUNNING
        where = f"{info.username}@{info.host}:{info.port}"
        away_words = format_duration(max(int(away.total_seconds()), 1))
        self._event(f"resumed at {where} (suspended for {away_words})")
        self._publish()

    async def _run(self, name: Activity, summary: str, timeout: timedelta) -> InstanceInfo:
        """Run the activity to its end: a cancel of the workflow meanwhile becomes a stop
        that waits for it, so the instance is never left half suspended."""
        s = self._state
        assert s.instance is not None and s.instance_token is not None
        handle = workflow.start_activity(
            name,
            SuspendInput(
                workflow_id=s.workflow_id,
                instance_token=s.instance_token,
                spec=s.spec,
                instance=s.instance,
            ),
            result_type=InstanceInfo,
            task_queue=s.instance.task_queue,
            start_to_close_timeout=timeout,
            heartbeat_timeout=policies.WORK_HEARTBEAT,
            retry_policy=policies.SUSPEND_RETRY,
            summary=summary,
        )
        while True:
            try:
                return await asyncio.shield(handle)
            except asyncio.CancelledError:
                if handle.done():
                    raise
                if s.termination_reason is None:
                    self._end(
                        TerminationReason.STOPPED_BY_USER,
                        f"workflow cancelled; stopping once the {summary} ends",
                    )

    def _instance_lost(self, err: ActivityError) -> bool:
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == INSTANCE_LOST:
            if self._state.termination_reason is None:
                self._end(TerminationReason.INSTANCE_LOST, f"instance lost: {cause.message}")
            return True
        return False
