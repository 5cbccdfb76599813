"""`devenv report`: what environments cost, what idle termination saved, and the
shortest idle threshold that would not have interrupted anyone's break.

Everything is computed from the environments' own state (timestamps, price, events);
the computation is pure (``build_report``), the fetching is one listing of the
visibility store plus one state per environment (``fetch_report``).

Definitions, all counted inside the period ``[since, now]``:

* hours running: ready_at -> ended_at (or now).
* hours in use: the union of the in-use intervals (a user connected or a job running),
  read from the environment's presence events (``in_use_intervals``).
* idle before termination: for environments ended by inactivity, the last idle since
  -> ended_at: what the threshold cost.
* cost: price_per_hour x hours running (unknown when the backend gave no price); hours
  suspended do not run: they cost storage_price_per_hour each (aws: the EBS volumes), and
  suspension saved hours suspended x (price - storage price). The current suspension is
  placed exactly; earlier ones (kept as a total) are counted inside the period.
* saved: for environments ended by inactivity, price x (min(created + max_duration,
  now) - ended_at) when max_duration is set, else price x (now - ended_at).
* breaks: gaps between the end of an in-use interval and the next start within one
  environment's run; the final idle stretch that ended it is not a break.
* saved by rule: the savings above grouped by the rule that ended each environment:
  ``inactivity_duration`` (a fixed threshold), ``auto`` (the learned one) or
  ``idle_budget``; for ``auto`` also what it saved against its bounds' max (the threshold
  it starts at, and would have kept without learning): price x (max - threshold in
  force), at most to now.
* suggested threshold: the smallest multiple of 5 minutes longer than every break and
  every wait before an environment's first use; what it would have saved compared with
  the thresholds in force: each environment's final idle stretch cut to it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from devenv.errors import InvalidValueError
from devenv.models.durations import UNITS
from devenv.models.state import EnvState, TerminationReason
from devenv.models.status import suspension_costs
from devenv.models.usage import Interval, in_use_intervals, parse_clock, utc

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

DEFAULT_SINCE = "7d"
MAX_SINCE = 52 * UNITS["w"]
STEP = 300
"""Suggested thresholds are multiples of 5 minutes."""
FETCH_CONCURRENCY = 16
BUCKETS: tuple[tuple[str, float], ...] = (
    ("<5m", 300),
    ("5-15m", 900),
    ("15-30m", 1800),
    ("30m-1h", 3600),
    ("1-2h", 7200),
    (">2h", math.inf),
)
"""Break length buckets: label and exclusive upper bound in seconds."""

__all__ = ["Interval", "in_use_intervals", "parse_clock", "utc"]
"""Re-exported: the report's data model lives in ``devenv.models.usage`` (the workflow's
activities read breaks with it too)."""


def parse_since(value: timedelta | str | int) -> timedelta:
    """The report's period: ``7d``, ``12h``, ``4w``, ``1d12h`` or seconds (at most 52w)."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = str(value).strip().lower()
        match = re.fullmatch(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
        if text.isdigit():
            seconds = int(text)
        elif text and match is not None and any(match.groups()):
            counts = zip(match.groups(), UNITS, strict=True)
            seconds = sum(int(n) * UNITS[u] for n, u in counts if n)
        else:
            seconds = -1
    if not 0 < seconds <= MAX_SINCE:
        shown = repr(value if not isinstance(value, timedelta) else str(value))[:60]
        raise InvalidValueError(
            f"since: invalid value {shown}: accepted: a period such as 12h, 1d, 7d, 4w "
            "or 1d12h, or integer seconds (more than 0, at most 52w)"
        )
    return timedelta(seconds=seconds)


IdleRule = Literal["inactivity_duration", "auto", "idle_budget"]
IDLE_ENDS = (TerminationReason.INACTIVITY_DURATION_EXCEEDED, TerminationReason.IDLE_BUDGET_EXCEEDED)


def ended_by(state: EnvState) -> IdleRule | None:
    """The idle rule that ended ``state``, if one did."""
    if state.termination_reason == TerminationReason.IDLE_BUDGET_EXCEEDED:
        return "idle_budget"
    if state.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED:
        return "auto" if state.spec.inactivity_auto is not None else "inactivity_duration"
    return None


class BreakStats(BaseModel):
    count: int = Field(description="Breaks in the period (of every environment).")
    buckets: dict[str, int] = Field(description="How many breaks of each length.")
    p50_seconds: float | None = Field(description="Median break (nearest rank).")
    p90_seconds: float | None = Field(description="90th percentile break (nearest rank).")
    max_seconds: float | None = Field(description="The longest break.")


class EnvironmentReport(BaseModel):
    name: str
    workflow_id: str
    owner: str | None
    backend: str
    status: str
    termination_reason: str | None
    created_at: datetime | None
    ready_at: datetime | None
    ended_at: datetime | None
    inactivity_duration: int | None = Field(description="Idle threshold in force at the end.")
    max_duration: int | None
    price_per_hour: float | None = Field(description="USD; null: unknown.")
    hours_running: float
    hours_in_use: float
    hours_idle_before_termination: float | None = Field(
        description="Ended by inactivity: last idle since -> ended_at. Null otherwise."
    )
    cost: float | None = Field(description="USD: price x hours running; null: price unknown.")
    hours_suspended: float = Field(default=0.0, description="Hours suspended (not running).")
    storage_price_per_hour: float | None = Field(
        default=None, description="USD per hour while suspended; null: unknown."
    )
    storage_cost: float | None = Field(
        default=None, description="USD: storage price x hours suspended; null: unknown."
    )
    suspension_saved: float | None = Field(
        default=None, description="USD: hours suspended x (price - storage price)."
    )
    hours_saved: float | None = Field(
        description="Ended by inactivity: ended_at -> min(created + max_duration, now)."
    )
    saved: float | None = Field(description="USD: price x hours_saved.")
    saved_until: Literal["max_duration", "now"] | None = Field(
        description="What `saved` compares with: running until max_duration (when that came "
        "before now), or until now."
    )
    in_use: list[Interval] = Field(description="The in-use intervals (UTC), whole.")
    breaks_seconds: list[float] = Field(description="Its breaks in the period, in order.")
    wait_before_first_use_seconds: float | None = Field(
        description="ready_at -> first use; null if it was never used."
    )
    idle_at_end_since: datetime | None = Field(
        description="Start of its final idle stretch (to ended_at or now); null if in use."
    )
    history_complete: bool = Field(
        description="False when its oldest events were dropped (over 200): use before the "
        "first kept event is not known."
    )
    hours_saved_with_suggestion: float = Field(
        default=0.0, description="Hours the suggested threshold would have cut (negative: added)."
    )
    ended_by: IdleRule | None = Field(
        default=None,
        description="The idle rule that ended it: inactivity_duration (fixed), auto (learned) "
        "or idle_budget; null when no idle rule did.",
    )
    hours_saved_vs_max: float | None = Field(
        default=None,
        description="Ended by auto: hours its learned threshold cut from its bounds' max.",
    )
    saved_vs_max: float | None = Field(default=None, description="USD: price x hours_saved_vs_max.")


class RuleSaving(BaseModel):
    """What one idle rule saved over the period."""

    environments: int = Field(description="Environments it ended.")
    hours_saved: float = Field(description="Hours saved (as `saved` per environment).")
    saved: float = Field(description="USD, over the environments with a known price.")
    hours_saved_vs_max: float | None = Field(
        default=None, description="auto only: hours its learning cut from the bounds' max."
    )
    saved_vs_max: float | None = Field(default=None, description="auto only: USD of those.")


class Totals(BaseModel):
    environments: int
    hours_running: float
    hours_in_use: float
    hours_idle_before_termination: float
    cost: float = Field(description="USD, over the environments with a known price.")
    hours_suspended: float = 0.0
    storage_cost: float = Field(default=0.0, description="USD of storage while suspended.")
    suspension_saved: float = Field(default=0.0, description="USD suspension saved.")
    hours_saved: float
    saved: float = Field(description="USD, over the environments with a known price.")
    unpriced: int = Field(description="Environments whose price is unknown (not in USD sums).")


class Suggestion(BaseModel):
    threshold_seconds: int | None = Field(
        description="The smallest multiple of 5 minutes longer than every break and every "
        "wait before first use; null when nothing was used in the period."
    )
    longest_break_seconds: float | None
    longest_wait_before_first_use_seconds: float | None
    hours_saved: float = Field(
        description="Hours of final idle stretches it would have cut compared with the "
        "thresholds in force (negative: it is longer than some of them)."
    )
    saved: float = Field(description="USD: those hours x each environment's price.")


class Report(BaseModel):
    since: datetime
    until: datetime
    environments: list[EnvironmentReport]
    total: Totals
    breaks: BreakStats
    suggestion: Suggestion
    by_rule: dict[str, RuleSaving] = Field(
        default_factory=dict,
        description="What each idle rule saved: inactivity_duration, auto, idle_budget "
        "(only the rules that ended something).",
    )
    unanswered: list[str] = Field(
        default_factory=list, description="Environments whose state could not be read."
    )


def _overlap(start: datetime, stop: datetime, since: datetime, until: datetime) -> float:
    """Seconds of [start, stop] inside [since, until]."""
    return max((min(stop, until) - max(start, since)).total_seconds(), 0.0)


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 6)


