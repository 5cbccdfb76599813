"""What ``inactivity_duration: auto`` would have saved against a fixed 2h, over a month.

A synthetic month of working days for a few kinds of user (seeded, so every run prints
the same figures), preceded by 14 days of the same habits: the owner's history the
``owner_breaks`` activity reads. Each day is one environment, written in the report's
own data model (``EnvState`` with the workflow's presence events, read back with
``devenv.models.usage.breaks_of``, as the activity reads them), ended by its idle rule:

* fixed 2h: the final idle stretch costs 2h; a break of 2h or more ends it under the user.
* auto: the workflow's rule (``devenv.models.auto_threshold``): each environment starts
  at the bounds' max and moves after every break; a break at least as long as the
  threshold in force when it began is a false kill (the environment ends under its
  user, who starts a new one at the max).

The costs come from ``devenv report``'s own computation (``build_report``) over both
months, so "saved" is what the report would show. Users whose breaks follow their history
must have 0 false kills; ``habit-change`` (lunches start in week 3, never seen before)
shows the rule's limit: the margin covers what was seen, not what was not.

    python -m benchmarks.auto_threshold [--price 3] [--seed 7] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from devenv.client.report import build_report
from devenv.models.auto_threshold import Break, choose, kept
from devenv.models.config import DEFAULT_AUTO_MAX, DEFAULT_AUTO_MIN, InactivityBounds
from devenv.models.durations import format_duration
from devenv.models.state import (
    EnvEvent,
    EnvSpec,
    EnvState,
    InstanceInfo,
    Status,
    TerminationReason,
)
from devenv.models.usage import breaks_of

FIXED = 2 * 3600
MONTH_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
HISTORY_DAYS = 14
MONTH_DAYS = 30
M = 60

Habit = Callable[[random.Random, int], list[int]]
"""A user's breaks on a day (seconds, in order), given the day's index (negative: history)."""


def coffee(rng: random.Random, day: int) -> list[int]:
    return [rng.randint(3 * M, 12 * M) for _ in range(rng.randint(2, 4))]


def lunch(rng: random.Random, day: int) -> list[int]:
    return [rng.randint(5 * M, 10 * M), rng.randint(35 * M, 55 * M), rng.randint(5 * M, 10 * M)]


def meetings(rng: random.Random, day: int) -> list[int]:
    away = [rng.randint(60 * M, 90 * M)] if day % 7 in (1, 3) else []
    return [rng.randint(4 * M, 9 * M), *away, rng.randint(4 * M, 9 * M)]


def no_breaks(rng: random.Random, day: int) -> list[int]:
    return []


def habit_change(rng: random.Random, day: int) -> list[int]:
    """Coffee only, until lunches begin in the month's third week."""
    late = [rng.randint(45 * M, 60 * M)] if day >= 14 else []
    return [rng.randint(3 * M, 8 * M), *late, rng.randint(3 * M, 8 * M)]


USERS: dict[str, tuple[Habit, bool]] = {
    "coffee": (coffee, True),
    "lunch": (lunch, True),
    "meetings": (meetings, True),
    "no-breaks": (no_breaks, True),
    "habit-change": (habit_change, False),
}
"""Each user's habit, and whether their breaks follow their history."""


def workday(when: datetime) -> bool:
    return when.weekday() < 5


def clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


@dataclass
class Day:
    """One environment: when it was ready, the in-use stretches, and who it belongs to."""

    owner: str
    ready: datetime
    uses: list[tuple[datetime, datetime]]


def simulate_day(owner: str, date: datetime, breaks: list[int], rng: random.Random) -> Day:
    """Work from about 9:00, a break between work stretches of 1-2h, until about 17:30."""
    ready = date + timedelta(hours=9, minutes=rng.randint(0, 30))
    start = ready + timedelta(minutes=rng.randint(1, 5))
    uses = []
    for seconds in [*breaks, None]:
        stop = start + timedelta(minutes=rng.randint(60, 120))
        uses.append((start, stop))
        if seconds is not None:
            start = stop + timedelta(seconds=seconds)
    return Day(owner, ready, uses)


def events(name: str, day: Day) -> list[EnvEvent]:
    """The presence events the workflow writes for the day's uses."""
    out = [EnvEvent(at=day.ready, message=f"environment {name!r} created")]
    for begin, end in day.uses:
        out.append(EnvEvent(at=begin, message="user connected (1 connection)"))
        out.append(EnvEvent(at=end, message=f"last user disconnected; idle since {clock(end)}"))
    return out


