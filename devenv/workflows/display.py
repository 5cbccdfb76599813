"""Words and times as the workflow writes them into events and the Web UI."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

from devenv.models import gpu_policy
from devenv.models.deadline import (
    IDLE_REASONS,
    extension_in_force,
    fixed_end,
    plural,
    rule_words,
    warn_at,
)
from devenv.models.durations import format_duration
from devenv.models.idle_budget import budget_words
from devenv.models.state import EnvSpec, EnvState, Status, TerminationReason
from devenv.models.status import EnvironmentStatus
from devenv.models.suspension_cost import suspension_words

SUSPENSION = (Status.SUSPENDING, Status.SUSPENDED, Status.RESUMING)


def failure_message(err: BaseException) -> str:
    """The innermost meaningful message: 'Activity task failed' says nothing to a user."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    if isinstance(err, FailureError):
        return err.message
    return str(err) or type(err).__name__


def utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def clock(moment: datetime | None) -> str:
    """``10:02:03Z`` today, with the date otherwise: short enough for one log line."""
    if moment is None:
        return "never"
    moment = utc(moment)
    if moment.date() == utc(workflow.now()).date():
        return moment.strftime("%H:%M:%SZ")
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def exceeded_message(s: EnvState, confirmed: str | None = None) -> str:
    """Why the environment ends now, with the numbers (and what the probe confirmed)."""
    extended = f", extended to {clock(s.deadline)}" if extension_in_force(s) else ""
    if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        return (
            f"max duration {format_duration(s.spec.max_duration)} exceeded "
            f"(created {clock(s.created_at)}{extended}); terminating"
        )
    if s.deadline_reason == TerminationReason.SCHEDULED_STOP:
        return f"scheduled stop at {clock(s.stop_at)} reached{extended}; terminating"
    if s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        return (
            f"suspended since {clock(s.suspended_at)}, longer than delete_after "
            f"{format_duration(s.spec.delete_after)}{extended}; deleting"
        )
    checked = f"; {confirmed}" if confirmed else ""
    if s.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
        return (
            f"{budget_words(s)} spent (idle since {clock(s.idle_since)}{extended}{checked}); "
            "terminating"
        )
    if s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED:
        return (
            f"GPUs underutilized: {gpu_policy.words(s)}, since {clock(s.gpu_quiet_since)}"
            f"{extended}{checked}; terminating"
        )
    if s.deadline_reason == TerminationReason.CONNECTED_IDLE:
        return (
            f"connected_idle {format_duration(s.spec.connected_idle)} exceeded: no terminal "
            f"input since {clock(s.last_input)}, processes under "
            f"{s.spec.connected_idle_cpu:g}% of a core since {clock(s.busy_at or s.connected_at)}"
            f"{extended}{checked}; terminating"
        )
    return (
        f"inactivity threshold {format_duration(s.spec.inactivity_duration)} exceeded "
        f"(idle since {clock(s.idle_since)}{extended}{checked}); terminating"
    )


def presence_words(connections: int, jobs: int) -> str:
    """``2 connections``, or ``1 connection and 1 job`` when jobs run."""
    found = plural(connections, "connection")
    return f"{found} and {plural(jobs, 'job')}" if jobs else found


def extend_command(s: EnvState) -> str:
    """What a user types to push the deadline out (a suspended one: resume it)."""
    if s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        return f"devenv resume {s.spec.name}"
    return f"devenv signal {s.spec.name} --extend 1h"


def suspends_at_deadline(s: EnvState) -> bool:
    """Its deadline is an idle rule's and ``on_idle: suspend`` holds: it is suspended
    then, not terminated."""
    return s.deadline_reason in IDLE_REASONS and s.spec.on_idle == "suspend" and s.spec.suspendable


def warning_message(s: EnvState, now: datetime, costs: bool = False, suspends: bool = False) -> str:
    """The warning event (and the webhook's text): when, why, how to keep it; with
    ``costs``, a suspended one's storage cost against running, and what suspension saved;
    with ``suspends``, an idle deadline under ``on_idle: suspend`` says it suspends."""
    assert s.deadline is not None
    left = format_duration(max(math.ceil((s.deadline - now).total_seconds()), 0))
    ends = "is deleted" if s.status == Status.SUSPENDED else "terminates"
    if suspends and s.status != Status.SUSPENDED:
        ends = "is suspended (files kept)"
    words = suspension_cost_words(s, now) if costs else ""
    return (
        f"warning: {s.spec.name} {ends} at {clock(s.deadline)} (in {left}; "
        f"{rule_words(s)}{'; ' + words if words else ''}); to keep it: {extend_command(s)}"
    )


