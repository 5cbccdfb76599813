"""When an environment was in use, and its breaks, read from its own events.

The report's data model (``devenv report``, ``devenv.client.report``) and the input of
``inactivity_duration: auto`` (the ``owner_breaks`` activity): one reading of the
workflow's words, so both count the same breaks. Pure.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from devenv.models.auto_threshold import Break
from devenv.models.state import EnvEvent, EnvState

Interval = tuple[datetime, datetime]


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# The words the workflow writes (devenv/workflows/presence.py, environment.py).
_CLOCK = r"(?:(\d{4}-\d{2}-\d{2}) )?(\d{2}:\d{2}:\d{2})Z"
_STARTS = ("user connected (", "in use: ", "deadline reached, but the instance reports ")
_CHANGED = "connections changed from "
_ENDS = re.compile(
    rf"^(?:last user disconnected|last job ended|last user and job ended); idle since(?: {_CLOCK})?"
    rf"|^monitor silent since(?: {_CLOCK})?"
)
_SEEN_UNTIL = re.compile(rf"^deadline reached, but a user was connected until {_CLOCK}")
_WAITING = re.compile(r"^deadline reached, but .* within min_connection_duration")


def parse_clock(match: re.Match[str], at: datetime) -> datetime | None:
    """The second a ``clock()`` text names (``10:02:03Z`` is on the date of ``at``, the
    event's own time, as the workflow wrote it); None if it does not parse."""
    groups = [g for g in match.groups() if g is not None]
    if not groups:
        return None
    date, time = (groups[0], groups[1]) if len(groups) == 2 else (at.date().isoformat(), groups[0])
    try:
        return datetime.fromisoformat(f"{date}T{time}+00:00")
    except ValueError:
        return None


def in_use_intervals(events: Sequence[EnvEvent], end: datetime) -> list[Interval]:
    """When the environment was in use (users connected or jobs running), from its events.

    Starts are the events' own times; ends are the "idle since" moment the workflow
    recorded in the event's words (whole seconds, see ``_moment``), else the event's time.
    An interval still open is closed at ``end`` (ended_at, or now). A presence change
    whose start was dropped from a long history starts at the first event kept. A probe
    that found a user the monitor missed (or one within min_connection_duration) is an
    instant of use. Sorted, disjoint; touching intervals are merged.
    """
    intervals: list[Interval] = []
    opened: datetime | None = None
    first = utc(events[0].at) if events else None
    for event in events:
        at, text = utc(event.at), event.message
        if text.startswith(_STARTS):
            opened = opened or at
        elif text.startswith(_CHANGED):
            opened = opened or (first if not intervals else at)
        elif (ended := _ENDS.match(text)) is not None:
            start = opened or (first if not intervals else None)
            if start is not None:
                intervals.append((start, max(_moment(ended, at), start)))
            opened = None
        elif opened is None and (seen := _SEEN_UNTIL.match(text) or _WAITING.match(text)):
            moment = _moment(seen, at)
            intervals.append((moment, moment))
    if opened is not None:
        intervals.append((opened, max(opened, utc(end))))
    merged: list[Interval] = []
    for start, stop in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def _moment(match: re.Match[str], at: datetime) -> datetime:
    """The moment an event's clock text names, at most ``at`` (the event's time).

    The text has whole seconds and the true moment lies in that second, so the
    estimate is the end of that second, or the event itself when it is earlier
    (the usual case: the event follows the change within milliseconds)."""
    second = parse_clock(match, at)
    return at if second is None else min(at, second + timedelta(seconds=1))


def breaks_of(state: EnvState, since: datetime, now: datetime) -> list[Break]:
    """The environment's breaks that ended in [since, now]: the gaps between its in-use
    intervals (the report's ``breaks_seconds``, with when each ended)."""
    if state.ready_at is None:
        return []
    end = utc(state.ended_at) if state.ended_at else utc(now)
    intervals = in_use_intervals(state.events, end)
    return [
        Break(ended=b[0], seconds=(b[0] - a[1]).total_seconds())
        for a, b in itertools.pairwise(intervals)
        if b[0] > a[1] and utc(since) <= b[0] <= utc(now)
    ]