def usd(price: float | None, seconds: float) -> float | None:
    """USD for ``seconds`` at ``price`` per hour, rounded to cents; None: price unknown."""
    return None if price is None else round(price * seconds / 3600, 2)


def seconds_saved(
    ended: datetime, created: datetime | None, max_duration: int | None, now: datetime
) -> tuple[float, Literal["max_duration", "now"]]:
    """What ending by inactivity at ``ended`` saved, in seconds of running, and what it
    compares with: running until created + max_duration when that came before ``now``,
    else until ``now``. Shared by the report and the Prometheus metrics."""
    until = utc(now)
    saved_until: Literal["max_duration", "now"] = "now"
    if max_duration is not None and created is not None:
        cap = utc(created) + timedelta(seconds=max_duration)
        if cap <= until:
            until, saved_until = cap, "max_duration"
    return max((until - utc(ended)).total_seconds(), 0.0), saved_until


def seconds_suspended(
    state: EnvState, running: float, end: datetime, since: datetime, now: datetime
) -> float:
    """Seconds of the ``running`` ones (inside [since, now]) it spent suspended: the current
    suspension where it lies, earlier ones (a total) up to what is left of ``running``."""
    current = _overlap(utc(state.suspended_at), end, since, now) if state.suspended_at else 0.0
    current = min(current, running)
    return current + min(state.suspended_seconds, running - current)