def suspension_cost_words(s: EnvState, now: datetime) -> str:
    """What a suspended environment costs (storage) against running, and what suspension
    saved, as of ``now``; empty unless suspended with a known price."""
    if s.status != Status.SUSPENDED:
        return ""
    return suspension_words(EnvironmentStatus.published(s).costed(now))


def terminal_warning(s: EnvState, now: datetime) -> str:
    """What ``wall`` would write into a connected user's terminal: a bell, then the
    warning on lines of its own so it stands out of whatever runs there."""
    assert s.deadline is not None
    left = format_duration(max(math.ceil((s.deadline - now).total_seconds()), 0))
    return (
        f"\a\r\n*** devenv: {s.spec.name} terminates at "
        f"{utc(s.deadline).strftime('%Y-%m-%d %H:%M:%SZ')} "
        f"(in {left}; {rule_words(s)}) ***\r\n"
        f"*** everything running in it ends then; to keep it: {extend_command(s)} ***\r\n"
    )


def stamp(moment: datetime) -> str:
    """A full UTC time to the minute (a banner is read on any day)."""
    return utc(moment).strftime("%Y-%m-%d %H:%MZ")


def login_banner(s: EnvState) -> str:
    """The login banner: the environment's rules and the end that holds while in use."""
    inactivity = s.spec.inactivity_duration
    lines = [f"devenv: this is {s.spec.name!r} (backend {s.spec.backend})."]
    if inactivity is None:
        lines.append("  Idle rule: off, never terminated for idleness.")
    else:
        lines.append(
            f"  Idle rule: terminated {format_duration(inactivity)} after the last user "
            "leaves (connections and jobs count as use)."
        )
    bounds = s.spec.inactivity_auto
    if bounds is not None:
        lines.append(
            f"  It is learned from your breaks (auto, between {format_duration(bounds.min)} "
            f"and {format_duration(bounds.max)}): devenv ps {s.spec.name} -v says why."
        )
    if s.spec.idle_budget is not None:
        lines.append(f"  Also ended once idle time has cost its budget: {budget_words(s)}.")
    if s.spec.connected_idle is not None:
        lines.append(
            f"  Open terminals: no keystroke and quiet processes for "
            f"{format_duration(s.spec.connected_idle)} count as absent (a job keeps it)."
        )
    if s.spec.utilization_policy is not None:
        lines.append(f"  GPUs: it ends even in use with {gpu_policy.words(s)}.")
    end = fixed_end(s)
    if end is None:
        lines.append("  No fixed end: it runs as long as it is in use.")
    else:
        due, reason = end
        why = (
            f"max_duration {format_duration(s.spec.max_duration)}"
            if reason == TerminationReason.MAX_DURATION_EXCEEDED
            else "scheduled stop"
        )
        lines.append(f"  Ends at {stamp(due)} even in use ({why}).")
    if s.deadline_floor is not None and s.deadline_extension is None:
        lines.append(f"  Extended: not before {stamp(s.deadline_floor)}.")
    elif s.deadline_floor is not None and s.deadline_extension is not None:
        extension = timedelta(seconds=s.deadline_extension)
        by = format_duration(s.deadline_extension)
        lines.append(
            f"  Extended: not before {stamp(s.deadline_floor)}, unless its rules end it "
            f"before {stamp(s.deadline_floor - extension)}: then {by} after them."
        )
    if s.shared_with:
        names = ", ".join(user.name for user in s.shared_with)
        lines.append(f"  Shared with {names}: they may extend it and change its rules.")
    lines.append(f"  Keep it longer: {extend_command(s)}")
    lines.append(f"  Why it is up:   devenv ps {s.spec.name} -v")
    return "\n".join(lines) + "\n"


def warning_withdrawn(s: EnvState) -> str:
    """The event when a warned termination will not happen then."""
    assert s.warned_for is not None
    why = (
        "someone is using it" if s.deadline is None else f"the deadline is now {clock(s.deadline)}"
    )
    return f"pending termination at {clock(s.warned_for)} cancelled: {why}"