def state(name: str, day: Day, threshold: int, price: float, auto: bool) -> EnvState:
    """The environment as it ended: ``threshold`` after its last user left."""
    last = day.uses[-1][1]
    return EnvState(
        spec=EnvSpec(
            name=name,
            owner=day.owner,
            user_public_key="ssh-ed25519 AAAA",
            inactivity_duration=threshold,
            inactivity_auto=(
                InactivityBounds(min=DEFAULT_AUTO_MIN, max=DEFAULT_AUTO_MAX) if auto else None
            ),
        ),
        instance=InstanceInfo(
            instance_id=name,
            backend="local",
            host="-",
            port=22,
            username="-",
            host_public_key="-",
            task_queue="-",
            price_per_hour=price,
        ),
        status=Status.TERMINATED,
        termination_reason=TerminationReason.INACTIVITY_DURATION_EXCEEDED,
        created_at=day.ready,
        ready_at=day.ready,
        idle_since=last,
        ended_at=last + timedelta(seconds=threshold),
        events=events(name, day),
    )


def run_user(user: str, habit: Habit, price: float, seed: int) -> dict[str, Any]:
    rng = random.Random(f"{seed}-{user}")
    days: list[tuple[int, Day]] = []
    for index in range(-HISTORY_DAYS, MONTH_DAYS):
        date = MONTH_START + timedelta(days=index)
        if workday(date):
            days.append((index, simulate_day(user, date, habit(rng, index), rng)))
    history: list[Break] = []  # the owner's breaks read back from their environments
    auto_states, fixed_states = [], []
    fixed_kills = auto_kills = breaks_seen = 0
    low, high = DEFAULT_AUTO_MIN, DEFAULT_AUTO_MAX
    thresholds: list[int] = []
    for index, day in days:
        name = f"{user}-{index + HISTORY_DAYS:02d}"
        if index >= 0:
            threshold = high  # every environment starts at the max
            today: list[Break] = []
            for (_, left), (back, _) in itertools.pairwise(day.uses):
                seconds = (back - left).total_seconds()
                breaks_seen += 1
                fixed_kills += seconds >= FIXED
                if seconds >= threshold:
                    auto_kills += 1
                    threshold, today = high, []  # the user starts a new environment
                    continue
                today.append(Break(ended=back, seconds=seconds))
                threshold = choose([*history, *today], low, high, back).seconds
            thresholds.append(threshold)
            auto_states.append(state(name, day, threshold, price, auto=True))
            fixed_states.append(state(name, day, FIXED, price, auto=False))
        # What the next environment's owner_breaks reads: this one's breaks, by the
        # report's model.
        ended = state(name, day, FIXED, price, auto=False)
        end = ended.ended_at or day.ready
        history = kept([*history, *breaks_of(ended, day.ready, end)], end)
    since = MONTH_START - timedelta(days=1)
    until = MONTH_START + timedelta(days=MONTH_DAYS + 1)
    fixed = build_report(fixed_states, since, until)
    auto = build_report(auto_states, since, until)
    return {
        "user": user,
        "follows_history": USERS[user][1],
        "days": len(auto_states),
        "breaks": breaks_seen,
        "longest_break": format_duration(max(fixed.breaks.max_seconds or 0, 0)),
        "fixed_2h_idle_hours": fixed.total.hours_idle_before_termination,
        "auto_idle_hours": auto.total.hours_idle_before_termination,
        "fixed_2h_cost": fixed.total.cost,
        "auto_cost": auto.total.cost,
        "saved": round(fixed.total.cost - auto.total.cost, 2),
        "saved_hours": round(
            fixed.total.hours_idle_before_termination - auto.total.hours_idle_before_termination,
            2,
        ),
        "auto_threshold_median": format_duration(sorted(thresholds)[len(thresholds) // 2]),
        "false_kills_auto": auto_kills,
        "false_kills_fixed_2h": fixed_kills,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--price", type=float, default=3.0, help="USD per hour (default 3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [run_user(user, habit, args.price, args.seed) for user, (habit, _) in USERS.items()]
    following = [r for r in rows if r["follows_history"]]
    summary = {
        "price_per_hour": args.price,
        "month_days": MONTH_DAYS,
        "history_days": HISTORY_DAYS,
        "bounds": [format_duration(DEFAULT_AUTO_MIN), format_duration(DEFAULT_AUTO_MAX)],
        "users": rows,
        "saved_following_history": round(sum(r["saved"] for r in following), 2),
        "false_kills_following_history": sum(r["false_kills_auto"] for r in following),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    head = ("user", "days", "breaks", "longest", "auto median", "idle h 2h/auto", "saved", "kills")
    print("  ".join(f"{h:>14}" for h in head))
    for r in rows:
        cells = (
            r["user"],
            r["days"],
            r["breaks"],
            r["longest_break"],
            r["auto_threshold_median"],
            f"{r['fixed_2h_idle_hours']:.1f}/{r['auto_idle_hours']:.1f}",
            f"${r['saved']:.2f}",
            f"{r['false_kills_auto']} (2h: {r['false_kills_fixed_2h']})",
        )
        print("  ".join(f"{c!s:>14}" for c in cells))
    print(
        f"users following their history: saved ${summary['saved_following_history']:.2f} "
        f"at ${args.price}/h, false kills {summary['false_kills_following_history']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
