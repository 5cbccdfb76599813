"""A user's idle spend of the week: the arithmetic over memo rows, the week's start
(Monday 00:00 UTC or in the policy's zone), and the budget's tightening of the bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devenv.client.policy import usd_amount
from devenv.errors import InvalidValueError
from devenv.models.idle_spend import SpendRow, idle_usd, over_budget, week_start
from devenv.models.policy import Policy, PolicyChange, PolicyRefusal, PolicySet

H = 3600
NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # a Wednesday
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)


def test_the_week_starts_monday_midnight_utc_or_in_the_policys_zone() -> None:
    assert week_start(NOW, None) == MONDAY
    assert week_start(MONDAY, None) == MONDAY  # Monday 00:00 is the new week
    assert week_start(MONDAY - timedelta(seconds=1), None) == MONDAY - timedelta(days=7)
    berlin = week_start(datetime(2026, 12, 6, 23, 30, tzinfo=UTC), "Europe/Berlin")
    assert berlin.astimezone(UTC) == datetime(2026, 12, 6, 23, 0, tzinfo=UTC)  # Mon 00:00 CET


def test_a_running_idle_environment_counts_its_idle_stretch_within_the_week() -> None:
    row = SpendRow(status="running", idle_since=NOW - timedelta(hours=2), price_per_hour=3.0)
    assert idle_usd(row, MONDAY, NOW) == pytest.approx(6.0)
    before_monday = row.model_copy(update={"idle_since": MONDAY - timedelta(hours=5)})
    assert idle_usd(before_monday, MONDAY, NOW) == pytest.approx(3.0 * 60)  # 60 h this week
    in_use = SpendRow(status="running", price_per_hour=3.0)
    assert idle_usd(in_use, MONDAY, NOW) == 0.0
    free = SpendRow(status="running", idle_since=NOW - timedelta(hours=2))
    assert idle_usd(free, MONDAY, NOW) == 0.0


def test_a_closed_environment_counts_its_final_idle_stretch_if_inactivity_ended_it() -> None:
    ended = NOW - timedelta(hours=1)
    row = SpendRow(
        status="terminated",
        price_per_hour=2.0,
        inactivity_duration=2 * H,
        termination_reason="inactivity_duration_exceeded",
        billed_from=ended - timedelta(hours=10),
        billed_until=ended,
    )
    assert idle_usd(row, MONDAY, NOW) == pytest.approx(4.0)
    short = row.model_copy(update={"billed_from": ended - timedelta(minutes=30)})
    assert idle_usd(short, MONDAY, NOW) == pytest.approx(1.0)  # at most its billed time
    straddling = row.model_copy(
        update={
            "billed_from": MONDAY - timedelta(hours=9),
            "billed_until": MONDAY + timedelta(hours=1),
        }
    )
    assert idle_usd(straddling, MONDAY, NOW) == pytest.approx(2.0)  # last week's hour out
    stopped = row.model_copy(update={"termination_reason": "stopped_by_user"})
    assert idle_usd(stopped, MONDAY, NOW) == 0.0


def test_over_budget_keeps_the_spend_found_when_the_budget_was_first_passed() -> None:
    budgets = {"alice": 50.0, "bob": 50.0}
    first = over_budget({"alice": 51.2, "bob": 10.0, "carol": 99.0}, budgets, {})
    assert first == {"alice": 51.2}
    assert over_budget({"alice": 60.0}, budgets, first) == {"alice": 51.2}
    assert over_budget({"alice": 0.0}, budgets, first) == {}  # a new week


def budgeted() -> PolicySet:
    change = PolicyChange(
        keys={"max_inactivity": 8 * H, "idle_budget_weekly": 50.0, "floor_inactivity": 900}
    )
    return change.applied_to(PolicySet())


def test_a_spent_budget_tightens_the_effective_max_inactivity_to_the_floor() -> None:
    policies = budgeted()
    policies.over_budget = {"alice": 51.2}
    alice, bob = policies.effective("alice"), policies.effective("bob")
    assert alice.max_inactivity == 900 and alice.budget_spent == 51.2
    assert alice.budget_words() == "idle budget $50/week spent: $51.20"
    assert "floor-inactivity 15m (idle budget $50/week spent: $51.20" in alice.bound_words(
        "max_inactivity"
    )
    assert bob.max_inactivity == 8 * H and bob.budget_spent is None
    assert policies.everyone.words() == (
        "max-inactivity 8h, idle-budget-weekly $50, floor-inactivity 15m"
    )


def test_a_budget_needs_a_floor_and_clearing_it_ends_the_tightening() -> None:
    with pytest.raises(PolicyRefusal, match="--idle-budget-weekly: needs --floor-inactivity"):
        PolicyChange(keys={"idle_budget_weekly": 50.0}).applied_to(PolicySet())
    policies = budgeted()
    policies.over_budget = {"alice": 51.2}
    cleared = PolicyChange(keys={"idle_budget_weekly": None}).applied_to(policies)
    assert cleared.over_budget == {}
    assert Policy(idle_budget_weekly=12.5).words() == "idle-budget-weekly $12.50"


@pytest.mark.parametrize(("given", "amount"), [("50", 50.0), ("$50", 50.0), (" $12.50", 12.5)])
def test_budget_amounts_as_admins_write_them(given: str, amount: float) -> None:
    assert usd_amount("idle-budget-weekly", given) == amount
    assert usd_amount("idle-budget-weekly", "off") is None


@pytest.mark.parametrize("given", ["lots", "-5", "0", "nan", "$", True, "1e9"])
def test_garbage_budgets_are_refused_naming_the_key(given: object) -> None:
    with pytest.raises(InvalidValueError, match=r"^idle-budget-weekly: .*accepted: an amount"):
        usd_amount("idle-budget-weekly", given)
