"""The life of one dev environment, as a Temporal workflow.

PROVISIONING -> RUNNING -> TERMINATING -> TERMINATED (or FAILED). While RUNNING
the workflow sleeps on ONE durable timer whose deadline is recomputed from
``EnvState`` on every wake, so a threshold change, a user (dis)connecting or a
stop request takes effect at once and survives any crash.

Deterministic code only: activities are referenced by name so this module
imports no I/O code, time comes from ``workflow.now()`` and ids from
``workflow.uuid4()``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from devenv.activities.models import (
        INSTANCE_LOST,
        MonitorInput,
        ProbeInput,
        ProvisionInput,
        TerminateInput,
    )
    from devenv.workflows.durations import MAX_SECONDS, format_duration
    from devenv.workflows.state import (
        MAX_EVENTS,
        WORKFLOW_TYPE,
        ActivityReport,
        DeadlineAnswer,
        EnvEvent,
        EnvState,
        InstanceInfo,
        Status,
        TerminationReason,
    )

PROVISIONING_ERROR = "ProvisioningError"
"""ApplicationError type of a provisioning failure that retrying cannot fix."""

PROVISION_TIMEOUT = timedelta(minutes=10)
PROVISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
    non_retryable_error_types=[PROVISIONING_ERROR],
)
WORK_HEARTBEAT = timedelta(seconds=30)
"""Provision and terminate heartbeat every 5 s: an attempt lost with its worker is retried
after 30 s on any host, not after the 10 / 5 minute start-to-close timeout."""
MONITOR_TIMEOUT = timedelta(days=30)
MONITOR_HEARTBEAT = timedelta(seconds=30)
MONITOR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=[INSTANCE_LOST],
)
MONITOR_HEALTHY_RUN = timedelta(minutes=1)
"""A monitor that ended after running this long is restarted at once, a quicker one with backoff."""
MONITOR_MAX_RESTART_DELAY = 60
TERMINATE_TIMEOUT = timedelta(minutes=5)
TERMINATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
)
PROBE_PATCH = "probe-before-idle-termination"
"""Histories recorded before the probe existed replay without it (workflow.patched)."""
PROBE_TIMEOUT = timedelta(seconds=15)
PROBE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_attempts=3,
    non_retryable_error_types=[INSTANCE_LOST],
)
MIN_TIMER = timedelta(milliseconds=1)

STATUS_ATTR = SearchAttributeKey.for_keyword("DevEnvStatus")
BACKEND_ATTR = SearchAttributeKey.for_keyword("DevEnvBackend")
NAME_ATTR = SearchAttributeKey.for_keyword("DevEnvName")
DEADLINE_ATTR = SearchAttributeKey.for_datetime("DevEnvDeadline")

_ENDING = (Status.TERMINATING, Status.TERMINATED, Status.FAILED)


@workflow.defn(name=WORKFLOW_TYPE)
class DevEnvironmentWorkflow:
    """One environment: provision it, watch who is connected, terminate it when idle."""

    @workflow.init
    def __init__(self, state: EnvState) -> None:
        self._state = state
        if state.instance_token is None:
            # First run. Here, not in run(): handlers of a stop that arrives with the
            # start run before run() does and must already see a created environment.
            state.instance_token = str(workflow.uuid4())
            state.created_at = workflow.now()
            self._event(
                f"environment {state.spec.name!r} created (backend {state.spec.backend}, "
                f"inactivity {format_duration(state.spec.inactivity_duration)}, "
                f"max duration {format_duration(state.spec.max_duration)})"
            )
        self._wake = False
        """Set by handlers when the deadline may move earlier or active/idle flips."""
        self._monitor: workflow.ActivityHandle[None] | None = None
        self._monitor_started_at: datetime | None = None
        self._monitor_quick_ends = 0
        self._monitor_restart_at: datetime | None = None

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, state: EnvState) -> EnvState:
        """Drive the state machine; every branch ends with the instance cleaned up."""
        s = self._state
        self._publish()
        if s.status == Status.PROVISIONING:
            await self._provision()
        if s.status == Status.RUNNING:
            await self._watch()
        if s.status == Status.TERMINATING:
            await self._terminate()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return s

    async def _provision(self) -> None:
        """PROVISIONING: create the instance, or clean up whatever was created and FAIL."""
        s = self._state
        assert s.instance_token is not None
        try:
            s.instance = await workflow.execute_activity(
                "provision",
                ProvisionInput(
                    workflow_id=s.workflow_id, instance_token=s.instance_token, spec=s.spec
                ),
                result_type=InstanceInfo,
                task_queue=self._host_queue(),
                start_to_close_timeout=PROVISION_TIMEOUT,
                heartbeat_timeout=WORK_HEARTBEAT,
                retry_policy=PROVISION_RETRY,
                # Cancelled, it must stop before cleanup by token starts, or it could
                # create the instance after the cleanup looked for it.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except (ActivityError, asyncio.CancelledError) as err:
            if workflow.cancellation_reason() is not None:  # the provision stopped on cancel
                self._begin_termination(
                    TerminationReason.STOPPED_BY_USER,
                    "workflow cancelled while provisioning; cleaning up by token",
                )
                return
            if not isinstance(err, ActivityError):
                raise
            s.error = _failure_message(err)
            s.status = Status.TERMINATING
            s.termination_reason = TerminationReason.PROVISIONING_FAILED
            self._event(f"provisioning failed: {s.error}; cleaning up")
            self._publish()
            await self._run_terminate(task_queue=self._host_queue())
            s.status = Status.FAILED
            s.ended_at = workflow.now()
            s.deadline = s.deadline_reason = None
            self._event("failed: provisioning_failed (cleanup done)")
            self._publish()
            return
        now = workflow.now()
        where = f"{s.instance.username}@{s.instance.host}:{s.instance.port}"
        if s.status != Status.TERMINATING and workflow.cancellation_reason() is not None:
            # A provision that ignored the cancel and finished: the cancel still stands.
            self._begin_termination(
                TerminationReason.STOPPED_BY_USER, "workflow cancelled while provisioning"
            )
        if s.status == Status.TERMINATING:  # stopped while provisioning
            self._event(f"instance {s.instance.instance_id} ready at {where}; stop pending")
            return
        s.status = Status.RUNNING
        s.ready_at = s.idle_since = now
        s.connections = 0
        self._event(f"instance {s.instance.instance_id} ready at {where}")

    async def _watch(self) -> None:
        """RUNNING: one durable timer, recomputed from state on every wake.

        Returns with status TERMINATING once a termination reason is set;
        continues as new instead when history grows long.
        """
        s = self._state
        while True:
            now = workflow.now()
            self._tend_monitor(now)
            self._check_monitor_silence(now)
            self._recompute()
            if (
                s.termination_reason is None
                and s.deadline is not None
                and s.deadline_reason is not None
                and s.deadline <= now
                and await self._confirm_idle()
            ):
                self._begin_termination(s.deadline_reason, self._exceeded_message())
            if s.termination_reason is not None:
                return
            self._publish()  # before continue-as-new too: the server carries the attributes
            if self._history_too_long():
                await self._continue_as_new()
                continue  # a stop arrived while handlers finished: terminate instead
            wake_at = self._next_wake()
            self._wake = False
            try:
                await workflow.wait_condition(
                    self._should_wake,
                    timeout=None if wake_at is None else max(wake_at - now, MIN_TIMER),
                )
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                # Cancelling the workflow must not leak the instance: treat it as a stop.
                self._begin_termination(
                    TerminationReason.STOPPED_BY_USER, "workflow cancelled; stopping"
                )

    async def _confirm_idle(self) -> bool:
        """Before ending an idle environment, ask the instance once who is connected.

        The monitor may be behind (restarting after a worker crash, or its stream
        cut): a user who connected meanwhile must not lose the machine. A probe
        that cannot answer does not keep the machine alive; the monitor's own
        silence bound already covers a blind monitor.
        """
        s = self._state
        if (
            s.deadline_reason != TerminationReason.INACTIVITY_DURATION_EXCEEDED
            or s.instance is None
            or not s.tuning.monitor
            or not workflow.patched(PROBE_PATCH)
        ):
            return True
        try:
            seen = await workflow.execute_activity(
                "probe",
                ProbeInput(workflow_id=s.workflow_id, instance=s.instance),
                result_type=ActivityReport,
                task_queue=s.instance.task_queue,
                start_to_close_timeout=PROBE_TIMEOUT,
                retry_policy=PROBE_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == INSTANCE_LOST:
                self._begin_termination(
                    TerminationReason.INSTANCE_LOST, f"instance lost: {cause.message}"
                )
                return False
            self._event(f"could not confirm idleness ({_failure_message(err)}); ending anyway")
            return True
        if s.termination_reason is not None or s.status != Status.RUNNING:
            return False  # a stop arrived while the probe ran
        now = workflow.now()
        if seen.connections > 0 and s.connections == 0:
            s.connections = seen.connections
            s.last_report_at = now
            self._event(
                f"deadline reached, but the instance reports "
                f"{_plural(seen.connections, 'connection')}; staying up"
            )
        elif seen.connections == 0 and s.connections == 0 and s.idle_since is not None:
            last_change = min(_utc(seen.last_change), now)
            if last_change > s.idle_since:
                s.idle_since = last_change
                self._event(
                    f"deadline reached, but a user was connected until "
                    f"{_clock(last_change)}; idle since then"
                )
        self._recompute()
        return (
            s.deadline is not None
            and s.deadline <= now
            and s.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        )

    def _should_wake(self) -> bool:
        return self._wake or (self._monitor is not None and self._monitor.done())

    def _next_wake(self) -> datetime | None:
        """The earliest moment something may be due: deadline, silence check, monitor restart."""
        s = self._state
        times = [s.deadline, self._monitor_restart_at]
        if s.connections > 0 and s.last_report_at is not None:
            times.append(s.last_report_at + timedelta(seconds=s.tuning.keepalive_bound_seconds))
        return min((t for t in times if t is not None), default=None)

    async def _terminate(self) -> None:
        """TERMINATING -> TERMINATED: stop watching, delete the instance, record the end."""
        s = self._state
        await self._stop_monitor()
        self._publish()
        await self._run_terminate(
            task_queue=s.instance.task_queue if s.instance else self._host_queue()
        )
        s.status = Status.TERMINATED
        s.ended_at = workflow.now()
        s.deadline = s.deadline_reason = None
        s.connections = 0
        reason = s.termination_reason.value if s.termination_reason else "unknown"
        self._event(f"terminated: {reason}")
        self._publish()

    async def _run_terminate(self, task_queue: str) -> None:
        """Retried forever: an instance that cannot be deleted must not be forgotten."""
        s = self._state
        assert s.instance_token is not None
        handle = workflow.start_activity(
            "terminate",
            TerminateInput(
                workflow_id=s.workflow_id,
                instance_token=s.instance_token,
                spec=s.spec,
                instance=s.instance,
            ),
            task_queue=task_queue,
            start_to_close_timeout=TERMINATE_TIMEOUT,
            heartbeat_timeout=WORK_HEARTBEAT,
            retry_policy=TERMINATE_RETRY,
        )
        while True:
            try:
                await asyncio.shield(handle)
                return
            except asyncio.CancelledError:
                if handle.done():
                    raise
                # Cancelling the workflow now would leave the instance running.
                self._event("cancellation deferred until the instance is terminated")

    def _begin_termination(self, reason: TerminationReason, message: str) -> None:
        s = self._state
        s.status = Status.TERMINATING
        s.termination_reason = reason
        self._wake = True
        self._event(message)
        self._publish()

    def _exceeded_message(self) -> str:
        s = self._state
        if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
            return (
                f"max duration {format_duration(s.spec.max_duration)} exceeded "
                f"(created {_clock(s.created_at)}); terminating"
            )
        return (
            f"inactivity threshold {format_duration(s.spec.inactivity_duration)} exceeded "
            f"(idle since {_clock(s.idle_since)}); terminating"
        )

    # -------------------------------------------------------------- monitor

    def _tend_monitor(self, now: datetime) -> None:
        """Keep exactly one monitor running; an instance it reports lost ends the environment."""
        s = self._state
        if s.instance is None or not s.tuning.monitor or s.termination_reason is not None:
            return
        handle = self._monitor
        if handle is not None and handle.done():
            self._monitor = None
            err = None if handle.cancelled() else handle.exception()
            cause = err.cause if isinstance(err, ActivityError) else None
            if isinstance(cause, ApplicationError) and cause.type == INSTANCE_LOST:
                self._begin_termination(
                    TerminationReason.INSTANCE_LOST, f"instance lost: {cause.message}"
                )
                return
            started = self._monitor_started_at or now
            if now - started >= MONITOR_HEALTHY_RUN:
                self._monitor_quick_ends = 0
            delay = 0 if self._monitor_quick_ends == 0 else 2 ** (self._monitor_quick_ends - 1)
            delay = min(delay, MONITOR_MAX_RESTART_DELAY)
            self._monitor_quick_ends += 1
            self._monitor_restart_at = now + timedelta(seconds=delay) if delay else None
            why = "completed" if err is None else f"failed: {_failure_message(err)}"
            self._event(f"monitor {why}; restarting" + (f" in {delay}s" if delay else ""))
        if self._monitor is None and (
            self._monitor_restart_at is None or self._monitor_restart_at <= now
        ):
            self._monitor_restart_at = None
            self._monitor_started_at = now
            self._monitor = workflow.start_activity(
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
            )

    async def _stop_monitor(self) -> None:
        handle, self._monitor = self._monitor, None
        self._monitor_restart_at = None
        if handle is None or handle.done():
            return
        handle.cancel()
        try:
            await handle
        except (ActivityError, asyncio.CancelledError):
            pass

    def _check_monitor_silence(self, now: datetime) -> None:
        """A monitor silent past the bound must not keep a machine alive: count as idle."""
        s = self._state
        if s.connections == 0 or s.last_report_at is None:
            return
        if now < s.last_report_at + timedelta(seconds=s.tuning.keepalive_bound_seconds):
            return
        s.connections = 0
        s.idle_since = max(s.last_report_at, s.ready_at or s.last_report_at)
        self._event(f"monitor silent since {_clock(s.last_report_at)}; counting as idle since then")

    # ---------------------------------------------------------------- deadline

    def _recompute(self) -> None:
        """The earlier of the idle rule (only while nobody is connected) and max_duration."""
        s = self._state
        candidates: list[tuple[datetime, TerminationReason]] = []
        if s.spec.max_duration is not None and s.created_at is not None:
            candidates.append(
                (
                    s.created_at + timedelta(seconds=s.spec.max_duration),
                    TerminationReason.MAX_DURATION_EXCEEDED,
                )
            )
        if (
            s.spec.inactivity_duration is not None
            and s.connections == 0
            and s.idle_since is not None
            and s.status == Status.RUNNING
        ):
            candidates.append(
                (
                    s.idle_since + timedelta(seconds=s.spec.inactivity_duration),
                    TerminationReason.INACTIVITY_DURATION_EXCEEDED,
                )
            )
        if s.status not in (Status.PROVISIONING, Status.RUNNING) or not candidates:
            s.deadline = s.deadline_reason = None
            return
        s.deadline, s.deadline_reason = min(candidates, key=lambda c: c[0])

    def _history_too_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._state.tuning.max_history_events
        )

    async def _continue_as_new(self) -> None:
        """Carry the whole state into a fresh run; returns only if a stop arrived meanwhile."""
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._state.termination_reason is not None:
            return
        await self._stop_monitor()
        if self._state.termination_reason is not None:
            return
        s = self._state
        length = workflow.info().get_current_history_length()
        s.runs += 1
        self._event(f"history has {length} events; continuing as new (run {s.runs})")
        workflow.continue_as_new(s)

    # ---------------------------------------------------------------- signals

    @workflow.signal
    def record_activity(self, report: ActivityReport) -> None:
        """From the monitor: a change of the connection count, or a keepalive."""
        s = self._state
        if s.status != Status.RUNNING:
            self._event(
                f"activity report ignored while {s.status.value} "
                f"({_plural(report.connections, 'connection')})"
            )
            return
        now = workflow.now()
        s.last_report_at = now
        before, after = s.connections, report.connections
        if after == before:
            return  # keepalive or repeat: only the time counts; do not wake the timer
        s.connections = after
        if after == 0:
            assert s.ready_at is not None
            s.idle_since = min(max(_utc(report.last_change), s.ready_at), now)
            self._event(f"last user disconnected; idle since {_clock(s.idle_since)}")
        elif before == 0:
            self._event(f"user connected ({_plural(after, 'connection')})")
        else:
            self._event(f"connections changed from {before} to {after}")
        if (before == 0) != (after == 0):
            self._wake = True  # active/idle flipped: the deadline appears or disappears
        self._publish()

    @workflow.signal
    def update_inactivity(self, seconds: int | None) -> None:
        """Fire-and-forget form of ``set_inactivity``; invalid values are logged and ignored."""
        self._signal_threshold("inactivity_duration", seconds)

    @workflow.signal
    def update_max_duration(self, seconds: int | None) -> None:
        """Fire-and-forget form of ``set_max_duration``; invalid values are logged and ignored."""
        self._signal_threshold("max_duration", seconds)

    @workflow.signal
    def stop(self, reason: str | None = None) -> None:
        """Fire-and-forget form of ``request_stop``."""
        try:
            self._validate_not_ending()
        except ValueError as err:
            self._event(f"stop ignored: {err}")
            return
        self._apply_stop(reason)

    def _signal_threshold(self, field: str, seconds: int | None) -> None:
        try:
            self._validate_threshold(field, seconds)
        except ValueError as err:
            self._event(f"{field} signal ignored: {err}")
            return
        self._apply_threshold(field, seconds)

    # ---------------------------------------------------------------- updates

    @workflow.update
    def set_inactivity(self, seconds: int | None) -> DeadlineAnswer:
        """Change the idle threshold (``None``/0: off) and answer with the new deadline."""
        return self._apply_threshold("inactivity_duration", seconds)

    @set_inactivity.validator
    def _validate_set_inactivity(self, seconds: int | None) -> None:
        self._validate_threshold("inactivity_duration", seconds)

    @workflow.update
    def set_max_duration(self, seconds: int | None) -> DeadlineAnswer:
        """Change the hard cap from creation (``None``/0: off) and answer with the new deadline."""
        return self._apply_threshold("max_duration", seconds)

    @set_max_duration.validator
    def _validate_set_max_duration(self, seconds: int | None) -> None:
        self._validate_threshold("max_duration", seconds)

    @workflow.update
    def request_stop(self, reason: str | None = None) -> DeadlineAnswer:
        """Stop now; the answer confirms the environment is terminating."""
        return self._apply_stop(reason)

    @request_stop.validator
    def _validate_request_stop(self, reason: str | None = None) -> None:
        self._validate_not_ending()

    def _validate_not_ending(self) -> None:
        s = self._state
        if s.status in _ENDING:
            reason = s.termination_reason.value if s.termination_reason else s.status.value
            verb = "is terminating" if s.status == Status.TERMINATING else "has ended"
            raise ValueError(f"environment {verb}: {reason}")

    def _validate_threshold(self, field: str, seconds: int | None) -> None:
        self._validate_not_ending()
        if seconds is None:
            return
        if isinstance(seconds, bool) or not isinstance(seconds, int):
            raise ValueError(f"{field} must be whole seconds or null (off), got {seconds!r}")
        if seconds < 0 or seconds > MAX_SECONDS:
            raise ValueError(
                f"{field} must be between 0 (off) and {MAX_SECONDS} seconds (4w), got {seconds}"
            )

    def _apply_threshold(self, field: str, seconds: int | None) -> DeadlineAnswer:
        """Set a threshold, recompute; an already exceeded one terminates at once."""
        s = self._state
        value = seconds or None
        label = "inactivity threshold" if field == "inactivity_duration" else "max duration"
        old = getattr(s.spec, field)
        setattr(s.spec, field, value)
        self._recompute()
        deadline, reason = s.deadline, s.deadline_reason
        if deadline is not None and reason is not None and deadline <= workflow.now():
            self._begin_termination(
                reason,
                f"{label} changed from {format_duration(old)} to {format_duration(value)}; "
                f"already exceeded, terminating",
            )
        else:
            self._event(
                f"{label} changed from {format_duration(old)} to {format_duration(value)}; "
                f"deadline {_clock(deadline) if deadline else 'none'}"
            )
            self._wake = True  # the deadline may have moved earlier
            self._publish()
        # The deadline as computed for the new value, even the exceeded one that ends it.
        return self._answer(deadline, reason)

    def _apply_stop(self, reason: str | None) -> DeadlineAnswer:
        self._begin_termination(
            TerminationReason.STOPPED_BY_USER,
            "stop requested" + (f": {reason}" if reason else ""),
        )
        return self._answer()

    def _answer(
        self, deadline: datetime | None = None, reason: TerminationReason | None = None
    ) -> DeadlineAnswer:
        s = self._state
        return DeadlineAnswer(
            status=s.status,
            inactivity_duration=s.spec.inactivity_duration,
            max_duration=s.spec.max_duration,
            deadline=deadline,
            deadline_reason=reason,
            terminating=s.status == Status.TERMINATING,
        )

    # ---------------------------------------------------------------- query

    @workflow.query
    def status(self) -> EnvState:
        """The whole state, for ``devenv ps`` / ``logs`` and the Web UI."""
        return self._state

    # ---------------------------------------------------------------- helpers

    def _host_queue(self) -> str:
        return self._state.spec.host_task_queue or workflow.info().task_queue

    def _event(self, message: str) -> None:
        events = self._state.events
        events.append(EnvEvent(at=workflow.now(), message=message))
        if len(events) > MAX_EVENTS:
            del events[: len(events) - MAX_EVENTS]

    def _publish(self) -> None:
        """Web UI: current details always; search attributes only when a value changed.

        Recomputes the deadline first, so the query, the details and the search
        attributes never show a stale one after a handler changed the state.
        """
        s = self._state
        self._recompute()
        workflow.set_current_details(self._details())
        if not s.tuning.search_attributes:
            return
        current = workflow.info().typed_search_attributes
        updates: list[SearchAttributeUpdate[Any]] = []
        for key, value in (
            (STATUS_ATTR, s.status.value),
            (BACKEND_ATTR, s.spec.backend),
            (NAME_ATTR, s.spec.name),
        ):
            if current.get(key) != value:
                updates.append(key.value_set(value))
        if current.get(DEADLINE_ATTR) != s.deadline:
            updates.append(
                DEADLINE_ATTR.value_unset()
                if s.deadline is None
                else DEADLINE_ATTR.value_set(s.deadline)
            )
        if updates:
            workflow.upsert_search_attributes(updates)

    def _details(self) -> str:
        s = self._state
        lines = [f"**{s.status.value}**"]
        if s.termination_reason:
            lines[0] += f" ({s.termination_reason.value})"
        if s.status == Status.RUNNING:
            if s.connections:
                lines.append(f"active: {_plural(s.connections, 'connection')}")
            else:
                lines.append(f"idle since {_clock(s.idle_since)}")
        if s.deadline is not None and s.deadline_reason is not None:
            lines.append(f"deadline {_clock(s.deadline)} ({s.deadline_reason.value})")
        lines.append(
            f"inactivity {format_duration(s.spec.inactivity_duration)}, "
            f"max duration {format_duration(s.spec.max_duration)}"
        )
        if s.error:
            lines.append(f"error: {s.error}")
        return "  \n".join(lines)


def _failure_message(err: BaseException) -> str:
    """The innermost meaningful message: 'Activity task failed' says nothing to a user."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    if isinstance(err, FailureError):
        return err.message
    return str(err) or type(err).__name__


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _clock(moment: datetime | None) -> str:
    """``10:02:03Z`` today, with the date otherwise: short enough for one log line."""
    if moment is None:
        return "never"
    moment = _utc(moment)
    if moment.date() == _utc(workflow.now()).date():
        return moment.strftime("%H:%M:%SZ")
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
