"""What a change does to an environment's state, and which changes are refused.

Pure functions of ``EnvState`` (and the time, passed in), no Temporal calls of their
own (the events' clock words, ``display.clock``, read the workflow's date), so they are
tested without a server (tests/workflow/test_changes_pure.py). The workflow's handlers
call them: a validator calls ``validate_*`` (a ValueError refuses the update with its
message), a handler calls ``apply_*`` and then records what the returned ``Applied``
says (an event, the termination it starts, a wake of the timer, the search attributes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from devenv.models import deadline
from devenv.models.deadline import rule_words
from devenv.models.durations import MAX_SECONDS, format_duration
from devenv.models.sharing import validate_shared
from devenv.models.state import (
    Change,
    DeadlineAnswer,
    EnvState,
    SharedUser,
    Status,
    TerminationReason,
)
from devenv.workflows.display import clock

ENDING = (Status.TERMINATING, Status.TERMINATED, Status.FAILED)
"""Statuses no change applies to."""
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
THRESHOLDS = {"inactivity_duration": "inactivity threshold", "max_duration": "max duration"}
"""The spec fields a threshold change sets, and how events call them."""


@dataclass(frozen=True)
class Applied:
    """What the workflow records of an applied change."""

    message: str
    """The event (also the termination's, when ``ends``)."""
    ends: TerminationReason | None = None
    """The change ends the environment now (a lowered threshold already exceeded)."""
    answers: tuple[datetime | None, TerminationReason | None] | None = None
    """The deadline the answer names; None: the deadline as it stands after the change."""


def by_words(who: str | None) -> str:
    """`` by alice`` in an event, when the change says who made it."""
    return f" by {who}" if who else ""


def answer(
    s: EnvState, due: datetime | None = None, reason: TerminationReason | None = None
) -> DeadlineAnswer:
    """What an update answers: the status and thresholds now, and the deadline given."""
    return DeadlineAnswer(
        status=s.status,
        inactivity_duration=s.spec.inactivity_duration,
        max_duration=s.spec.max_duration,
        deadline=due,
        deadline_reason=reason,
        terminating=s.status == Status.TERMINATING,
    )


# ---------------------------------------------------------------- validation


def validate_not_ending(s: EnvState) -> None:
    if s.status in ENDING:
        reason = s.termination_reason.value if s.termination_reason else s.status.value
        verb = "is terminating" if s.status == Status.TERMINATING else "has ended"
        raise ValueError(f"environment {verb}: {reason}")


def validate_threshold(s: EnvState, field: str, seconds: int | None) -> None:
    validate_not_ending(s)
    if seconds is None:
        return
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise ValueError(f"{field} must be whole seconds or null (off), got {seconds!r}")
    if seconds < 0 or seconds > MAX_SECONDS:
        raise ValueError(
            f"{field} must be between 0 (off) and {MAX_SECONDS} seconds (4w), got {seconds}"
        )


def validate_extend(s: EnvState, seconds: int) -> None:
    validate_threshold(s, "extend", seconds)
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


def validate_stop_at(s: EnvState, at: datetime | None, now: datetime) -> None:
    validate_not_ending(s)
    if at is not None and (at.tzinfo is None or at <= now):
        raise ValueError(
            f"stop_at {at.isoformat()} is not in the future; accepted: a later time "
            "with its time zone"
        )


def validate_change(s: EnvState, change: Change, now: datetime) -> None:
    """Every part of one PATCH, checked before any is applied: all or nothing."""
    validate_not_ending(s)
    if (
        change.inactivity is None
        and change.max_duration is None
        and change.stop_at is None
        and change.extend is None
        and change.shared_with is None
    ):
        raise ValueError("nothing to change")
    if change.by is not None and not USER_NAME.fullmatch(change.by):
        raise ValueError(f"by: {change.by[:40]!r} is not a user name")
    if change.inactivity is not None:
        validate_threshold(s, "inactivity_duration", change.inactivity.seconds)
    if change.max_duration is not None:
        validate_threshold(s, "max_duration", change.max_duration.seconds)
    if change.stop_at is not None:
        validate_stop_at(s, change.stop_at.at, now)
    if change.extend is not None:
        validate_extend(s, change.extend)
    if change.shared_with is not None:
        validate_shared(change.shared_with, s.spec.owner)


# ---------------------------------------------------------------- application


def apply_threshold(
    s: EnvState, field: str, seconds: int | None, now: datetime, by: str | None = None
) -> Applied:
    """Set a threshold (0/None: off), recompute; an already exceeded one ends it at once.

    The answer names the deadline computed for the new value, even the exceeded one."""
    value = seconds or None
    label = THRESHOLDS[field]
    old = getattr(s.spec, field)
    setattr(s.spec, field, value)
    s.deadline_floor = None  # explicit numbers replace an earlier extension
    deadline.recompute(s)
    due, reason = s.deadline, s.deadline_reason
    changed = f"{label} changed{by_words(by)} from {format_duration(old)} "
    changed += f"to {format_duration(value)}; "
    if field == "inactivity_duration" and s.spec.inactivity_auto is not None:
        s.spec.inactivity_auto = None  # an explicit threshold replaces the learned one
        changed += "auto off; "
    if due is not None and reason is not None and due <= now:
        return Applied(changed + "already exceeded, terminating", reason, (due, reason))
    return Applied(changed + f"deadline {clock(due) if due else 'none'}", None, (due, reason))


def apply_extend(s: EnvState, seconds: int, capped: bool, by: str | None = None) -> Applied:
    """Push the current deadline out by ``seconds`` once; the thresholds stay. ``capped``:
    never more than ``seconds`` past the rules' own deadline (a later one may be earlier);
    extensions made before the cap existed keep their floor alone."""
    deadline.recompute(s)
    assert s.deadline is not None
    s.deadline_floor = s.deadline + timedelta(seconds=seconds)
    s.deadline_extension = seconds if capped else None
    deadline.recompute(s)
    return Applied(
        f"deadline extended by {format_duration(seconds)}{by_words(by)} to {clock(s.deadline)} "
        f"({rule_words(s)}; thresholds unchanged)"
    )


def apply_stop_at(s: EnvState, at: datetime | None, by: str | None = None) -> Applied:
    """A fixed end whatever the activity (None: remove it); it replaces an extension."""
    s.stop_at = at
    dropped = s.deadline_floor
    s.deadline_floor = None  # an explicit end replaces an earlier extension: say so
    deadline.recompute(s)
    replaced = f"; the extension to {clock(dropped)} no longer holds" if dropped else ""
    return Applied(
        f"scheduled stop at {clock(at)}{by_words(by)}; "
        f"deadline {clock(s.deadline) if s.deadline else 'none'}{replaced}"
        if at is not None
        else f"scheduled stop removed{by_words(by)}{replaced}"
    )


def apply_shared(s: EnvState, users: list[SharedUser], by: str | None = None) -> Applied:
    """Who may log in besides the owner; the instance is told at the workflow's next pass."""
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
    return Applied("; ".join(parts) + by_words(by))


def apply_purge_workspace(s: EnvState, purge: bool) -> str:
    """Have the coming termination delete the workspace too; the event to record."""
    s.purge_workspace = purge
    return "the workspace will be deleted at termination" if purge else "workspace kept"


def stop_message(reason: str | None) -> str:
    """The event of a user's stop (with the reason given, if any)."""
    return "stop requested" + (f": {reason}" if reason else "")
