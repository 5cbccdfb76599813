"""The life of one dev environment, as a Temporal workflow.

PROVISIONING -> RUNNING -> TERMINATING -> TERMINATED (or FAILED); RUNNING may also go
SUSPENDING -> SUSPENDED -> RESUMING -> RUNNING (``suspension``), and a suspended one
is deleted after ``delete_after``. While RUNNING or SUSPENDED
the workflow sleeps on ONE durable timer whose deadline is recomputed from
``EnvState`` on every wake, so a threshold change, a user (dis)connecting or a
stop request takes effect at once and survives any crash.

Deterministic code only: activities are referenced by their names
(``devenv.models.names``) so this module imports no I/O code, time comes from
``workflow.now()`` and ids from ``workflow.uuid4()``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from devenv.models import connected_idle, deadline, gpu_policy
    from devenv.models.deadline import IDLE_REASONS
    from devenv.models.durations import format_duration
    from devenv.models.idle_budget import priced
    from devenv.models.messages import (
        INSTANCE_LOST,
        ProbeInput,
        ProvisionInput,
        TerminateInput,
        WatcherGone,
    )
    from devenv.models.names import SHARED_TASK_QUEUE, Activity, Query, Signal, Update
    from devenv.models.state import (
        MAX_EVENTS,
        WORKFLOW_TYPE,
        Change,
        DeadlineAnswer,
        EnvEvent,
        EnvState,
        InstanceInfo,
        PresenceReport,
        Status,
        TerminationReason,
    )
    from devenv.workflows import (
        adaptive,
        changes,
        inputs,
        patches,
        policies,
        policy_apply,
        suspension,
    )
    from devenv.workflows.display import (
        clock,
        exceeded_message,
        failure_message,
        presence_words,
        provision_summary,
        suspends_at_deadline,
        wake_summary,
        warning_message,
        warning_withdrawn,
    )
    from devenv.workflows.group import GroupKeeper
    from devenv.workflows.monitoring import MonitorSupervisor
    from devenv.workflows.owner_history import OwnerHistory
    from devenv.workflows.presence import probe_answer, take_report
    from devenv.workflows.pushes import InstancePushes
    from devenv.workflows.visibility import publish

T = TypeVar("T")
LIVE = (Status.RUNNING, Status.SUSPENDING, Status.SUSPENDED, Status.RESUMING)
"""Statuses the life loop of ``run`` goes through until the environment ends."""


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
                f"max duration {format_duration(state.spec.max_duration)}"
                + (
                    f", connected_idle {format_duration(state.spec.connected_idle)}"
                    if state.spec.connected_idle is not None
                    else ""
                )
                + f"{adaptive.created_words(state.spec)})"
            )
            adaptive.start(state)
        self._wake = False
        """Set by handlers when the deadline may move earlier or active/idle flips."""
        self._monitor = MonitorSupervisor(state, self._event)
        self._pushes = InstancePushes(state, self._event, self._wake_up)
        self._owner_history = OwnerHistory(state, self._event, self._wake_up)
        self._suspension = suspension.Suspension(
            state, self._event, self._publish, self._begin_termination
        )
        self._group = GroupKeeper(
            state,
            self._event,
            lambda: self._begin_termination(
                TerminationReason.STOPPED_BY_USER, "workflow cancelled; stopping"
            ),
        )
        self._confirmed: str | None = None
        """What the probe said right before an idle termination (for its event)."""

    # ------------------------------------------------------------------ run

    @workflow.run
    async def run(self, state: EnvState) -> EnvState:
        """Drive the state machine; every branch ends with the instance cleaned up."""
        s = self._state
        self._publish()
        if s.status == Status.PROVISIONING:
            await self._provision()
        while s.status in LIVE:
            if s.status == Status.RUNNING:
                await self._watch()
            elif s.status == Status.SUSPENDING:
                await self._suspension.suspend()
            elif s.status == Status.SUSPENDED:
                await self._rest()
            else:
                await self._suspension.resume()
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
                Activity.PROVISION,
                ProvisionInput(
                    workflow_id=s.workflow_id, instance_token=s.instance_token, spec=s.spec
                ),
                result_type=InstanceInfo,
                task_queue=self._host_queue(),
                start_to_close_timeout=policies.PROVISION_TIMEOUT,
                heartbeat_timeout=policies.WORK_HEARTBEAT,
                retry_policy=policies.PROVISION_RETRY,
                # Cancelled, it must stop before cleanup by token starts, or it could
                # create the instance after the cleanup looked for it.
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary=provision_summary(s.spec),
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
            s.error = failure_message(err)
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
        s.instance = priced(s.instance, s.spec)
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
        self._owner_history.start()
        while True:
            now = workflow.now()
            lost = await self._monitor.tend(now)
            if lost is not None:
                self._begin_termination(TerminationReason.INSTANCE_LOST, f"instance lost: {lost}")
            self._check_monitor_silence(now)
            deadline.recompute(s)
            if self._group.due(now) and await self._group.ask(now):
                self._publish()  # the group kept it: a later deadline, a new idle clock
            if deadline.overdue(s, now) and await self._confirm_idle():
                assert s.deadline_reason is not None
                if self._suspends_when_idle():
                    self._begin_suspension(suspension.idle_words(s))
                else:
                    self._begin_termination(s.deadline_reason, exceeded_message(s, self._confirmed))
            if s.termination_reason is not None:
                return
            if s.status != Status.RUNNING:  # suspending: the presence stream ends with it
                await self._monitor.stop()
                return
            if s.deadline_reason == TerminationReason.CONNECTED_IDLE and deadline.warning_due(
                s, now
            ):
                await self._refresh_signs()
                now = workflow.now()
                if s.termination_reason is not None:
                    return
            warnings = self._tend_warning(now)
            self._publish()  # before continue-as-new too: the server carries the attributes
            self._pushes.failsafe_policy()
            self._pushes.login()
            if self._history_too_long():
                await self._continue_as_new()
                continue  # a stop arrived while handlers finished: terminate instead
            wake_at = deadline.next_wake(s, self._monitor.restart_at, warnings)
            await self._sleep(now, wake_at)

    async def _rest(self) -> None:
        """SUSPENDED: nothing runs; the one durable timer waits for ``delete_after`` (and
        its warning) while a resume or a stop may come at any time."""
        s = self._state
        while True:
            now = workflow.now()
            deadline.recompute(s)
            if deadline.overdue(s, now):
                assert s.deadline_reason is not None
                self._begin_termination(s.deadline_reason, exceeded_message(s))
            if s.status != Status.SUSPENDED:
                return
            warnings = self._tend_warning(now)
            self._publish()
            if self._history_too_long():
                await self._continue_as_new()
                continue
            await self._sleep(now, deadline.next_wake(s, None, warnings))

    async def _sleep(self, now: datetime, wake_at: datetime | None) -> None:
        """Wait on the one timer until ``wake_at`` or until a handler wakes the workflow."""
        s = self._state
        self._wake = False
        try:
            await workflow.wait_condition(
                self._should_wake,
                timeout=None if wake_at is None else max(wake_at - now, policies.MIN_TIMER),
                timeout_summary=wake_summary(s, wake_at, self._monitor.restart_at),
            )
        except TimeoutError:
            pass
        except asyncio.CancelledError:
            # Cancelling the workflow must not leak the instance: treat it as a stop.
            self._begin_termination(
                TerminationReason.STOPPED_BY_USER, "workflow cancelled; stopping"
            )

    def _suspends_when_idle(self) -> bool:
        """An idle deadline (the threshold, or the idle budget) of an environment with
        ``on_idle: suspend`` suspends it."""
        s = self._state
        return (
            s.deadline_reason in IDLE_REASONS
            and s.spec.on_idle == "suspend"
            and s.spec.suspendable
            and workflow.patched(patches.SUSPEND_PATCH)
        )

    def _begin_suspension(self, why: str) -> None:
        """RUNNING -> SUSPENDING (the loop in ``run`` then suspends the instance)."""
        s = self._state
        workflow.patched(patches.SUSPEND_PATCH)
        s.status = Status.SUSPENDING
        s.suspended_at = workflow.now()
        s.suspend_reason = why
        s.deadline = s.deadline_reason = None
        self._wake = True
        self._event(f"suspending: {why}")
        self._publish()

    async def _confirm_idle(self) -> bool:
        """Before ending an idle environment, ask the instance once who is connected.

        The monitor may be behind (restarting after a worker crash, or its stream
        cut): a user who connected meanwhile must not lose the machine. A probe
        that cannot answer does not keep the machine alive; the monitor's own
        silence bound already covers a blind monitor.
        """
        s = self._state
        if (
            s.deadline_reason not in IDLE_REASONS
            or s.instance is None
            or (
                s.deadline_reason == TerminationReason.CONNECTED_IDLE
                and not workflow.patched(patches.CONNECTED_IDLE_PATCH)
            )
            or (
                s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED
                and not workflow.patched(patches.GPU_POLICY_PATCH)
            )
            or not s.tuning.monitor
            or not workflow.patched(patches.PROBE_PATCH)
        ):
            return True
        try:
            seen = await self._probe("probe: who is connected")
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == INSTANCE_LOST:
                self._begin_termination(
                    TerminationReason.INSTANCE_LOST, f"instance lost: {cause.message}"
                )
                return False
            self._event(f"could not confirm idleness ({failure_message(err)}); ending anyway")
            return True
        if s.termination_reason is not None or s.status != Status.RUNNING:
            return False  # a stop arrived while the probe ran
        now = workflow.now()
        # The late-login rule puts the inactivity deadline off; an idle budget's waiting
        # connections restart the idle clock instead (the budget is per idle stretch).
        late_login = (
            seen.waiting > 0
            and s.connections == 0
            and s.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
            and workflow.patched(patches.LATE_LOGIN_PATCH)
        )
        idle_since = s.idle_since
        if s.deadline_reason == TerminationReason.CONNECTED_IDLE:
            connected_idle.note_signs(s, seen, now)  # a keystroke since the last report
        gpu_policy.note(s, seen, now, probe=True)  # a GPU busy now keeps it
        told = probe_answer(s, seen, now, late_login)
        if told is not None:
            self._event(told)
        # A user the monitor missed ended a break too (auto learns it).
        if (moved := adaptive.after_report(s, idle_since, True, now)) is not None:
            self._event(moved)
        self._confirmed = f"the instance confirmed {presence_words(seen.connections, seen.jobs)}"
        deadline.recompute(s)
        return s.deadline is not None and s.deadline <= now and s.deadline_reason in IDLE_REASONS

    async def _probe(self, summary: str) -> PresenceReport:
        """Ask the instance who is present now (and their latest signs of life)."""
        s = self._state
        assert s.instance is not None
        probe = ProbeInput(workflow_id=s.workflow_id, instance=s.instance)
        options: dict[str, Any] = {
            "result_type": PresenceReport,
            "start_to_close_timeout": policies.PROBE_TIMEOUT,
            "retry_policy": policies.PROBE_RETRY,
            "summary": summary,
        }
        if s.instance.task_queue == SHARED_TASK_QUEUE and workflow.patched(
            patches.LOCAL_PROBE_PATCH
        ):
            seen: PresenceReport = await workflow.execute_local_activity(
                Activity.PROBE, probe, **options
            )
            return seen
        seen = await workflow.execute_activity(
            Activity.PROBE, probe, task_queue=s.instance.task_queue, **options
        )
        return seen

    async def _refresh_signs(self) -> None:
        """Before warning a connected user that they count as absent, ask the instance
        for its latest terminal input: the monitor forwards changes of who is present
        and keepalives, not every keystroke. A probe that fails warns anyway."""
        s = self._state
        if (
            s.instance is None
            or not s.tuning.monitor
            or not workflow.patched(patches.CONNECTED_IDLE_PATCH)
        ):
            return
        try:
            seen = await self._probe("probe: terminal input before a connected_idle warning")
        except ActivityError:
            return
        if s.termination_reason is None and s.status == Status.RUNNING:
            connected_idle.note_signs(s, seen, workflow.now())
            deadline.recompute(s)

    def _tend_warning(self, now: datetime) -> bool:
        """Warn once per deadline, ahead of it; record when a warned termination is off.

        False when no warning applies (or for histories recorded before warnings), so
        the timer then waits for the deadline alone.
        """
        s = self._state
        if s.warned_for is not None and s.deadline != s.warned_for:
            self._event(warning_withdrawn(s))
            s.warned_for = None
        if deadline.warn_at(s) is None or not workflow.patched(patches.WARN_PATCH):
            return False
        if deadline.warning_due(s, now):
            assert s.deadline is not None and s.deadline_reason is not None
            s.warned_for = s.deadline
            message = warning_message(
                s, now, costs=self._warns_costs(), suspends=self._warns_suspension()
            )
            self._event(message)
            self._pushes.warn(message, now)
        return True

    def _warns_costs(self) -> bool:
        """A suspended one's warning says what storage costs (asked only on that path),
        unless the machine costs nothing: it saves nothing either."""
        s = self._state
        if s.status != Status.SUSPENDED or not workflow.patched(patches.STORAGE_COST_PATCH):
            return False
        free = s.instance is not None and s.instance.price_per_hour == 0
        return not (free and workflow.patched(patches.FREE_SUSPENSION_PATCH))

    def _warns_suspension(self) -> bool:
        """An idle deadline under ``on_idle: suspend`` is warned as a suspension (asked only
        on that path; histories recorded before said it terminates)."""
        return suspends_at_deadline(self._state) and workflow.patched(patches.SUSPEND_WARNING_PATCH)

    def _should_wake(self) -> bool:
        return self._wake or self._monitor.finished()

    async def _terminate(self) -> None:
        """TERMINATING -> TERMINATED: stop watching, delete the instance, record the end."""
        s = self._state
        self._owner_history.stop()
        await self._monitor.stop()
        self._publish()
        await self._run_terminate(
            task_queue=s.instance.task_queue if s.instance else self._host_queue()
        )
        s.status = Status.TERMINATED
        s.ended_at = workflow.now()
        s.deadline = s.deadline_reason = None
        s.connections = s.jobs = 0
        s.sessions = []
        reason = s.termination_reason.value if s.termination_reason else "unknown"
        self._event(f"terminated: {reason}")
        self._publish()
        await self._owner_history.finished()

    async def _run_terminate(self, task_queue: str) -> None:
        """Retried forever (policies.TERMINATE_RETRY); a cancel waits until it is done."""
        s = self._state
        assert s.instance_token is not None
        handle = workflow.start_activity(
            Activity.TERMINATE,
            TerminateInput(
                workflow_id=s.workflow_id,
                instance_token=s.instance_token,
                spec=s.spec,
                instance=s.instance,
                purge_workspace=s.purge_workspace,
            ),
            task_queue=task_queue,
            start_to_close_timeout=policies.TERMINATE_TIMEOUT,
            heartbeat_timeout=policies.WORK_HEARTBEAT,
            retry_policy=policies.TERMINATE_RETRY,
            summary="terminate"
            + (f" ({s.termination_reason.value})" if s.termination_reason else ""),
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

    def _check_monitor_silence(self, now: datetime) -> None:
        """A monitor silent past the bound must not keep a machine alive: count as idle."""
        s = self._state
        if not deadline.monitor_silent(s, now):
            return
        assert s.last_report_at is not None
        s.connections = 0
        s.idle_since = max(s.last_report_at, s.ready_at or s.last_report_at)
        self._event(f"monitor silent since {clock(s.last_report_at)}; counting as idle since then")

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
        await self._monitor.stop()
        if self._state.termination_reason is not None:
            return
        s = self._state
        length = workflow.info().get_current_history_length()
        s.runs += 1
        self._event(f"history has {length} events; continuing as new (run {s.runs})")
        workflow.continue_as_new(s)

    # ---------------------------------------------------------------- signals

    @workflow.signal(name=Signal.RECORD_PRESENCE)
    def record_presence(self, *args: Any) -> None:
        """From the monitor: a change of who is present, or a keepalive.

        The wire name predates the word "presence"; it stays so histories replay."""
        ok, report = self._signal_input(
            Signal.RECORD_PRESENCE,
            args,
            inputs.strict_presence,
            lambda raw: inputs.lenient_model(PresenceReport, raw),
        )
        if not ok:
            return
        s = self._state
        idle_since, was_idle = s.idle_since, s.connections + s.jobs == 0
        taken = take_report(s, report, workflow.now())
        if taken.message is not None:
            self._event(taken.message)
        moved = adaptive.after_report(s, idle_since, was_idle, workflow.now())
        if taken.flipped and moved is not None:
            self._event(moved)
        if taken.flipped:
            self._wake = True
        if taken.changed:
            self._publish()

    @workflow.signal(name=Signal.WATCHER_GONE)
    def watcher_gone(self, *args: Any) -> None:
        """From a lapsed worker lease: the monitor's worker died; watch from a live one."""
        ok, gone = self._signal_input(
            Signal.WATCHER_GONE,
            args,
            inputs.strict_watcher_gone,
            lambda raw: inputs.lenient_model(WatcherGone, raw),
        )
        if ok and self._monitor.watcher_gone(gone.queue):
            self._wake = True

    def _signal_input(
        self,
        signal: str,
        args: tuple[Any, ...],
        strict: Callable[[tuple[Any, ...]], T],
        lenient: Callable[[tuple[Any, ...]], T],
    ) -> tuple[bool, T]:
        """(True, the input) when a signal's input is acceptable; otherwise an event says
        it was ignored and why, and (False, ...). Never raises (inputs.signal_input)."""
        ok, value, refused = inputs.signal_input(
            args, strict, lenient, lambda: not workflow.patched(patches.STRICT_SIGNALS_PATCH)
        )
        if not ok:
            self._event(f"{signal} signal ignored: {refused}")
        return ok, value

    # ---------------------------------------------------------------- updates

    # Updates take their inputs raw: the validator refuses garbage (inputs.strict_*);
    # the handler, run only for an accepted update, reads it as the converter did before
    # (inputs.lenient_*), so recorded histories replay unchanged. What a change does to
    # the state, and which are refused, is changes.py; here it is recorded.

    @workflow.update(name=Update.CHANGE)
    def change(self, *args: Any) -> DeadlineAnswer:
        """Everything one PATCH asks, applied together and attributed to ``change.by``.

        On a shared environment the members are told (its events; the webhook, if set)."""
        change = inputs.lenient_model(Change, args)
        s = self._state
        seen = len(s.events)
        by = change.by
        steps: list[Callable[[], DeadlineAnswer]] = []
        if (inactivity := change.inactivity) is not None:
            steps.append(
                lambda: self._apply_threshold("inactivity_duration", inactivity.seconds, by)
            )
        if (cap := change.max_duration) is not None:
            steps.append(lambda: self._apply_threshold("max_duration", cap.seconds, by))
        if (stop_at := change.stop_at) is not None:
            policy_apply.record_stop_request(s, stop_at.at)
            steps.append(lambda: self._record(changes.apply_stop_at(s, stop_at.at, by)))
        if (extend := change.extend) is not None:
            steps.append(lambda: self._apply_extend(extend, by))
        if (users := change.shared_with) is not None:
            steps.append(lambda: self._record(changes.apply_shared(s, users, by)))
        answer = changes.answer(s, s.deadline, s.deadline_reason)
        for step in steps:
            if s.status in changes.ENDING:
                break  # a lowered threshold already ended it: the rest is moot
            answer = step()
        told = [event.message for event in s.events[seen:]] if len(s.events) > seen else []
        self._pushes.tell_members(told, change.by)
        return answer

    @change.validator
    def _validate_change(self, *args: Any) -> None:
        change = inputs.strict_change(args)
        changes.validate_change(self._state, change, workflow.now())
        policy_apply.validate_within(self._state, policy_apply.threshold_values(change), change)

    @workflow.update(name=Update.APPLY_ORG_POLICY)
    def apply_org_policy(self, *args: Any) -> bool:
        """An admin's policy (``devenv policy set``), sent to every running environment:
        its thresholds clamped to the bounds (policy_apply); True if one moved. A version
        already applied is refused by the validator, so a repeated fan-out records nothing."""
        if not workflow.patched(patches.ORG_POLICY_PATCH):
            return False
        policy = policy_apply.lenient(args)
        applied = policy_apply.apply(self._state, policy, workflow.now())
        if applied.ends is not None:
            self._begin_termination(applied.ends, "; ".join(applied.messages))
        elif applied.messages:
            for message in applied.messages:
                self._event(message)
            self._wake = True
            self._publish()
            if policy.budget_spent is not None and workflow.patched(patches.IDLE_BUDGET_PATCH):
                self._pushes.tell_policy(applied.messages)
        return bool(applied.messages)

    @apply_org_policy.validator
    def _validate_apply_org_policy(self, *args: Any) -> None:
        policy_apply.validate(self._state, args)

    @workflow.update(name=Update.SET_PURGE_WORKSPACE)
    def set_purge_workspace(self, *args: Any) -> DeadlineAnswer:
        """Have the coming termination delete the workspace too (``stop --purge``)."""
        self._event(changes.apply_purge_workspace(self._state, inputs.lenient_bool(args)))
        return changes.answer(self._state)

    @set_purge_workspace.validator
    def _validate_set_purge_workspace(self, *args: Any) -> None:
        inputs.strict_bool(Update.SET_PURGE_WORKSPACE, args)
        changes.validate_not_ending(self._state)

    @workflow.update(name=Update.REQUEST_SUSPEND)
    def request_suspend(self, *args: Any) -> DeadlineAnswer:
        """Suspend now (``devenv suspend``): processes end, the disk is kept."""
        reason = inputs.lenient_reason(args)
        self._begin_suspension(suspension.asked_words(reason))
        return changes.answer(self._state)

    @request_suspend.validator
    def _validate_request_suspend(self, *args: Any) -> None:
        inputs.strict_reason(args, "a suspend")
        suspension.validate_suspend(self._state)

    @workflow.update(name=Update.REQUEST_RESUME)
    def request_resume(self, *args: Any) -> DeadlineAnswer:
        """Resume a suspended environment (``devenv resume``); one still suspending
        resumes as soon as it is suspended. The caller waits for RUNNING."""
        reason = inputs.lenient_reason(args)
        s = self._state
        if s.status == Status.SUSPENDING:
            s.resume_requested = True
            self._event("resume asked while suspending: it resumes once suspended")
        elif s.status == Status.SUSPENDED:
            self._suspension.begin_resume(suspension.asked_words(reason))
            self._wake = True
            self._publish()
        return changes.answer(s)

    @request_resume.validator
    def _validate_request_resume(self, *args: Any) -> None:
        inputs.strict_reason(args, "a resume")
        suspension.validate_resume(self._state)

    @workflow.update(name=Update.REQUEST_STOP)
    def request_stop(self, *args: Any) -> DeadlineAnswer:
        """Stop now; the answer confirms the environment is terminating."""
        return self._apply_stop(inputs.lenient_reason(args))

    @request_stop.validator
    def _validate_request_stop(self, *args: Any) -> None:
        inputs.strict_reason(args)
        changes.validate_not_ending(self._state)

    def _apply_threshold(
        self, field: str, seconds: int | None, by: str | None = None
    ) -> DeadlineAnswer:
        """Set a threshold; an already exceeded one terminates at once."""
        policy_apply.record_request(self._state, field, seconds)
        return self._record(
            changes.apply_threshold(self._state, field, seconds, workflow.now(), by)
        )

    def _apply_extend(self, seconds: int, by: str | None = None) -> DeadlineAnswer:
        capped = workflow.patched(patches.EXTEND_CAP_PATCH)
        return self._record(changes.apply_extend(self._state, seconds, capped, by))

    def _apply_stop(self, reason: str | None) -> DeadlineAnswer:
        self._begin_termination(TerminationReason.STOPPED_BY_USER, changes.stop_message(reason))
        return changes.answer(self._state)

    def _record(self, applied: changes.Applied) -> DeadlineAnswer:
        """Record an applied change: its event (or the termination it starts), a wake of
        the timer (the deadline may have moved earlier), the search attributes; answer."""
        s = self._state
        if applied.ends is not None:
            self._begin_termination(applied.ends, applied.message)
        else:
            self._event(applied.message)
            self._wake = True
            self._publish()
        due, reason = applied.answers or (s.deadline, s.deadline_reason)
        return changes.answer(s, due, reason)

    # ---------------------------------------------------------------- query

    @workflow.query(name=Query.STATUS)
    def status(self, *args: Any) -> EnvState:
        """The whole state, for ``devenv ps`` / ``logs`` and the Web UI (inputs ignored)."""
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
        """Recompute the deadline first, so the query, the Web UI and the search
        attributes never show a stale one after a handler changed the state."""
        deadline.recompute(self._state)
        publish(self._state)

    def _wake_up(self) -> None:
        self._wake = True

    # ---------------------------------------------------------------- compatibility

    # Handlers no current devenv client sends: the single-field updates from before
    # ``change`` (one PATCH, one update) and the fire-and-forget signals from before
    # updates. They stay, unchanged in name and effect, because recorded histories
    # (tests/histories) and workflows started by older clients replay through them, and
    # an older CLI or ``temporal workflow signal`` may still send them to a running one.

    @workflow.update(name=Update.SET_INACTIVITY)
    def set_inactivity(self, *args: Any) -> DeadlineAnswer:
        """Compatibility: change the idle threshold (``None``/0: off); ``change`` does now."""
        return self._apply_threshold("inactivity_duration", inputs.lenient_threshold(args))

    @set_inactivity.validator
    def _validate_set_inactivity(self, *args: Any) -> None:
        seconds = inputs.strict_threshold("inactivity_duration", args)
        changes.validate_threshold(self._state, "inactivity_duration", seconds)
        policy_apply.validate_field(self._state, "inactivity_duration", seconds)

    @workflow.update(name=Update.SET_MAX_DURATION)
    def set_max_duration(self, *args: Any) -> DeadlineAnswer:
        """Compatibility: change the hard cap from creation; ``change`` does now."""
        return self._apply_threshold("max_duration", inputs.lenient_threshold(args))

    @set_max_duration.validator
    def _validate_set_max_duration(self, *args: Any) -> None:
        seconds = inputs.strict_threshold("max_duration", args)
        changes.validate_threshold(self._state, "max_duration", seconds)
        policy_apply.validate_field(self._state, "max_duration", seconds)

    @workflow.update(name=Update.EXTEND)
    def extend(self, *args: Any) -> DeadlineAnswer:
        """Compatibility: push the current deadline out once; ``change`` does now."""
        return self._apply_extend(inputs.lenient_extend(args))

    @extend.validator
    def _validate_extend_update(self, *args: Any) -> None:
        changes.validate_extend(self._state, inputs.strict_extend(args))

    @workflow.update(name=Update.SET_STOP_AT)
    def set_stop_at(self, *args: Any) -> DeadlineAnswer:
        """Compatibility: a fixed end (None: remove it); ``change`` does now."""
        return self._record(changes.apply_stop_at(self._state, inputs.lenient_stop_at(args)))

    @set_stop_at.validator
    def _validate_set_stop_at_update(self, *args: Any) -> None:
        at = inputs.strict_stop_at(args)
        changes.validate_stop_at(self._state, at, workflow.now())
        policy_apply.validate_stop(self._state, at)

    @workflow.signal(name=Signal.UPDATE_INACTIVITY)
    def update_inactivity(self, *args: Any) -> None:
        """Compatibility: fire-and-forget ``set_inactivity``; bad values become an event."""
        self._signal_threshold("inactivity_duration", args)

    @workflow.signal(name=Signal.UPDATE_MAX_DURATION)
    def update_max_duration(self, *args: Any) -> None:
        """Compatibility: fire-and-forget ``set_max_duration``; bad values become an event."""
        self._signal_threshold("max_duration", args)

    @workflow.signal(name=Signal.STOP)
    def stop(self, *args: Any) -> None:
        """Compatibility: fire-and-forget ``request_stop``."""
        ok, reason = self._signal_input(
            Signal.STOP, args, inputs.strict_reason, inputs.lenient_reason
        )
        if not ok:
            return
        try:
            changes.validate_not_ending(self._state)
        except ValueError as err:
            self._event(f"stop ignored: {err}")
            return
        self._apply_stop(reason)

    def _signal_threshold(self, field: str, args: tuple[Any, ...]) -> None:
        ok, seconds = self._signal_input(
            field,
            args,
            lambda raw: inputs.strict_threshold(field, raw),
            inputs.lenient_threshold,
        )
        if not ok:
            return
        try:
            changes.validate_threshold(self._state, field, seconds)
            policy_apply.validate_field(self._state, field, seconds)
        except ValueError as err:
            self._event(f"{field} signal ignored: {err}")
            return
        self._apply_threshold(field, seconds)