def presence_line(s: EnvState) -> str:
    """Who keeps it in use: connections and jobs, and since when nobody has."""
    counts = f"{plural(s.connections, 'connection')}, {plural(s.jobs, 'job')}"
    if s.connections or s.jobs:
        return f"active: {counts}"
    return f"idle since {clock(s.idle_since)} ({counts})"


def deadline_rule(s: EnvState) -> str:
    """The rule that set the deadline, in words: which threshold, counted from when."""
    if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        rule = f"{format_duration(s.spec.max_duration)} after creation at {clock(s.created_at)}"
    elif s.deadline_reason == TerminationReason.SCHEDULED_STOP:
        rule = f"the scheduled stop at {clock(s.stop_at)}"
    elif s.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
        rule = f"{budget_words(s)} after the last user left"
    elif s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        rule = f"{format_duration(s.spec.delete_after)} after suspension at {clock(s.suspended_at)}"
    elif s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED:
        rule = f"{gpu_policy.words(s)}, since {clock(s.gpu_quiet_since)}"
    elif s.deadline_reason == TerminationReason.CONNECTED_IDLE:
        idle = format_duration(s.spec.connected_idle)
        rule = f"connected but idle: {idle} after the last sign of life"
    else:
        rule = f"{format_duration(s.spec.inactivity_duration)} after the last user left"
    if extension_in_force(s):
        rule += ", extended (devenv signal --extend)"
    return rule


def details(s: EnvState) -> str:
    """The Web UI's current details (markdown): status, presence, deadline and its rule."""
    lines = [f"**{s.status.value}**"]
    if s.termination_reason:
        lines[0] += f" ({s.termination_reason.value})"
    if s.status == Status.RUNNING:
        lines.append(presence_line(s))
    if s.suspend_reason and s.status in SUSPENSION:
        lines.append(f"suspended since {clock(s.suspended_at)}: {s.suspend_reason}")
    if s.deadline is not None and s.deadline_reason is not None:
        lines.append(f"deadline {clock(s.deadline)}: {s.deadline_reason.value}, {deadline_rule(s)}")
    elif s.status == Status.RUNNING:
        lines.append("no deadline" + (" while in use" if s.connections or s.jobs else ""))
    lines.append(
        f"inactivity {format_duration(s.spec.inactivity_duration)}, "
        f"max duration {format_duration(s.spec.max_duration)}"
    )
    if s.error:
        lines.append(f"error: {s.error}")
    return "  \n".join(lines)


def provision_summary(spec: EnvSpec) -> str:
    """The provision activity as the timeline shows it: the backend and, when the backend
    has one (aws), its region: ``provision on aws eu-west-1``."""
    region = spec.backend_config.get("region")
    return f"provision on {spec.backend}" + (f" {region}" if isinstance(region, str) else "")


def wake_summary(s: EnvState, wake_at: datetime | None, restart_at: datetime | None) -> str:
    """What the workflow's one timer waits for, as the Web UI's timeline shows it."""
    if wake_at is None:
        return "waiting for a change (no deadline)"
    if restart_at is not None and wake_at == restart_at:
        return f"monitor restart {clock(wake_at)}"
    if s.warned_for != s.deadline and s.deadline is not None and wake_at < s.deadline:
        if warn_at(s) == wake_at:
            return f"warning before the {rule_words(s)} deadline {clock(s.deadline)}"
    if s.deadline is not None and wake_at == s.deadline:
        if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
            return (
                f"max_duration deadline {clock(wake_at)} "
                f"({format_duration(s.spec.max_duration)} after creation)"
            )
        if s.deadline_reason == TerminationReason.SCHEDULED_STOP:
            return f"scheduled stop {clock(wake_at)}"
        if s.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
            return f"idle budget deadline {clock(wake_at)} ({budget_words(s)})"
        if s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
            return f"delete_after deadline {clock(wake_at)} (suspended)"
        if s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED:
            return f"utilization_policy deadline {clock(wake_at)} (GPUs under the minimum)"
        if s.deadline_reason == TerminationReason.CONNECTED_IDLE:
            return f"connected_idle deadline {clock(wake_at)} (no input, processes quiet)"
        return (
            f"idle deadline {clock(wake_at)} "
            f"({format_duration(s.spec.inactivity_duration)} after the last user left)"
        )
    return f"monitor silence check {clock(wake_at)}"
