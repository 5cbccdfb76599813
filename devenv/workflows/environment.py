"""The life of one dev environment, as a Temporal workflow.

PROVISIONING -> RUNNING -> TERMINATING -> TERMINATED (or FAILED). While RUNNING
the workflow sleeps on ONE durable timer whose deadline is recomputed from
``EnvState`` on every wake, so a threshold change, a user (dis)connecting or a
stop request takes effect at once and survives any crash.

Deterministic code only: activities are referenced by their names
(``devenv.workflows.names``) so this module imports no I/O code, time comes from
``workflow.now()`` and ids from ``workflow.uuid4()``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from devenv.settings import SHARED_TASK_QUEUE
    from devenv.workflows import deadline, inputs
    from devenv.workflows.display import (
        clock,
        exceeded_message,
        extend_command,
        failure_message,
        login_banner,
        plural,
        presence_words,
        provision_summary,
        rule_words,
        terminal_warning,
        utc,
        wake_summary,
        warning_message,
        warning_withdrawn,
    )
    from devenv.workflows.durations import MAX_SECONDS, format_duration
    from devenv.workflows.messages import (
        INSTANCE_LOST,
        ApplyLoginInput,
        ApplyPolicyInput,
        Notice,
        ProbeInput,
        ProvisionInput,
        TellInput,
        TerminateInput,
        WatcherGone,
    )
    from devenv.workflows.monitoring import MonitorSupervisor
    from devenv.workflows.names import Activity, Query, Signal, Update
    from devenv.workflows.policies import (
        APPLY_POLICY_RETRY,
        APPLY_POLICY_TIMEOUT,
        MIN_TIMER,
        NOTIFY_RETRY,
        NOTIFY_TIMEOUT,
        PROBE_RETRY,
        PROBE_TIMEOUT,
        PROVISION_RETRY,
        PROVISION_TIMEOUT,
        TERMINATE_RETRY,
        TERMINATE_TIMEOUT,
        WORK_HEARTBEAT,
    )
    from devenv.workflows.presence import presence_change, probe_answer
    from devenv.workflows.sharing import shared_key_line, validate_shared
    from devenv.workflows.state import (
        MAX_EVENTS,
        WORKFLOW_TYPE,
        Change,
        DeadlineAnswer,
        EnvEvent,
        EnvState,
        FailsafePolicy,
        InstanceInfo,
        LoginSettings,
        PresenceReport,
        SharedUser,
        Status,
        TerminationReason,
    )
    from devenv.workflows.visibility import publish

PROBE_PATCH = "probe-before-idle-termination"
"""Histories recorded before the probe existed replay without it (workflow.patched)."""
LOCAL_PROBE_PATCH = "probe-as-local-activity"
"""Where any worker of the shared queue (the workflow's own) can reach the instance (ssh
and aws without a host queue), the probe runs inside the workflow task the deadline's
timer woke: a workflow task and an activity fewer per termination, about a third of the
server's writes (benchmarks/README.md). A local instance is probed on its host's queue."""
WARN_PATCH = "warn-before-termination"
"""Histories recorded before warnings replay without their timer (workflow.patched)."""
FAILSAFE_PATCH = "failsafe-policy"
"""Instances with a failsafe are told each threshold change (asked only for those)."""
EXTEND_CAP_PATCH = "extend-capped"
"""An extension made before the cap existed keeps its floor alone (deadline.py)."""
STRICT_SIGNALS_PATCH = "strict-signal-inputs"
"""A signal whose input the old converter coerced (``true`` as 1 s) is ignored now; a
history recorded before applies it as it did (asked only for such an input)."""
LATE_LOGIN_PATCH = "late-login-waits-until-counted"
"""A connection the probe finds inside min_connection_duration puts the idle deadline
off until it would count, once; histories from before restarted the idle clock."""

T = TypeVar("T")
_ENDING = (Status.TERMINATING, Status.TERMINATED, Status.FAILED)
_USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def _by(who: str | None) -> str:
    """`` by alice`` in an event, when the change says who made it."""
    return f" by {who}" if who else ""


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
        self._monitor = MonitorSupervisor(state, self._event)
        self._policy_push: asyncio.Task[None] | None = None
        self._login_push: asyncio.Task[None] | None = None
        self._notifications: set[asyncio.Task[None]] = set()
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
                Activity.PROVISION,
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
            lost = await self._monitor.tend(now)
            if lost is not None:
                self._begin_termination(TerminationReason.INSTANCE_LOST, f"instance lost: {lost}")
            self._check_monitor_silence(now)
            deadline.recompute(s)
            if deadline.overdue(s, now) and await self._confirm_idle():
                assert s.deadline_reason is not None
                self._begin_termination(s.deadline_reason, exceeded_message(s, self._confirmed))
            if s.termination_reason is not None:
                return
            warnings = self._tend_warning(now)
            self._publish()  # before continue-as-new too: the server carries the attributes
            self._push_failsafe_policy()
            self._push_login()
            if self._history_too_long():
                await self._continue_as_new()
                continue  # a stop arrived while handlers finished: terminate instead
            wake_at = deadline.next_wake(s, self._monitor.restart_at, warnings)
            self._wake = False
            try:
                await workflow.wait_condition(
                    self._should_wake,
                    timeout=None if wake_at is None else max(wake_at - now, MIN_TIMER),
                    timeout_summary=wake_summary(s, wake_at, self._monitor.restart_at),
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
        probe = ProbeInput(workflow_id=s.workflow_id, instance=s.instance)
        options: dict[str, Any] = {
            "result_type": PresenceReport,
            "start_to_close_timeout": PROBE_TIMEOUT,
            "retry_policy": PROBE_RETRY,
            "summary": "probe: who is connected",
        }
        seen: PresenceReport
        try:
            if s.instance.task_queue == SHARED_TASK_QUEUE and workflow.patched(LOCAL_PROBE_PATCH):
                seen = await workflow.execute_local_activity(Activity.PROBE, probe, **options)
            else:
                seen = await workflow.execute_activity(
                    Activity.PROBE, probe, task_queue=s.instance.task_queue, **options
                )
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
        late_login = seen.waiting > 0 and s.connections == 0 and workflow.patched(LATE_LOGIN_PATCH)
        told = probe_answer(s, seen, now, late_login)
        if told is not None:
            self._event(told)
        self._confirmed = f"the instance confirmed {presence_words(seen.connections, seen.jobs)}"
        deadline.recompute(s)
        return (
            s.deadline is not None
            and s.deadline <= now
            and s.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        )

    def _tend_warning(self, now: datetime) -> bool:
        """Warn once per deadline, ahead of it; record when a warned termination is off.

        False when no warning applies (or for histories recorded before warnings), so
        the timer then waits for the deadline alone.
        """
        s = self._state
        if s.warned_for is not None and s.deadline != s.warned_for:
            self._event(warning_withdrawn(s))
            s.warned_for = None
        if deadline.warn_at(s) is None or not workflow.patched(WARN_PATCH):
            return False
        if deadline.warning_due(s, now):
            assert s.deadline is not None and s.deadline_reason is not None
            s.warned_for = s.deadline
            message = warning_message(s, now)
            self._event(message)
            if s.spec.notify_webhook is not None:
                notice = Notice(
                    workflow_id=s.workflow_id,
                    webhook=s.spec.notify_webhook,
                    environment=s.spec.name,
                    owner=s.spec.owner,
                    reason=s.deadline_reason.value,
                    deadline=s.deadline,
                    extend_command=extend_command(s),
                    text=message,
                )
                self._notifications.add(asyncio.create_task(self._notify(notice)))
            if (
                s.instance is not None
                and s.instance.login_messages
                and s.connections > 0
                and s.deadline_reason != TerminationReason.INACTIVITY_DURATION_EXCEEDED
            ):
                tell = TellInput(
                    workflow_id=s.workflow_id,
                    instance=s.instance,
                    text=terminal_warning(s, now),
                )
                self._notifications.add(asyncio.create_task(self._tell_terminals(tell)))
        return True

    async def _tell_terminals(self, tell: TellInput) -> None:
        """Write the warning into every terminal open on the instance, once (like wall):
        someone working there when a fixed end comes must not learn it from a dead shell."""
        try:
            told = await workflow.execute_activity(
                Activity.TELL_TERMINALS,
                tell,
                result_type=int,
                task_queue=tell.instance.task_queue,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary="warning: write it into the open terminals",
            )
        except ActivityError as err:
            self._event(f"warning not written to the terminals ({failure_message(err)})")
            return
        self._event(f"warning written to {plural(told, 'open terminal')}")

    async def _notify(self, notice: Notice) -> None:
        """POST the warning (retried a few times); the termination never waits for it."""
        try:
            await workflow.execute_activity(
                Activity.NOTIFY,
                notice,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary="warning: notify the webhook",
            )
        except ActivityError as err:
            self._event(f"warning not delivered to the webhook ({failure_message(err)})")

    def _push_failsafe_policy(self) -> None:
        """Tell a machine with a failsafe the thresholds now in force, in the background.

        The machine enforces them itself only when no control plane has read it for a
        long while; it must never act on a threshold the user has since raised.
        """
        s = self._state
        if (
            s.instance is None
            or not s.instance.failsafe
            or s.ready_at is None
            or (self._policy_push is not None and not self._policy_push.done())
        ):
            return
        policy = FailsafePolicy.of(s.spec.inactivity_duration, s.spec.max_duration, s.ready_at)
        if policy == s.failsafe_policy or not workflow.patched(FAILSAFE_PATCH):
            return
        self._policy_push = asyncio.create_task(self._apply_policy(s.instance, policy))

    async def _apply_policy(self, instance: InstanceInfo, policy: FailsafePolicy) -> None:
        s = self._state
        request = ApplyPolicyInput(workflow_id=s.workflow_id, instance=instance, policy=policy)
        summary = "tell the machine's failsafe the thresholds"
        what = "the machine's failsafe"
        if await self._push(instance, Activity.APPLY_POLICY, request, summary, what) is not None:
            return
        s.failsafe_policy = policy
        self._wake = True  # a change that arrived meanwhile is pushed on the next pass

    async def _push(
        self, instance: InstanceInfo, activity: Activity, request: object, summary: str, what: str
    ) -> str | None:
        """Tell the instance something in the background (a few tries on its queue); an
        event says so when it could not be told. None once told, else why not."""
        try:
            await workflow.execute_activity(
                activity,
                request,
                task_queue=instance.task_queue,
                start_to_close_timeout=APPLY_POLICY_TIMEOUT,
                retry_policy=APPLY_POLICY_RETRY,
                summary=summary,
            )
        except ActivityError as err:
            why = failure_message(err)
            self._event(f"could not update {what} ({why})")
            return why
        return None

    def _push_login(self) -> None:
        """Keep the instance's login banner current (its rules and fixed end), in the
        background; only instances that show one are asked."""
        s = self._state
        if (
            s.instance is None
            or not s.instance.login_messages
            or s.ready_at is None
            or (self._login_push is not None and not self._login_push.done())
        ):
            return
        login = self._wanted_login()
        if login == s.login:
            return
        self._login_push = asyncio.create_task(self._apply_login(s.instance, login))

    async def _apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        s = self._state
        request = ApplyLoginInput(workflow_id=s.workflow_id, instance=instance, login=login)
        failed = await self._push(
            instance, Activity.APPLY_LOGIN, request, "update the login banner", "the login banner"
        )
        s.login = login  # also when it failed: not retried for this banner, the next change is
        s.login_error = failed
        if failed is None and login != self._wanted_login():
            self._wake = True  # a change arrived meanwhile: pushed on the next pass

    def _wanted_login(self) -> LoginSettings:
        s = self._state
        return LoginSettings(
            banner=login_banner(s), shared_keys=[shared_key_line(u) for u in s.shared_with]
        )

    def _should_wake(self) -> bool:
        return self._wake or self._monitor.finished()

    async def _terminate(self) -> None:
        """TERMINATING -> TERMINATED: stop watching, delete the instance, record the end."""
        s = self._state
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

    async def _run_terminate(self, task_queue: str) -> None:
        """Retried forever (TERMINATE_RETRY); a cancel waits until it is done."""
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
            start_to_close_timeout=TERMINATE_TIMEOUT,
            heartbeat_timeout=WORK_HEARTBEAT,
            retry_policy=TERMINATE_RETRY,
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
        if s.status != Status.RUNNING:
            self._event(
                f"activity report ignored while {s.status.value} "
                f"({plural(report.connections, 'connection')})"
            )
            return
        now = workflow.now()
        s.last_report_at = now
        if not report.keepalive:
            s.sessions = report.sessions
        if (report.connections, report.jobs) == (s.connections, s.jobs):
            return  # keepalive or repeat: only the time counts; do not wake the timer
        before = s.connections + s.jobs
        after = report.connections + report.jobs
        if after == 0:
            assert s.ready_at is not None
            s.idle_since = min(max(utc(report.last_change), s.ready_at), now)
        self._event(presence_change(s, report))
        s.connections, s.jobs = report.connections, report.jobs
        if (before == 0) != (after == 0):
            self._wake = True  # active/idle flipped: the deadline appears or disappears
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

    @workflow.signal(name=Signal.UPDATE_INACTIVITY)
    def update_inactivity(self, *args: Any) -> None:
        """Fire-and-forget form of ``set_inactivity``; invalid values are logged and ignored."""
        self._signal_threshold("inactivity_duration", args)

    @workflow.signal(name=Signal.UPDATE_MAX_DURATION)
    def update_max_duration(self, *args: Any) -> None:
        """Fire-and-forget form of ``set_max_duration``; invalid values are logged and ignored."""
        self._signal_threshold("max_duration", args)

    @workflow.signal(name=Signal.STOP)
    def stop(self, *args: Any) -> None:
        """Fire-and-forget form of ``request_stop``."""
        ok, reason = self._signal_input(
            Signal.STOP, args, inputs.strict_reason, inputs.lenient_reason
        )
        if not ok:
            return
        try:
            self._validate_not_ending()
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
            self._validate_threshold(field, seconds)
        except ValueError as err:
            self._event(f"{field} signal ignored: {err}")
            return
        self._apply_threshold(field, seconds)

    def _signal_input(
        self,
        signal: str,
        args: tuple[Any, ...],
        strict: Callable[[tuple[Any, ...]], T],
        lenient: Callable[[tuple[Any, ...]], T],
    ) -> tuple[bool, T]:
        """(True, the input) when a signal's input is acceptable; otherwise an event says
        it was ignored and why, and (False, ...). Never raises: a signal cannot be refused,
        and an exception here would fail every workflow task from now on."""
        try:
            return True, strict(args)
        except Exception as problem:  # InputError, or anything else a parser met
            refused = (
                str(problem)
                if isinstance(problem, inputs.InputError)
                else f"unreadable input ({type(problem).__name__})"
            )
        try:
            old = lenient(args)
        except Exception:
            pass  # refused before the gate too (dropped, or a task failure)
        else:
            if not workflow.patched(STRICT_SIGNALS_PATCH):
                return True, old  # recorded before the gate: replay what it did then
        self._event(f"{signal} signal ignored: {refused}")
        return False, cast(T, None)

    # ---------------------------------------------------------------- updates

    # Updates take their inputs raw: the validator refuses garbage (inputs.strict_*);
    # the handler, run only for an accepted update, reads it as the converter did before
    # (inputs.lenient_*), so recorded histories replay unchanged.

    @workflow.update(name=Update.SET_INACTIVITY)
    def set_inactivity(self, *args: Any) -> DeadlineAnswer:
        """Change the idle threshold (``None``/0: off) and answer with the new deadline."""
        return self._apply_threshold("inactivity_duration", inputs.lenient_threshold(args))

    @set_inactivity.validator
    def _validate_set_inactivity(self, *args: Any) -> None:
        seconds = inputs.strict_threshold("inactivity_duration", args)
        self._validate_threshold("inactivity_duration", seconds)

    @workflow.update(name=Update.SET_MAX_DURATION)
    def set_max_duration(self, *args: Any) -> DeadlineAnswer:
        """Change the hard cap from creation (``None``/0: off) and answer with the new deadline."""
        return self._apply_threshold("max_duration", inputs.lenient_threshold(args))

    @set_max_duration.validator
    def _validate_set_max_duration(self, *args: Any) -> None:
        self._validate_threshold("max_duration", inputs.strict_threshold("max_duration", args))

    @workflow.update(name=Update.EXTEND)
    def extend(self, *args: Any) -> DeadlineAnswer:
        """Push the current deadline out by ``seconds`` once; the thresholds stay as they are."""
        return self._apply_extend(inputs.lenient_extend(args))

    def _apply_extend(self, seconds: int, by: str | None = None) -> DeadlineAnswer:
        s = self._state
        deadline.recompute(s)
        assert s.deadline is not None
        s.deadline_floor = s.deadline + timedelta(seconds=seconds)
        # Never more than `seconds` past the rules' own deadline (a later one may be earlier).
        s.deadline_extension = seconds if workflow.patched(EXTEND_CAP_PATCH) else None
        deadline.recompute(s)
        self._event(
            f"deadline extended by {format_duration(seconds)}{_by(by)} to {clock(s.deadline)} "
            f"({rule_words(s)}; thresholds unchanged)"
        )
        self._wake = True
        self._publish()
        return self._answer(s.deadline, s.deadline_reason)

    @extend.validator
    def _validate_extend_update(self, *args: Any) -> None:
        self._validate_extend(inputs.strict_extend(args))

    def _validate_extend(self, seconds: int) -> None:
        self._validate_threshold("extend", seconds)
        s = self._state
        if not seconds:
            raise ValueError("extend must be a positive duration")
        if s.status != Status.RUNNING:
            raise ValueError(f"not running yet ({s.status.value}): there is no deadline to extend")
        due, _ = deadline.compute(s)
        if due is None:
            raise ValueError(
                "nothing to extend: no deadline now (someone is using it, or no threshold "
                "is set); it starts when the last user leaves"
            )

    @workflow.update(name=Update.SET_STOP_AT)
    def set_stop_at(self, *args: Any) -> DeadlineAnswer:
        """A fixed end whatever the activity (None: remove it); answers the new deadline."""
        return self._apply_stop_at(inputs.lenient_stop_at(args))

    def _apply_stop_at(self, at: datetime | None, by: str | None = None) -> DeadlineAnswer:
        s = self._state
        s.stop_at = at
        dropped = s.deadline_floor
        s.deadline_floor = None  # an explicit end replaces an earlier extension: say so
        deadline.recompute(s)
        replaced = f"; the extension to {clock(dropped)} no longer holds" if dropped else ""
        self._event(
            f"scheduled stop at {clock(at)}{_by(by)}; "
            f"deadline {clock(s.deadline) if s.deadline else 'none'}{replaced}"
            if at is not None
            else f"scheduled stop removed{_by(by)}{replaced}"
        )
        self._wake = True
        self._publish()
        return self._answer(s.deadline, s.deadline_reason)

    @set_stop_at.validator
    def _validate_set_stop_at_update(self, *args: Any) -> None:
        self._validate_set_stop_at(inputs.strict_stop_at(args))

    def _validate_set_stop_at(self, at: datetime | None) -> None:
        self._validate_not_ending()
        if at is not None and (at.tzinfo is None or at <= workflow.now()):
            raise ValueError(
                f"stop_at {at.isoformat()} is not in the future; accepted: a later time "
                "with its time zone"
            )

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
            steps.append(lambda: self._apply_stop_at(stop_at.at, by))
        if (extend := change.extend) is not None:
            steps.append(lambda: self._apply_extend(extend, by))
        if (users := change.shared_with) is not None:
            steps.append(lambda: self._apply_shared(users, by))
        answer = self._answer(s.deadline, s.deadline_reason)
        for step in steps:
            if s.status in _ENDING:
                break  # a lowered threshold already ended it: the rest is moot
            answer = step()
        told = [event.message for event in s.events[seen:]] if len(s.events) > seen else []
        self._tell_members(told, change.by)
        return answer

    @change.validator
    def _validate_change(self, *args: Any) -> None:
        change = inputs.strict_change(args)
        self._validate_not_ending()
        if (
            change.inactivity is None
            and change.max_duration is None
            and change.stop_at is None
            and change.extend is None
            and change.shared_with is None
        ):
            raise ValueError("nothing to change")
        if change.by is not None and not _USER_NAME.fullmatch(change.by):
            raise ValueError(f"by: {change.by[:40]!r} is not a user name")
        if change.inactivity is not None:
            self._validate_threshold("inactivity_duration", change.inactivity.seconds)
        if change.max_duration is not None:
            self._validate_threshold("max_duration", change.max_duration.seconds)
        if change.stop_at is not None:
            self._validate_set_stop_at(change.stop_at.at)
        if change.extend is not None:
            self._validate_extend(change.extend)
        if change.shared_with is not None:
            validate_shared(change.shared_with, self._state.spec.owner)

    def _apply_shared(self, users: list[SharedUser], by: str | None) -> DeadlineAnswer:
        """Who may log in besides the owner; the instance is told at the next pass."""
        s = self._state
        before = {user.name for user in s.shared_with}
        after = {user.name for user in users}
        s.shared_with = list(users)
        added, removed = sorted(after - before), sorted(before - after)
        parts = []
        if added:
            parts.append(f"shared with {', '.join(added)}")
        if removed:
            parts.append(f"no longer shared with {', '.join(removed)}")
        if not parts:
            parts.append("members' keys renewed" if users else "shared with nobody")
        self._event("; ".join(parts) + _by(by))
        self._wake = True
        self._publish()
        return self._answer(s.deadline, s.deadline_reason)

    def _tell_members(self, messages: list[str], by: str | None) -> None:
        """A change on a shared environment reaches its webhook too, with who made it."""
        s = self._state
        if not messages or not s.shared_with or s.spec.notify_webhook is None:
            return
        notice = Notice(
            workflow_id=s.workflow_id,
            webhook=s.spec.notify_webhook,
            environment=s.spec.name,
            owner=s.spec.owner,
            reason="changed",
            deadline=s.deadline,
            extend_command=extend_command(s),
            text=f"{s.spec.name}: " + "; ".join(messages),
            by=by,
        )
        self._notifications.add(asyncio.create_task(self._notify(notice)))

    @workflow.update(name=Update.SET_PURGE_WORKSPACE)
    def set_purge_workspace(self, *args: Any) -> DeadlineAnswer:
        """Have the coming termination delete the workspace too (``stop --purge``)."""
        purge = inputs.lenient_bool(args)
        self._state.purge_workspace = purge
        self._event("the workspace will be deleted at termination" if purge else "workspace kept")
        return self._answer()

    @set_purge_workspace.validator
    def _validate_set_purge_workspace(self, *args: Any) -> None:
        inputs.strict_bool(Update.SET_PURGE_WORKSPACE, args)
        self._validate_not_ending()

    @workflow.update(name=Update.REQUEST_STOP)
    def request_stop(self, *args: Any) -> DeadlineAnswer:
        """Stop now; the answer confirms the environment is terminating."""
        return self._apply_stop(inputs.lenient_reason(args))

    @request_stop.validator
    def _validate_request_stop(self, *args: Any) -> None:
        inputs.strict_reason(args)
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

    def _apply_threshold(
        self, field: str, seconds: int | None, by: str | None = None
    ) -> DeadlineAnswer:
        """Set a threshold, recompute; an already exceeded one terminates at once."""
        s = self._state
        value = seconds or None
        label = "inactivity threshold" if field == "inactivity_duration" else "max duration"
        old = getattr(s.spec, field)
        setattr(s.spec, field, value)
        s.deadline_floor = None  # explicit numbers replace an earlier extension
        deadline.recompute(s)
        due, reason = s.deadline, s.deadline_reason
        if due is not None and reason is not None and due <= workflow.now():
            self._begin_termination(
                reason,
                f"{label} changed{_by(by)} from {format_duration(old)} "
                f"to {format_duration(value)}; "
                f"already exceeded, terminating",
            )
        else:
            self._event(
                f"{label} changed{_by(by)} from {format_duration(old)} "
                f"to {format_duration(value)}; "
                f"deadline {clock(due) if due else 'none'}"
            )
            self._wake = True  # the deadline may have moved earlier
            self._publish()
        # The deadline as computed for the new value, even the exceeded one that ends it.
        return self._answer(due, reason)

    def _apply_stop(self, reason: str | None) -> DeadlineAnswer:
        self._begin_termination(
            TerminationReason.STOPPED_BY_USER,
            "stop requested" + (f": {reason}" if reason else ""),
        )
        return self._answer()

    def _answer(
        self, due: datetime | None = None, reason: TerminationReason | None = None
    ) -> DeadlineAnswer:
        s = self._state
        return DeadlineAnswer(
            status=s.status,
            inactivity_duration=s.spec.inactivity_duration,
            max_duration=s.spec.max_duration,
            deadline=due,
            deadline_reason=reason,
            terminating=s.status == Status.TERMINATING,
        )

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