def environment_report(state: EnvState, since: datetime, now: datetime) -> EnvironmentReport:
    """One environment's figures inside [since, now]."""
    ready = utc(state.ready_at) if state.ready_at else None
    ended = utc(state.ended_at) if state.ended_at else None
    end = ended or now
    price = state.instance.price_per_hour if state.instance is not None else None
    idle_ended = state.termination_reason in IDLE_ENDS
    intervals = in_use_intervals(state.events, end) if ready else []
    tail_start: datetime | None = None
    if ready is not None and (not intervals or intervals[-1][1] < end):
        tail_start = intervals[-1][1] if intervals else ready
        exact = utc(state.idle_since) if state.idle_since is not None else None
        if exact is not None and exact <= end:
            # The state's idle clock is exact (events have whole seconds): it ends the
            # last use, unless it is older than that use (then it is stale).
            if intervals and intervals[-1][0] <= exact:
                intervals[-1] = (intervals[-1][0], exact)
                tail_start = exact
            elif not intervals:
                tail_start = max(ready, exact)
    running = _overlap(ready, end, since, now) if ready else 0.0
    suspended = seconds_suspended(state, running, end, since, now)
    running -= suspended
    storage_price = state.instance.storage_price_per_hour if state.instance is not None else None
    storage_cost, suspension_saved = suspension_costs(price, storage_price, suspended)
    in_use = sum(_overlap(a, b, since, now) for a, b in intervals)
    breaks = [
        (b[0] - a[1]).total_seconds()
        for a, b in itertools.pairwise(intervals)
        if b[0] > a[1] and b[0] > since
    ]
    idle_before = None
    hours_saved = saved = None
    saved_until: Literal["max_duration", "now"] | None = None
    if idle_ended and ended is not None:
        idle_before = _hours(_overlap(tail_start or ended, ended, since, now))
        seconds, saved_until = seconds_saved(ended, state.created_at, state.spec.max_duration, now)
        hours_saved, saved = _hours(seconds), usd(price, seconds)
    first = state.events[0].message if state.events else ""
    rule = ended_by(state)
    vs_max_hours = vs_max = None
    bounds, threshold = state.spec.inactivity_auto, state.spec.inactivity_duration
    if rule == "auto" and bounds is not None and threshold is not None and ended is not None:
        would = min(ended + timedelta(seconds=bounds.max - threshold), now)
        seconds = _overlap(ended, would, since, now)
        vs_max_hours, vs_max = _hours(seconds), usd(price, seconds)
    return EnvironmentReport(
        name=state.spec.name,
        workflow_id=state.workflow_id,
        owner=state.spec.owner,
        backend=state.spec.backend,
        status=state.status.value,
        termination_reason=state.termination_reason,
        created_at=state.created_at,
        ready_at=state.ready_at,
        ended_at=state.ended_at,
        inactivity_duration=state.spec.inactivity_duration,
        max_duration=state.spec.max_duration,
        price_per_hour=price,
        hours_running=_hours(running),
        hours_in_use=_hours(in_use),
        hours_idle_before_termination=idle_before,
        cost=usd(price, running),
        hours_suspended=_hours(suspended),
        storage_price_per_hour=storage_price,
        storage_cost=storage_cost,
        suspension_saved=suspension_saved,
        hours_saved=hours_saved,
        saved=saved,
        saved_until=saved_until,
        in_use=intervals,
        breaks_seconds=breaks,
        wait_before_first_use_seconds=(
            (intervals[0][0] - ready).total_seconds() if ready and intervals else None
        ),
        idle_at_end_since=tail_start,
        history_complete=first.startswith("environment "),
        ended_by=rule,
        hours_saved_vs_max=vs_max_hours,
        saved_vs_max=vs_max,
    )


