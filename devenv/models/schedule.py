"""A policy's daily fixed end (``--stop-at-daily 20:00 --tz Europe/Berlin --days Mon-Fri``).

Pure functions. The workflow never reads a time zone: the SDK (at a start) and the
fan-out (for running environments) compute the next stop as an absolute time and send
it; an environment needs only its next one, since reaching it ends the environment.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
DAYS_ACCEPTED = "day names or ranges such as Mon-Fri, Mon,Wed,Fri or Sat-Sun"


def parse_clock(text: str) -> tuple[int, int]:
    """``20:00`` -> (20, 0); ValueError naming what is accepted."""
    match = CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a time of day; accepted: HH:MM such as 20:00")
    return int(match.group(1)), int(match.group(2))


def parse_days(text: str | None) -> set[int]:
    """``Mon-Fri`` -> {0..4}; None: every day. ValueError naming what is accepted."""
    if text is None:
        return set(range(7))
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        ends = part.split("-")
        if len(ends) > 2 or any(end[:3] not in DAY_NAMES for end in ends) or not part:
            raise ValueError(f"{text[:40]!r} is not a set of days; accepted: {DAYS_ACCEPTED}")
        first, last = (DAY_NAMES.index(end[:3]) for end in (ends[0], ends[-1]))
        day = first
        while True:
            days.add(day)
            if day == last:
                break
            day = (day + 1) % 7
    return days


def zone(name: str | None) -> ZoneInfo:
    """The time zone ``name`` (None: UTC); ValueError if this machine does not know it."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        shown = (name or "")[:60]
        raise ValueError(
            f"{shown!r} is not a time zone; accepted: an IANA name such as Europe/Berlin"
        ) from None


def next_stop(at: str, tz: str | None, days: str | None, now: datetime) -> datetime:
    """The first ``at`` (local to ``tz``) on one of ``days`` after ``now``."""
    hour, minute = parse_clock(at)
    chosen = parse_days(days)
    where = zone(tz)
    local = now.astimezone(where)
    for ahead in range(8):
        day = (local + timedelta(days=ahead)).date()
        moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=where)
        if moment > now and moment.weekday() in chosen:
            return moment
    raise ValueError(f"no day in {days!r}")  # parse_days never returns an empty set
