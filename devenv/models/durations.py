"""Durations as users write them: ``7200``, ``"2h"``, ``"1h30m"``, ``off``.

Pure functions so the same parser serves the YAML loader, the CLI flags and the
workflow's Update validator, and a value means the same thing everywhere.
"""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_SECONDS = 4 * UNITS["w"]
OFF_WORDS = frozenset({"off", "false", "0"})
ACCEPTED = (
    "integer seconds, a duration such as 90s, 30m, 2h, 1d, 1w or 1h30m (at most 4w), "
    "or off/false/0 to disable"
)
_PATTERN = re.compile(
    # dstack's files write "2h"; people also write "2 h" and "1h 30m": spaces are allowed
    # between a number and its unit and between parts.
    r"(?:(\d+)\s*w\s*)?(?:(\d+)\s*d\s*)?(?:(\d+)\s*h\s*)?(?:(\d+)\s*m\s*)?(?:(\d+)\s*s)?"
)


class DurationError(ValueError):
    """A value that is not a duration; the message says why and what is accepted."""


def parse_duration(value: object) -> int | None:
    """Seconds for ``value``, or ``None`` when the rule is switched off."""
    if isinstance(value, bool):
        if value:
            raise DurationError(f"'true' is not a duration; accepted: {ACCEPTED}")
        return None
    if isinstance(value, int):
        return _checked(value, repr(value))
    if isinstance(value, float) and value.is_integer():
        return _checked(int(value), repr(value))
    if not isinstance(value, str):
        shown = "null" if value is None else repr(value)
        raise DurationError(f"{shown} is not a duration; accepted: {ACCEPTED}")
    text = value.strip().lower()
    if text in OFF_WORDS:
        return None
    if text.lstrip("+-").isdigit():
        return _checked(int(text), repr(value))
    match = _PATTERN.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise DurationError(f"{value!r} is not a duration; accepted: {ACCEPTED}")
    seconds = sum(int(n) * UNITS[u] for n, u in zip(match.groups(), UNITS, strict=True) if n)
    return _checked(seconds, repr(value))


def _checked(seconds: int, shown: str) -> int | None:
    if seconds < 0:
        raise DurationError(f"{shown} is negative; accepted: {ACCEPTED}")
    if seconds > MAX_SECONDS:
        raise DurationError(f"{shown} is longer than 4 weeks; accepted: {ACCEPTED}")
    return seconds or None


def format_duration(seconds: int | float | None) -> str:
    """The shortest compound form (``5400`` -> ``1h30m``); ``off`` for ``None``."""
    if seconds is None:
        return "off"
    remaining = round(seconds)
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
