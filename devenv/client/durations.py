"""Durations given to the SDK or on the command line, checked before anything is sent."""

from __future__ import annotations

from devenv.config.loader import shorten
from devenv.errors import InvalidValueError
from devenv.workflows.durations import DurationError, parse_duration


def check_duration(key: str, value: object) -> int | None:
    """Seconds (None: off) or InvalidValueError naming ``key``, the value and what is
    accepted: the same line whether it came from a flag, a keyword or the YAML."""
    try:
        return parse_duration(value)
    except DurationError as problem:
        raise InvalidValueError(f"{key}: {shorten(str(problem), value)}") from None
    except ValueError:  # e.g. int() of thousands of digits
        raise InvalidValueError(f"{key}: {shorten(repr(value), value)} is not a duration") from None
