"""What the probe's answer means for an environment whose idle deadline has come.

Pure: it changes the state and says what to log; the workflow decides the rest.
"""

from __future__ import annotations

from datetime import datetime

from devenv.workflows.display import clock, plural, utc
from devenv.workflows.durations import format_duration
from devenv.workflows.state import EnvState, PresenceReport


def probe_answer(s: EnvState, seen: PresenceReport, now: datetime) -> str | None:
    """Take in what the instance says about presence at the deadline; the event to log.

    Someone the monitor missed keeps it up; someone still inside
    min_connection_duration restarts the idle clock (present, just not counted yet);
    a disconnect later than the monitor knew moves the idle clock to it.
    """
    if seen.connections > 0 and s.connections == 0:
        s.connections = seen.connections
        s.last_report_at = now
        return (
            f"deadline reached, but the instance reports "
            f"{plural(seen.connections, 'connection')}; staying up"
        )
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
