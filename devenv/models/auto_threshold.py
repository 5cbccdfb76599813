"""``inactivity_duration: auto``: the idle threshold learned from the owner's breaks.

Pure and deterministic, so the workflow runs it on every break and a replay picks the
same thresholds: the inputs are the recorded breaks (this environment's, and the
owner's other environments' read once by the ``owner_breaks`` activity) and the bounds.

The rule: with fewer than ``MIN_BREAKS`` breaks in the window, the bounds' max (too
little is known, so nothing is risked: one coffee break says nothing of lunch).
Otherwise the longest break of the last ``WINDOW`` times ``MARGIN``, rounded up to the
minute, kept inside the bounds: never below the longest break seen (a break that long
happened; one as long must not end the machine), never outside the bounds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from devenv.models.durations import format_duration

WINDOW = timedelta(days=14)
"""Breaks older than this no longer count."""
MARGIN = 1.5
"""The threshold covers the longest break by half as much again."""
STEP = 60
"""Thresholds are whole minutes."""
MIN_BREAKS = 3
"""Breaks known (in the window) before the threshold leaves the max."""
MAX_BREAKS = 100
"""Breaks kept per list in the workflow's state (the longest of the window)."""


class Break(BaseModel):
    """One break: everyone left, then someone came back (the report's data model: the gap
    between two in-use intervals, ``devenv.models.usage``)."""

    ended: datetime = Field(description="When someone came back (UTC).")
    seconds: float = Field(ge=0, description="How long nobody was there.")


class AutoState(BaseModel):
    """What an ``auto`` environment remembers between breaks (carried by continue-as-new)."""

    breaks: list[Break] = Field(default_factory=list)
    """This environment's breaks in the window (at most ``MAX_BREAKS``, the longest)."""
    others: list[Break] = Field(default_factory=list)
    """The owner's breaks in their other environments, read once at start."""
    others_read: bool = False
    """Whether the activity answered (or gave up): it is asked once."""
    used: bool = False
    """Someone has used it: the next idle stretch that ends with a return is a break,
    the wait before first use is not."""


@dataclass(frozen=True)
class Choice:
    """The threshold the rule picks and why."""

    seconds: int
    count: int
    """Breaks in the window it looked at."""
    longest: float | None
    """The longest of them (seconds); None with none."""

    def why(self) -> str:
        """``longest of 6 breaks in 14d: 8m``, or ``no break in 14d``."""
        window = f"{WINDOW.days}d"
        if self.longest is None:
            return f"no break in {window}: the max"
        if self.count < MIN_BREAKS:
            return f"{self.count} of {MIN_BREAKS} breaks needed in {window}: the max"
        noun = "break" if self.count == 1 else "breaks"
        return f"longest of {self.count} {noun} in {window}: {format_duration(self.longest)}"


def in_window(breaks: Iterable[Break], now: datetime) -> list[Break]:
    """The breaks that ended in the last ``WINDOW`` (and not after ``now``)."""
    return [b for b in breaks if now - WINDOW <= b.ended <= now]


def choose(breaks: Iterable[Break], low: int, high: int, now: datetime) -> Choice:
    """The shortest threshold covering the window's breaks with the margin, in bounds."""
    recent = in_window(breaks, now)
    if not recent:
        return Choice(high, 0, None)
    longest = max(b.seconds for b in recent)
    if len(recent) < MIN_BREAKS:
        return Choice(high, len(recent), longest)
    seconds = round(longest)  # whole seconds: a return's milliseconds move nothing
    wanted = max(math.ceil(seconds * MARGIN / STEP) * STEP, math.ceil(longest))
    return Choice(min(max(wanted, low), high), len(recent), longest)


def kept(breaks: Iterable[Break], now: datetime) -> list[Break]:
    """The breaks worth keeping in the state: in the window, at most ``MAX_BREAKS``, the
    longest (the rule reads only the longest), in the order they ended."""
    recent = in_window(breaks, now)
    if len(recent) > MAX_BREAKS:
        recent = sorted(recent, key=lambda b: (b.seconds, b.ended))[-MAX_BREAKS:]
    return sorted(recent, key=lambda b: b.ended)


def change_words(old: int | None, new: int, choice: Choice) -> str:
    """The event of a change: ``auto: inactivity 1h -> 12m (longest of 6 breaks in 14d: 8m)``."""
    return f"auto: inactivity {format_duration(old)} -> {format_duration(new)} ({choice.why()})"


def rule_words(low: int, high: int, current: int | None, breaks: Iterable[Break]) -> str:
    """``auto within 15m..4h, now 1h (longest of 6 breaks in 14d: 45m)``: the rule as
    ``ps -v`` shows it, counted at the latest break known."""
    known = list(breaks)
    latest = max((b.ended for b in known), default=None)
    why = (
        "no break known yet: the max" if latest is None else choose(known, low, high, latest).why()
    )
    return (
        f"auto within {format_duration(low)}..{format_duration(high)}, "
        f"now {format_duration(current)} ({why})"
    )


class OwnerBreaksInput(BaseModel):
    """The ``owner_breaks`` activity: the owner's breaks in their other environments."""

    workflow_id: str = Field(description="The asking environment (its own breaks it has).")
    owner: str | None = Field(description="Whose environments; None: nobody's (no history).")
    since: datetime
    until: datetime


class OwnerBreaks(BaseModel):
    """What ``owner_breaks`` answers: the breaks (bounded as ``kept``) and how many of the
    owner's environments it read."""

    breaks: list[Break] = Field(default_factory=list)
    environments: int = 0