def suggested_threshold(longest: float | None) -> int | None:
    """The smallest multiple of 5 minutes strictly longer than ``longest`` seconds."""
    if longest is None:
        return None
    return (math.floor(max(longest, 0.0) / STEP) + 1) * STEP


def seconds_cut(env: EnvironmentReport, threshold: int, since: datetime, now: datetime) -> float:
    """Seconds of the period that ``threshold`` would have cut from ``env``'s final idle
    stretch (negative: added, for an environment ended by a shorter threshold)."""
    if env.ready_at is None or env.idle_at_end_since is None:
        return 0.0
    ready = utc(env.ready_at)
    end = utc(env.ended_at) if env.ended_at else now
    would_end = utc(env.idle_at_end_since) + timedelta(seconds=threshold)
    if env.termination_reason in IDLE_ENDS:
        if env.max_duration is not None and env.created_at is not None:
            would_end = min(would_end, utc(env.created_at) + timedelta(seconds=env.max_duration))
        would_end = min(would_end, now)
    elif would_end >= end:
        return 0.0
    return _overlap(ready, end, since, now) - _overlap(ready, would_end, since, now)


def nearest_rank(ordered: Sequence[float], fraction: float) -> float | None:
    if not ordered:
        return None
    return ordered[max(math.ceil(fraction * len(ordered)) - 1, 0)]


def by_rule(envs: Sequence[EnvironmentReport]) -> dict[str, RuleSaving]:
    """What each idle rule saved: the environments it ended, grouped."""
    rules: dict[str, RuleSaving] = {}
    for env in envs:
        if env.ended_by is None:
            continue
        got = rules.setdefault(env.ended_by, RuleSaving(environments=0, hours_saved=0.0, saved=0.0))
        got.environments += 1
        got.hours_saved = round(got.hours_saved + (env.hours_saved or 0.0), 6)
        got.saved = round(got.saved + (env.saved or 0.0), 2)
        if env.ended_by == "auto":
            got.hours_saved_vs_max = round(
                (got.hours_saved_vs_max or 0.0) + (env.hours_saved_vs_max or 0.0), 6
            )
            got.saved_vs_max = round((got.saved_vs_max or 0.0) + (env.saved_vs_max or 0.0), 2)
    return rules


def break_stats(breaks: Sequence[float]) -> BreakStats:
    ordered = sorted(breaks)
    buckets = dict.fromkeys((label for label, _ in BUCKETS), 0)
    for seconds in ordered:
        label = next(label for label, bound in BUCKETS if seconds < bound)
        buckets[label] += 1
    return BreakStats(
        count=len(ordered),
        buckets=buckets,
        p50_seconds=nearest_rank(ordered, 0.5),
        p90_seconds=nearest_rank(ordered, 0.9),
        max_seconds=ordered[-1] if ordered else None,
    )


