"""When an environment must end: pure functions of its state, no Temporal calls.

One durable timer serves every rule, so the workflow asks here, on every wake,
for the earliest moment anything may be due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from devenv.models import connected_idle, gpu_policy
from devenv.models.durations import format_duration
from devenv.models.idle_budget import budget_end, budget_seconds, budget_words
from devenv.models.state import EnvState, Status, TerminationReason

IDLE_REASONS = (
    TerminationReason.INACTIVITY_DURATION_EXCEEDED,
    TerminationReason.IDLE_BUDGET_EXCEEDED,
    TerminationReason.CONNECTED_IDLE,
    TerminationReason.GPU_UNDERUTILIZED,
)
"""The rules of idleness (nobody present, idle time's cost spent, terminals left open,
GPUs unused): the probe confirms them before the end, and with ``on_idle: suspend`` they
suspend rather than end."""


def compute(state: EnvState) -> tuple[datetime | None, TerminationReason | None]:
    """The earliest of the idle rules (only while nobody is present: inactivity_duration,
    idle_budget), max_duration and the scheduled stop."""
    s = state
    idle: tuple[datetime, TerminationReason] | None = None
    spent: tuple[datetime, TerminationReason] | None = None
    idle_now = (
        s.connections == 0
        and s.jobs == 0
        and s.idle_since is not None
        and s.status == Status.RUNNING
    )
    if idle_now and s.spec.inactivity_duration is not None:
        assert s.idle_since is not None
        idle = (
            late_login_deferral(s) or s.idle_since + timedelta(seconds=s.spec.inactivity_duration),
            TerminationReason.INACTIVITY_DURATION_EXCEEDED,
        )
    if idle_now and (budget_due := budget_end(s)) is not None:
        spent = (budget_due, TerminationReason.IDLE_BUDGET_EXCEEDED)
    ends = (
        _max_end(s),
        idle,
        spent,
        _stop_end(s),
        connected_idle.end(s),
        gpu_policy.end(s),
    )
    candidates = [end for end in ends if end is not None]
    if s.status == Status.SUSPENDED:
        candidates = [end for end in (delete_end(s), _stop_end(s)) if end is not None]
    elif s.status not in (Status.PROVISIONING, Status.RUNNING):
        return None, None
    if not candidates:
        return None, None
    return _floored(s, min(candidates, key=lambda c: c[0]))


def idle_deadline(s: EnvState) -> datetime | None:
    """The idle rule's own deadline (idle since + threshold), before any late-login
    deferral; None while the rule is off or the clock not started."""
    if s.spec.inactivity_duration is None or s.idle_since is None:
        return None
    return s.idle_since + timedelta(seconds=s.spec.inactivity_duration)


def late_login_deferral(s: EnvState) -> datetime | None:
    """When the late-login rule decides instead of the idle deadline: only while that
    deadline is still the one it was deferred for (a threshold or presence change voids it)."""
    late = s.late_login
    if late is None or late.deadline != idle_deadline(s):
        return None
    return max(late.until, late.deadline)


def fixed_end(state: EnvState) -> tuple[datetime, TerminationReason] | None:
    """The end that holds even while someone works (max_duration, a scheduled stop),
    extended by ``--extend``; None when only idleness can end the environment."""
    ends = [end for end in (_max_end(state), _stop_end(state)) if end is not None]
    return _floored(state, min(ends, key=lambda end: end[0])) if ends else None


def _max_end(s: EnvState) -> tuple[datetime, TerminationReason] | None:
    """``max_duration`` counts running time only: the time suspended moves it out."""
    if s.spec.max_duration is None or s.created_at is None:
        return None
    return (
        s.created_at + timedelta(seconds=s.spec.max_duration + s.suspended_seconds),
        TerminationReason.MAX_DURATION_EXCEEDED,
    )


def delete_end(s: EnvState) -> tuple[datetime, TerminationReason] | None:
    """A suspended environment is deleted ``delete_after`` after it was suspended."""
    if s.spec.delete_after is None or s.suspended_at is None:
        return None
    return (
        s.suspended_at + timedelta(seconds=s.spec.delete_after),
        TerminationReason.DELETE_AFTER_EXCEEDED,
    )


def _stop_end(s: EnvState) -> tuple[datetime, TerminationReason] | None:
    return None if s.stop_at is None else (s.stop_at, TerminationReason.SCHEDULED_STOP)


def _floored(
    s: EnvState, end: tuple[datetime, TerminationReason]
) -> tuple[datetime, TerminationReason]:
    """``--extend X`` at deadline D: the same rule, not before D + X, and never more than
    X past the rules' own deadline. So an extension of the max_duration end made while
    in use cannot keep an idle environment an hour once its user left: the idle rule's
    deadline, plus X at most (the README's "Extending" has examples)."""
    due, reason = end
    if s.deadline_floor is not None and due < s.deadline_floor:
        floor = s.deadline_floor
        if s.deadline_extension is not None:
            floor = min(floor, due + timedelta(seconds=s.deadline_extension))
        due = floor
    return due, reason


def extension_in_force(s: EnvState) -> bool:
    """Whether ``--extend`` puts the current deadline later than the rules alone would."""
    if s.deadline_floor is None or s.deadline is None:
        return False
    if s.deadline_extension is None:  # extended before the cap: the floor alone, as then
        return s.deadline == s.deadline_floor
    unextended, _ = compute(s.model_copy(update={"deadline_floor": None}))
    return unextended is not None and unextended < s.deadline


DEFAULT_WARNING = 600
"""Warn this long before a termination by default..."""
DEFAULT_WARNING_ABOVE = 1200
"""...when the rule's threshold is longer than this (a 5-minute threshold warns never)."""


DEFAULT_DELETE_WARNING = 24 * 3600
"""A suspended environment is warned about a day before its deletion (at most half of
``delete_after`` ahead)."""


def warn_at(state: EnvState) -> datetime | None:
    """When to warn about the current deadline; None: no warning for it.

    ``warn_before`` 0 never warns; unset warns 10 minutes ahead when the rule's threshold
    is over 20 minutes (a fixed ``--stop-at`` always; ``connected_idle`` always, at most
    half its threshold ahead); an explicit value is honoured
    however short, and never warns before the countdown began (idle since, created).
    """
    s = state
    if s.deadline is None or s.deadline_reason is None or s.spec.warn_before == 0:
        return None
    reason = s.deadline_reason
    if reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED:
        threshold, began = s.spec.inactivity_duration, s.idle_since
    elif reason == TerminationReason.MAX_DURATION_EXCEEDED:
        threshold, began = s.spec.max_duration, s.created_at
    elif reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
        threshold, began = budget_seconds(s), s.idle_since
    elif reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        threshold, began = s.spec.delete_after, s.suspended_at
    elif reason == TerminationReason.CONNECTED_IDLE:
        threshold, began = s.spec.connected_idle, connected_idle.last_sign(s)
    elif reason == TerminationReason.GPU_UNDERUTILIZED and s.spec.utilization_policy:
        threshold, began = s.spec.utilization_policy.time_window, s.gpu_quiet_since
    else:
        threshold, began = None, None
    ahead = s.spec.warn_before
    if ahead is None and reason == TerminationReason.CONNECTED_IDLE and threshold:
        ahead = min(DEFAULT_WARNING, threshold // 2)  # the warning is what a keystroke answers
    if ahead is None:
        if threshold is not None and threshold <= DEFAULT_WARNING_ABOVE:
            return None
        ahead = DEFAULT_WARNING
        if reason == TerminationReason.DELETE_AFTER_EXCEEDED and threshold is not None:
            # Nobody watches a suspended environment: its owner needs time to come back.
            ahead = max(ahead, min(DEFAULT_DELETE_WARNING, threshold // 2))
    moment = s.deadline - timedelta(seconds=ahead)
    return max(moment, began) if began is not None else moment


def warning_due(state: EnvState, now: datetime) -> bool:
    """The current deadline's warning time has come and it was not sent yet."""
    moment = warn_at(state)
    return moment is not None and moment <= now and state.warned_for != state.deadline


def recompute(state: EnvState) -> None:
    """Store the current deadline in the state (what ps, the Web UI and the timer use)."""
    state.deadline, state.deadline_reason = compute(state)


def silence_bound(state: EnvState) -> datetime | None:
    """While users or jobs are present, when the monitor's silence would count as idleness."""
    if (state.connections > 0 or state.jobs > 0) and state.last_report_at is not None:
        return state.last_report_at + timedelta(seconds=state.tuning.keepalive_bound_seconds)
    return None


def monitor_silent(state: EnvState, now: datetime) -> bool:
    """A monitor silent past the bound while users are present: it must not keep the
    machine alive."""
    bound = silence_bound(state)
    return bound is not None and now >= bound


def next_wake(
    state: EnvState, monitor_restart_at: datetime | None, warnings: bool = False
) -> datetime | None:
    """The earliest moment something may be due: deadline, silence check, monitor restart,
    and with ``warnings`` the warning before the deadline."""
    times = [state.deadline, monitor_restart_at, silence_bound(state)]
    if warnings and state.warned_for != state.deadline:
        times.append(warn_at(state))
    return min((t for t in times if t is not None), default=None)


def overdue(state: EnvState, now: datetime) -> bool:
    """A deadline with a reason that has passed while no termination is under way."""
    return (
        state.termination_reason is None
        and state.deadline is not None
        and state.deadline_reason is not None
        and state.deadline <= now
    )


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def rule_words(s: EnvState) -> str:
    """The rule behind the current deadline, in a few words."""
    if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        return f"max_duration {format_duration(s.spec.max_duration)}"
    if s.deadline_reason == TerminationReason.SCHEDULED_STOP:
        return "the scheduled stop"
    if s.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
        return budget_words(s)
    if s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        return f"suspended for delete_after {format_duration(s.spec.delete_after)}"
    if s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED:
        return gpu_policy.words(s)
    if s.deadline_reason == TerminationReason.CONNECTED_IDLE:
        return (
            f"connected but idle for {format_duration(s.spec.connected_idle)}: "
            "no terminal input, processes quiet; any keystroke keeps it"
        )
    return f"idle for {format_duration(s.spec.inactivity_duration)}"
