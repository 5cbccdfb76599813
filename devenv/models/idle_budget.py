"""``idle_budget``: an idle stretch may cost this many dollars, then the environment ends.

Pure functions of the state. The deadline is ``idle_since + budget / price`` hours: 4
minutes of a $30/h box for $2, 20 hours of a $0.10/h one. No price (or a free one): the
budget never runs out, and ``ps -v`` says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from devenv.models.durations import format_duration
from devenv.models.money import format_usd
from devenv.models.state import EnvSpec, EnvState, InstanceInfo

MAX_BUDGET_SECONDS = 365 * 86_400
"""A budget that lasts longer than a year at its price does not end anything."""


def priced(instance: InstanceInfo, spec: EnvSpec) -> InstanceInfo:
    """The instance with the configuration's ``price_per_hour``, where one is set: it
    overrides the backend's own setting and the shipped price table."""
    if spec.price_per_hour is None:
        return instance
    return instance.model_copy(update={"price_per_hour": spec.price_per_hour})


def price(s: EnvState) -> float | None:
    """USD per hour: the instance's (configured price applied), else the spec's."""
    if s.instance is not None and s.instance.price_per_hour is not None:
        return s.instance.price_per_hour
    return s.spec.price_per_hour


def budget_seconds(s: EnvState) -> int | None:
    """How long an idle stretch may last on the budget; None: no budget, or no price."""
    rate = price(s)
    if s.spec.idle_budget is None or rate is None or rate <= 0:
        return None
    seconds = round(s.spec.idle_budget / rate * 3600)
    return seconds if seconds <= MAX_BUDGET_SECONDS else None


def budget_end(s: EnvState) -> datetime | None:
    """When the current idle stretch will have cost the budget (idle clock running)."""
    seconds = budget_seconds(s)
    if seconds is None or s.idle_since is None:
        return None
    return s.idle_since + timedelta(seconds=seconds)


def budget_words(s: EnvState) -> str:
    """``idle budget $2 at $30/h (4m)``: the rule as ``ps -v`` and the events say it."""
    budget = s.spec.idle_budget
    if budget is None:
        return "no idle budget"
    rate = price(s)
    if rate is None or rate <= 0:
        shown = "no price" if rate is None else "a free price"
        return f"idle budget {format_usd(budget)} (never spent: {shown})"
    return (
        f"idle budget {format_usd(budget)} at {format_usd(rate)}/h "
        f"({format_duration(budget_seconds(s))})"
    )
