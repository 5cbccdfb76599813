"""What an admin's policy does to one running environment (update ``apply_org_policy``).

Pure functions of ``EnvState`` (and the time, passed in), like ``changes``: the
workflow's handler is a hook that records what ``apply`` returns. The user's own
thresholds are kept in ``state.requested``; the ones in force are those clamped to the
policy's bounds, so lowering a bound lowers them and raising it never raises them past
what the user asked. An environment already past a lowered bound is not cut off: its
deadline moves to its warning's lead from now (the usual warning, then the end).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from devenv.models import deadline
from devenv.models.durations import format_duration
from devenv.models.policy import BUDGET_SCOPE, FLAGS, OrgPolicy, Requested, check_thresholds
from devenv.models.state import Change, EnvState, Status, TerminationReason
from devenv.workflows import inputs
from devenv.workflows.display import clock

LIVE = (
    Status.PROVISIONING,
    Status.RUNNING,
    Status.SUSPENDING,
    Status.SUSPENDED,
    Status.RESUMING,
)
"""Statuses a policy applies to: all but ending (an ending environment is left to end).
A suspended one takes the version too (its thresholds count again once resumed), else
a version set while it slept would never reach it."""
LABELS = {"inactivity_duration": "inactivity threshold", "max_duration": "max duration"}
BOUNDS = {"inactivity_duration": "max_inactivity", "max_duration": "max_duration"}


@dataclass(frozen=True)
class Applied:
    """What the workflow records: the events, and the termination it starts (if any)."""

    messages: list[str]
    ends: TerminationReason | None = None


def validate(s: EnvState, raw: tuple[Any, ...]) -> OrgPolicy:
    """The update's one argument as an OrgPolicy, or ValueError (the update is refused,
    nothing recorded): garbage, an ended environment, or a version already applied."""
    policy = inputs.strict_model(OrgPolicy, raw, "apply_org_policy", unknown_keys=True)
    if s.status not in LIVE:
        raise ValueError(f"environment is {s.status.value}: no policy applies")
    if s.org_policy is not None and policy.version <= s.org_policy.version:
        raise ValueError(f"policy version {policy.version} already applied")
    return policy


def lenient(raw: tuple[Any, ...]) -> OrgPolicy:
    """The accepted argument, read again in the handler (the validator checked it)."""
    return inputs.lenient_model(OrgPolicy, raw)


def clamped(field: str, wanted: int | None, policy: OrgPolicy) -> int | None:
    """``wanted`` within the policy's bound for ``field`` (off counts as unbounded)."""
    bound: int | None = getattr(policy, BOUNDS[field])
    if field == "inactivity_duration" and wanted is None and policy.no_off and bound is None:
        return policy.default_inactivity
    if bound is None:
        return wanted
    return bound if wanted is None or wanted > bound else wanted


def apply(s: EnvState, policy: OrgPolicy, now: datetime) -> Applied:
    """Bring the environment within ``policy``; the events say what moved and why."""
    if s.requested is None:
        s.requested = Requested(
            inactivity_duration=s.spec.inactivity_duration,
            max_duration=s.spec.max_duration,
            stop_at=s.stop_at,
        )
    s.org_policy = policy
    messages: list[str] = []
    for field, label in LABELS.items():
        old = getattr(s.spec, field)
        new = clamped(field, getattr(s.requested, field), policy)
        if new == old:
            continue
        setattr(s.spec, field, new)
        verb = "lowered" if old is None or (new is not None and new < old) else "raised"
        bound = BOUNDS[field]
        why = (
            f"{FLAGS[bound]} {format_duration(getattr(policy, bound))}"
            if getattr(policy, bound) is not None
            else "no bound"
        )
        if policy.scopes.get(bound) == BUDGET_SCOPE:
            why = policy.budget_words()
        if field == "inactivity_duration" and old is None and policy.no_off:
            why += ", no-off"
        if verb == "raised":
            why += f"; you asked for {format_duration(getattr(s.requested, field))}"
        messages.append(
            f"{label} {verb} from {format_duration(old)} to {format_duration(new)} "
            f"by policy ({why})"
        )
    scheduled = _scheduled_stop(s, policy)
    if scheduled is not None:
        messages.append(scheduled)
    if not messages:
        return Applied([])
    s.policy_changes += 1
    return _with_warning(s, messages, now)


