"""What the probe's answer means for an environment whose idle deadline has come.

Pure: it changes the state and says what to log; the workflow decides the rest.
"""

from __future__ import annotations

from datetime import datetime

from devenv.workflows.display import clock, plural, presence_words, utc
from devenv.workflows.durations import format_duration
from devenv.workflows.state import EnvState, PresenceReport


def probe_answer(s: EnvState, seen: PresenceReport, now: datetime) -> str | None:
    """Take in what the instance says about presence at the deadline; the event to log.

    Someone the monitor missed keeps it up; someone still inside
    min_connection_duration restarts the idle clock (present, just not counted yet);
    a disconnect later than the monitor knew moves the idle clock to it.
    """
    if seen.in_use > 0 and s.connections + s.jobs == 0:
        s.connections, s.jobs = seen.connections, seen.jobs
        s.last_report_at = now
        found = presence_words(seen.connections, seen.jobs)
        return f"deadline reached, but the instance reports {found}; staying up"
    if seen.waiting > 0 and s.connections == 0:
        s.idle_since = now
        return (
            f"deadline reached, but {plural(seen.waiting, 'user connection')} "
            f"opened within min_connection_duration "
            f"({format_duration(s.spec.min_connection_duration)}); idle clock restarted"
        )
    if seen.connections == 0 and s.connections == 0 and s.idle_since is not None:
        last_change = min(utc(seen.last_change), now)
        if last_change > s.idle_since:
            s.idle_since = last_change
            return (
                f"deadline reached, but a user was connected until "
                f"{clock(last_change)}; idle since then"
            )
    return None


def presence_change(s: EnvState, seen: PresenceReport) -> str:
    """The event for a change of who is present (before ``s`` takes in ``seen``)."""
    users, jobs = seen.connections, seen.jobs
    if s.jobs == 0 and jobs == 0:  # the words every history before jobs has
        if users == 0:
            return f"last user disconnected; idle since {clock(_idle(s))}"
        if s.connections == 0:
            return f"user connected ({plural(users, 'connection')})"
        return f"connections changed from {s.connections} to {users}"
    if users + jobs == 0:
        gone = "last job ended" if s.connections == 0 else "last user and job ended"
        return f"{gone}; idle since {clock(_idle(s))}"
    parts = []
    if users != s.connections:
        parts.append(f"connections {s.connections} -> {users}")
    if jobs != s.jobs:
        parts.append(f"jobs {s.jobs} -> {jobs}")
    return f"in use: {plural(users, 'connection')}, {plural(jobs, 'job')} ({', '.join(parts)})"


def _idle(s: EnvState) -> datetime:
    assert s.idle_since is not None
    return s.idle_since
