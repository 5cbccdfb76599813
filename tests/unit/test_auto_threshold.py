"""The ``auto`` idle rule, pure: what threshold a user's recorded breaks give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devenv.models.auto_threshold import (
    MAX_BREAKS,
    Break,
    change_words,
    choose,
    kept,
    rule_words,
)

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
MIN = 60
LOW, HIGH = 15 * MIN, 4 * 3600


def brk(minutes: float, days_ago: float = 0.5) -> Break:
    return Break(ended=NOW - timedelta(days=days_ago), seconds=minutes * MIN)


def test_nothing_known_is_the_max() -> None:
    """No false kill before anything is known: with no break, the bounds' max."""
    choice = choose([], LOW, HIGH, NOW)
    assert choice.seconds == HIGH
    assert choice.why() == "no break in 14d: the max"


def test_longest_break_with_margin_rounded_to_the_minute() -> None:
    choice = choose([brk(3), brk(8), brk(5)], 5 * MIN, HIGH, NOW)
    assert choice.seconds == 12 * MIN  # 8m x 1.5
    assert choice.count == 3
    assert change_words(3600, choice.seconds, choice) == (
        "auto: inactivity 1h -> 12m (longest of 3 breaks in 14d: 8m)"
    )


def test_too_few_breaks_keep_the_max() -> None:
    """One coffee break says nothing of lunch: the max holds until 3 breaks are known."""
    choice = choose([brk(5), brk(6)], LOW, HIGH, NOW)
    assert (choice.seconds, choice.why()) == (HIGH, "2 of 3 breaks needed in 14d: the max")
    assert choose([brk(5), brk(6), brk(4)], LOW, HIGH, NOW).seconds == LOW


def test_never_outside_the_bounds() -> None:
    assert choose([brk(2)] * 3, LOW, HIGH, NOW).seconds == LOW
    assert choose([brk(300)] * 3, LOW, HIGH, NOW).seconds == HIGH


def test_never_below_the_longest_break() -> None:
    for minutes in (1, 7.5, 29, 61, 119):
        assert choose([brk(minutes), brk(1), brk(1)], MIN, HIGH, NOW).seconds >= minutes * MIN


def test_only_the_window_counts() -> None:
    """A lunch break three weeks ago no longer keeps the threshold long."""
    coffees = [brk(10), brk(8), brk(9)]
    assert choose([brk(90, days_ago=21), *coffees], LOW, HIGH, NOW).seconds == LOW
    assert choose([brk(90, days_ago=13), *coffees], LOW, HIGH, NOW).seconds == 135 * MIN


def test_deterministic() -> None:
    breaks = [brk(m, days_ago=m / 10) for m in (4, 9, 31, 2, 17)]
    assert choose(breaks, LOW, HIGH, NOW) == choose(list(reversed(breaks)), LOW, HIGH, NOW)


def test_kept_is_bounded_and_keeps_the_longest() -> None:
    many = [brk(1 + i % 7, days_ago=i / 100) for i in range(MAX_BREAKS * 3)]
    many.append(brk(55, days_ago=10))
    many.append(brk(200, days_ago=20))  # outside the window: dropped
    left = kept(many, NOW)
    assert len(left) == MAX_BREAKS
    assert max(b.seconds for b in left) == 55 * MIN
    assert [b.ended for b in left] == sorted(b.ended for b in left)
    assert choose(left, LOW, HIGH, NOW) == choose(many, LOW, HIGH, NOW).__class__(
        seconds=choose(many, LOW, HIGH, NOW).seconds, count=MAX_BREAKS, longest=55 * MIN
    )


@pytest.mark.parametrize(
    ("breaks", "words"),
    [
        ([], "auto within 15m..4h, now 4h (no break known yet: the max)"),
        ([brk(20)], "auto within 15m..4h, now 4h (1 of 3 breaks needed in 14d: the max)"),
        (
            [brk(20), brk(3), brk(4)],
            "auto within 15m..4h, now 30m (longest of 3 breaks in 14d: 20m)",
        ),
    ],
)
def test_rule_words(breaks: list[Break], words: str) -> None:
    current = choose(breaks, LOW, HIGH, NOW).seconds
    assert rule_words(LOW, HIGH, current, breaks) == words