def _scheduled_stop(s: EnvState, policy: OrgPolicy) -> str | None:
    """The earlier of the user's own fixed end and the policy's next daily stop; the
    event if that moved the environment's."""
    assert s.requested is not None
    ends = [end for end in (s.requested.stop_at, policy.next_stop) if end is not None]
    new = min(ends) if ends else None
    if new == s.stop_at:
        return None
    s.stop_at = new
    if new is None:
        return "scheduled stop removed by policy"
    if new == policy.next_stop:
        return f"scheduled stop at {clock(new)} by policy ({policy.schedule_words()})"
    return f"scheduled stop back to {clock(new)}, as you asked (policy: {policy.schedule_words()})"


def _with_warning(s: EnvState, messages: list[str], now: datetime) -> Applied:
    """A deadline the change brought within the warning's lead from now moves to that
    lead, so the user still gets the warning before the end; without warnings
    (``warn_before: off``) an exceeded one ends now."""
    deadline.recompute(s)
    due, reason = s.deadline, s.deadline_reason
    lead = deadline.DEFAULT_WARNING if s.spec.warn_before is None else s.spec.warn_before
    if s.status != Status.RUNNING or due is None or reason is None:
        return Applied(messages)
    if due <= now and lead == 0:
        return Applied([*messages[:-1], messages[-1] + "; already exceeded, terminating"], reason)
    if due < now + timedelta(seconds=lead):
        s.deadline_floor = now + timedelta(seconds=lead)
        s.deadline_extension = None
        deadline.recompute(s)
        messages[-1] += f"; it ends at {clock(s.deadline)}, after its warning"
    return Applied(messages)


def record_request(s: EnvState, field: str, seconds: int | None) -> None:
    """A user's own threshold change, under a policy: remember what they asked for."""
    if s.requested is not None and field in LABELS:
        setattr(s.requested, field, seconds or None)


def validate_within(s: EnvState, values: Mapping[str, int | None], change: Change) -> None:
    """Refuse (ValueError with the policy's line) a user's change outside the policy in
    force in this environment; nothing when none applies."""
    policy = s.org_policy
    if policy is None:
        return
    check_thresholds(policy, values)
    if change.stop_at is not None:
        validate_stop(s, change.stop_at.at)


def validate_stop(s: EnvState, at: datetime | None) -> None:
    """A user's fixed end may not be later than the policy's next daily stop (nor off)."""
    policy = s.org_policy
    if policy is not None and policy.next_stop is not None:
        if at is None or at > policy.next_stop:
            shown = "off" if at is None else clock(at)
            verb = "is refused by" if at is None else "is after"
            raise ValueError(
                f"stop_at: {shown} {verb} {policy.bound_words('stop_at_daily')} "
                f"(next at {clock(policy.next_stop)})"
            )


def validate_field(s: EnvState, field: str, seconds: int | None) -> None:
    """``validate_within`` for the single-field updates and signals older clients send."""
    if s.org_policy is not None:
        check_thresholds(s.org_policy, {field: seconds or None})


def record_stop_request(s: EnvState, at: datetime | None) -> None:
    """A user's own ``--stop-at``, under a policy: remember it (the policy's may come first)."""
    if s.requested is not None:
        s.requested.stop_at = at


def threshold_values(change: Change) -> dict[str, int | None]:
    """The thresholds a ``change`` sets (seconds, None: off), for ``validate_within``."""
    values: dict[str, int | None] = {}
    if change.inactivity is not None:
        values["inactivity_duration"] = change.inactivity.seconds or None
    if change.max_duration is not None:
        values["max_duration"] = change.max_duration.seconds or None
    return values
