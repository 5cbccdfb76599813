"""When an environment must end: pure functions of its state, no Temporal calls.

One durable timer serves every rule, so the workflow asks here, on every wake,
for the earliest moment anything may be due.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from devenv.workflows.state import EnvState, Status, TerminationReason


def compute(state: EnvState) -> tuple[datetime | None, TerminationReason | None]:
    """The earlier of the idle rule (only while nobody is present) and max_duration."""
    s = state
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
        and s.jobs == 0
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
        return None, None
    return min(candidates, key=lambda c: c[0])


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


def next_wake(state: EnvState, monitor_restart_at: datetime | None) -> datetime | None:
    """The earliest moment something may be due: deadline, silence check, monitor restart."""
    times = [state.deadline, monitor_restart_at, silence_bound(state)]
    return min((t for t in times if t is not None), default=None)


def overdue(state: EnvState, now: datetime) -> bool:
    """A deadline with a reason that has passed while no termination is under way."""
    return (
        state.termination_reason is None
        and state.deadline is not None
        and state.deadline_reason is not None
        and state.deadline <= now
    )
