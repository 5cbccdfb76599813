"""Durations mean the same in YAML, on the command line and in the workflow."""

from __future__ import annotations

import pytest

from devenv.models.durations import DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (7200, 7200),
        ("7200", 7200),
        ("90s", 90),
        ("30m", 1800),
        ("2h", 7200),
        ("1d", 86400),
        ("1w", 604800),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        (" 2H ", 7200),
        ("4w", 4 * 604800),
    ],
)
def test_accepted_forms(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["off", "OFF", "false", "0", 0, False])
def test_off_forms_disable_the_rule(value: object) -> None:
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("-1h", "not a duration"),
        (-5, "negative"),
        ("1x", "not a duration"),
        ("99999w", "longer than 4 weeks"),
        ("4w1s", "longer than 4 weeks"),
        ("1.5.2h", "not a duration"),
        ("1.5h", "not a duration"),
        ("", "not a duration"),
        ("None", "not a duration"),
        (None, "null is not a duration"),
        (True, "'true' is not a duration"),
        ("h", "not a duration"),
        ("30m1h", "not a duration"),
        ([1], "not a duration"),
    ],
)
def test_rejected_values_say_why_and_what_is_accepted(value: object, why: str) -> None:
    with pytest.raises(DurationError) as caught:
        parse_duration(value)
    message = str(caught.value)
    assert why in message
    assert "90s, 30m, 2h, 1d, 1w or 1h30m" in message


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "off"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d"), (0, "0s")]
)
def test_format_round_trips(seconds: int | None, text: str) -> None:
    assert format_duration(seconds) == text
    if seconds:
        assert parse_duration(text) == seconds
