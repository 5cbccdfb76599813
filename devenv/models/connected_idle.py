"""``connected_idle``: a terminal left open is not a user. Pure functions of the state.

A connected session keeps the environment in use only while it shows signs of life:
terminal input (the pty; ``w``'s IDLE on sshd hosts), the environment's processes
using at least ``connected_idle_cpu`` of a core, or the connection itself (its start).
Once the latest sign is ``connected_idle`` old the sessions count as absent, and the
idle rule counts from that sign: the environment ends at the later of ``connected_idle``
and ``inactivity_duration`` after it. A running job keeps it whatever its terminals do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devenv.models.durations import format_duration
from devenv.models.state import EnvState, PresenceReport, Status, TerminationReason


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _later(current: datetime | None, seen: datetime | None, now: datetime) -> datetime | None:
    """The later of what is known and what the instance says (never past ``now``: an
    instance's clock ahead of the server's must not keep the environment longer)."""
    if seen is None:
        return current
    seen = min(_utc(seen), now)
    return seen if current is None or seen > current else current


def note_signs(s: EnvState, report: PresenceReport, now: datetime) -> None:
    """Take in the signs of life a report (or a probe) carries; a connection opened while
    nobody was connected is one too."""
    if report.connections > 0 and s.connections == 0:
        s.connected_at = now
    s.last_input = _later(s.last_input, report.last_input, now)
    s.busy_at = _later(s.busy_at, report.busy_at, now)


def last_sign(s: EnvState) -> datetime | None:
    """The latest sign of life of the connected sessions; None when nothing is known."""
    signs = [t for t in (s.connected_at, s.last_input, s.busy_at) if t is not None]
    return max(signs, default=None)


def watched(s: EnvState) -> bool:
    """Whether the rule applies now: on, someone connected, no job running."""
    return (
        s.spec.connected_idle is not None
        and s.status == Status.RUNNING
        and s.connections > 0
        and s.jobs == 0
    )


def absent_since(s: EnvState) -> datetime | None:
    """When the connected sessions began to count as absent (``connected_idle`` after the
    last sign of life); None while the rule does not apply."""
    last = last_sign(s)
    if not watched(s) or last is None or s.spec.connected_idle is None:
        return None
    return last + timedelta(seconds=s.spec.connected_idle)


def end(s: EnvState) -> tuple[datetime, TerminationReason] | None:
    """The deadline of a connected but idle environment, or None."""
    last = last_sign(s)
    if not watched(s) or last is None or s.spec.connected_idle is None:
        return None
    wait = max(s.spec.connected_idle, s.spec.inactivity_duration or 0)
    return last + timedelta(seconds=wait), TerminationReason.CONNECTED_IDLE


def why(s: EnvState, now: datetime) -> str | None:
    """For ``ps -v`` and events: why the connected sessions count (or will count) as absent."""
    last = last_sign(s)
    if not watched(s) or last is None or s.spec.connected_idle is None:
        return None
    cpu = f"{s.spec.connected_idle_cpu:g}%"
    input_part = (
        "no terminal input seen" if s.last_input is None else f"last input {_hms(s.last_input)}"
    )
    busy_part = (
        f"processes under {cpu} of a core"
        if s.busy_at is None
        else f"processes last at {cpu}+ of a core {_hms(s.busy_at)}"
    )
    since = absent_since(s)
    assert since is not None
    state = "count as absent since" if since <= now else "count as absent at"
    return (
        f"connected_idle {format_duration(s.spec.connected_idle)}: {input_part}, {busy_part}; "
        f"the connected sessions {state} {_hms(since)}"
    )


def _hms(moment: datetime) -> str:
    return _utc(moment).strftime("%H:%M:%SZ")