def build_report(
    states: Sequence[EnvState],
    since: datetime,
    now: datetime,
    unanswered: Sequence[str] = (),
) -> Report:
    """The report over [since, now] of the environments alive at some time in it."""
    since, now = utc(since), utc(now)
    envs = [
        environment_report(s, since, now)
        for s in states
        if (s.created_at is None or utc(s.created_at) <= now)
        and (s.ended_at is None or utc(s.ended_at) >= since)
    ]
    envs.sort(key=lambda e: (e.ready_at or e.created_at or now, e.name))
    breaks = [seconds for env in envs for seconds in env.breaks_seconds]
    waits = [
        env.wait_before_first_use_seconds
        for env in envs
        if env.wait_before_first_use_seconds is not None
    ]
    used = any(env.in_use for env in envs)
    longest_break = max(breaks, default=None)
    longest_wait = max(waits, default=None)
    threshold = suggested_threshold(max([*breaks, *waits], default=0.0)) if used else None
    suggestion_saved = 0.0
    suggestion_hours = 0.0
    if threshold is not None:
        for env in envs:
            cut = seconds_cut(env, threshold, since, now)
            env.hours_saved_with_suggestion = _hours(cut)
            suggestion_hours += cut
            suggestion_saved += (env.price_per_hour or 0.0) * cut / 3600
    priced = [env for env in envs if env.price_per_hour is not None]
    total = Totals(
        environments=len(envs),
        hours_running=round(sum(e.hours_running for e in envs), 6),
        hours_in_use=round(sum(e.hours_in_use for e in envs), 6),
        hours_idle_before_termination=round(
            sum(e.hours_idle_before_termination or 0.0 for e in envs), 6
        ),
        cost=round(sum(e.cost or 0.0 for e in priced), 2),
        hours_suspended=round(sum(e.hours_suspended for e in envs), 6),
        storage_cost=round(sum(e.storage_cost or 0.0 for e in envs), 2),
        suspension_saved=round(sum(e.suspension_saved or 0.0 for e in priced), 2),
        hours_saved=round(sum(e.hours_saved or 0.0 for e in envs), 6),
        saved=round(sum(e.saved or 0.0 for e in priced), 2),
        unpriced=len(envs) - len(priced),
    )
    return Report(
        by_rule=by_rule(envs),
        since=since,
        until=now,
        environments=envs,
        total=total,
        breaks=break_stats(breaks),
        suggestion=Suggestion(
            threshold_seconds=threshold,
            longest_break_seconds=longest_break,
            longest_wait_before_first_use_seconds=longest_wait,
            hours_saved=_hours(suggestion_hours),
            saved=round(suggestion_saved, 2),
        ),
        unanswered=list(unanswered),
    )


async def fetch_report(
    client: TemporalClient, since: timedelta, now: datetime | None = None
) -> Report:
    """List the environments alive in the period (running, or closed since its start),
    read each one's whole state (bounded concurrency) and compute the report."""
    from temporalio.client import WorkflowExecutionStatus

    from devenv.client.listing import LIST_PAGE_SIZE
    from devenv.client.lookup import Handle, fetch_state
    from devenv.models.state import WORKFLOW_TYPE

    now = utc(now or datetime.now(UTC))
    start = now - since
    query = (
        f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus!="ContinuedAsNew" AND '
        f'(ExecutionStatus="Running" OR CloseTime>="{start.isoformat()}")'
    )
    handles: list[Handle] = []
    async for execution in client.list_workflows(query, page_size=LIST_PAGE_SIZE):
        running = execution.status == WorkflowExecutionStatus.RUNNING
        handles.append(
            client.get_workflow_handle(
                execution.id,
                run_id=None if running else execution.run_id,
                result_type=EnvState,
            )
        )
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def one(handle: Handle) -> EnvState:
        async with gate:
            return await fetch_state(handle)

    results = await asyncio.gather(*(one(h) for h in handles), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancellation and the like are not "did not answer"
    states = [r for r in results if isinstance(r, EnvState)]
    silent = [h.id for h, r in zip(handles, results, strict=True) if not isinstance(r, EnvState)]
    return build_report(states, start, now, silent)
