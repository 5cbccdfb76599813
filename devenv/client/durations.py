"""Durations given to the SDK or on the command line, checked before anything is sent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from devenv.errors import InvalidValueError
from devenv.models.durations import OFF_WORDS, DurationError, parse_duration

_CLOCK = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")


def _shorten(message: str, value: object) -> str:
    """``devenv.models.problems.shorten``, imported only when a value is refused: the
    loader brings YAML and the backends' registry, which a valid value never needs."""
    from devenv.models.problems import shorten

    return shorten(message, value)


def check_duration(key: str, value: object) -> int | None:
    """Seconds (None: off) or InvalidValueError naming ``key``, the value and what is
    accepted: the same line whether it came from a flag, a keyword or the YAML."""
    try:
        return parse_duration(value)
    except DurationError as problem:
        raise InvalidValueError(f"{key}: {_shorten(str(problem), value)}") from None
    except ValueError:  # e.g. int() of thousands of digits
        raise InvalidValueError(
            f"{key}: {_shorten(repr(value), value)} is not a duration"
        ) from None


STOP_AT_ACCEPTED = (
    "accepted: HH:MM (local time; the next such moment, today or tomorrow), or an "
    "ISO-8601 date and time such as 2026-12-24T18:30 (local unless it has an offset), or off"
)


def check_stop_at(key: str, value: object, now: datetime | None = None) -> datetime | None:
    """A fixed end as an aware UTC datetime (None: off), or InvalidValueError naming ``key``.

    ``18:30`` is the next 18:30 of local time (tomorrow's once today's has passed); an
    ISO-8601 value without an offset is local time too.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in OFF_WORDS):
        return None
    current = (now or datetime.now(UTC)).astimezone()
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.astimezone()
    elif isinstance(value, str):
        text = value.strip()
        clock_time = _CLOCK.fullmatch(text)
        try:
            if clock_time:
                hour, minute = int(clock_time.group(1)), int(clock_time.group(2))
                moment = current.replace(hour=hour, minute=minute, second=0, microsecond=0)
                if moment <= current:
                    moment += timedelta(days=1)
            else:
                parsed = datetime.fromisoformat(text)
                moment = parsed if parsed.tzinfo else parsed.astimezone()
        except ValueError:
            shown = _shorten(repr(value), value)
            raise InvalidValueError(f"{key}: {shown}: {STOP_AT_ACCEPTED}") from None
    else:
        raise InvalidValueError(f"{key}: {_shorten(repr(value), value)}: {STOP_AT_ACCEPTED}")
    if moment <= current:
        raise InvalidValueError(
            f"{key}: {_shorten(repr(value), value)} is in the past ({moment.isoformat()}); "
            f"{STOP_AT_ACCEPTED}"
        )
    return moment.astimezone(UTC)
