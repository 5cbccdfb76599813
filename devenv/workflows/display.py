"""Words and times as the workflow writes them into events and the Web UI."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

from devenv.workflows.durations import format_duration
from devenv.workflows.state import EnvState, Status, TerminationReason


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


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def exceeded_message(s: EnvState) -> str:
    """Why the environment ends now, with the numbers."""
    if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        return (
            f"max duration {format_duration(s.spec.max_duration)} exceeded "
            f"(created {clock(s.created_at)}); terminating"
        )
    return (
        f"inactivity threshold {format_duration(s.spec.inactivity_duration)} exceeded "
        f"(idle since {clock(s.idle_since)}); terminating"
    )


def details(s: EnvState) -> str:
    """The Web UI's current details (markdown)."""
    lines = [f"**{s.status.value}**"]
    if s.termination_reason:
        lines[0] += f" ({s.termination_reason.value})"
    if s.status == Status.RUNNING:
        if s.connections:
            lines.append(f"active: {plural(s.connections, 'connection')}")
        else:
            lines.append(f"idle since {clock(s.idle_since)}")
    if s.deadline is not None and s.deadline_reason is not None:
        lines.append(f"deadline {clock(s.deadline)} ({s.deadline_reason.value})")
    lines.append(
        f"inactivity {format_duration(s.spec.inactivity_duration)}, "
        f"max duration {format_duration(s.spec.max_duration)}"
    )
    if s.error:
        lines.append(f"error: {s.error}")
    return "  \n".join(lines)


def wake_summary(s: EnvState, wake_at: datetime | None, restart_at: datetime | None) -> str:
    """What the workflow's one timer waits for, as the Web UI's timeline shows it."""
    if wake_at is None:
        return "waiting for a change (no deadline)"
    if restart_at is not None and wake_at == restart_at:
        return f"monitor restart {clock(wake_at)}"
    if s.deadline is not None and wake_at == s.deadline:
        if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
            return (
                f"max_duration deadline {clock(wake_at)} "
                f"({format_duration(s.spec.max_duration)} after creation)"
            )
        return (
            f"idle deadline {clock(wake_at)} "
            f"({format_duration(s.spec.inactivity_duration)} after the last user left)"
        )
    return f"monitor silence check {clock(wake_at)}"
