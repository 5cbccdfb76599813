"""A user's idle spend of the week: idle time x price, from the visibility store's rows.

Pure functions (no Temporal, no I/O) over the memo row each environment keeps
(``EnvironmentStatus``): the budget check (``devenv.activities.budget_check``) reads
one listing of the running workflows and one of those closed this week, and sums per
owner. What counts, as ``devenv report`` and ``GET /metrics`` count idle cost:

* a running environment idle now: its current idle stretch within the week;
* a closed one ended by inactivity: its final idle stretch (the threshold in force at
  its end, at most its billed time) within the week.

Earlier idle stretches of an environment (a break it came back from) are not in its
row: the spend is a lower bound, never an overestimate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from devenv.models.schedule import zone

IDLE_ENDS = frozenset({"inactivity_duration_exceeded"})
"""Termination reasons whose final stretch was the idle threshold (as ``GET /metrics``)."""


def week_start(now: datetime, tz: str | None) -> datetime:
    """Monday 00:00 of ``now``'s week in zone ``tz`` (None: UTC), as an aware datetime."""
    local = now.astimezone(zone(tz or "UTC"))
    monday = (local - timedelta(days=local.weekday())).date()
    return datetime(monday.year, monday.month, monday.day, tzinfo=local.tzinfo)


def overlap(start: datetime, stop: datetime, since: datetime, until: datetime) -> float:
    """Seconds of [start, stop] within [since, until]."""
    return max((min(stop, until) - max(start, since)).total_seconds(), 0.0)


def final_idle_seconds(
    inactivity_duration: int | None, billed_from: datetime | None, billed_until: datetime
) -> float:
    """The final idle stretch of an environment ended by inactivity: the threshold in
    force at its end, at most its billed time (``GET /metrics`` counts the same)."""
    billed = (billed_until - billed_from).total_seconds() if billed_from is not None else 0.0
    return min(float(inactivity_duration or 0), max(billed, 0.0))


class SpendRow(BaseModel):
    """The keys of a memo row the spend reads; the rest is ignored (rows of any version)."""

    model_config = ConfigDict(extra="ignore")

    status: str
    owner: str | None = None
    idle_since: datetime | None = None
    price_per_hour: float | None = None
    inactivity_duration: int | None = None
    termination_reason: str | None = None
    billed_from: datetime | None = None
    billed_until: datetime | None = None


def idle_seconds(row: SpendRow, since: datetime, now: datetime) -> float:
    """Seconds of idle time of ``row``'s environment between ``since`` and ``now``."""
    if row.billed_until is None:  # running
        if row.status != "running" or row.idle_since is None:
            return 0.0
        return overlap(row.idle_since, now, since, now)
    if row.termination_reason not in IDLE_ENDS:
        return 0.0
    idle = final_idle_seconds(row.inactivity_duration, row.billed_from, row.billed_until)
    return overlap(row.billed_until - timedelta(seconds=idle), row.billed_until, since, now)


def idle_usd(row: SpendRow, since: datetime, now: datetime) -> float:
    """USD of idle time of ``row`` in the period (0 without a price)."""
    if row.price_per_hour is None:
        return 0.0
    return row.price_per_hour * idle_seconds(row, since, now) / 3600


def over_budget(
    spends: dict[str, float], budgets: dict[str, float], before: dict[str, float]
) -> dict[str, float]:
    """The users whose spend passed their budget, with the spend found when it first did
    (a user already over keeps the figure their events gave)."""
    over: dict[str, float] = {}
    for user, spent in spends.items():
        budget = budgets.get(user)
        if budget is not None and spent > budget:
            over[user] = before.get(user, round(spent, 2))
    return over
