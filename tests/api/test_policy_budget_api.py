"""Idle budgets over HTTP and the remote CLI, on a real server: once alice's idle spend of
the week passes her budget, her running environment's idle threshold tightens to the
floor (its events say why), ``policy show`` says her spend against the budget, and a
budget that is not an amount is refused in one line, changing nothing."""

from __future__ import annotations

import time
from typing import Any

from tests.api.conftest import Api

NAME = "pol-budget"


def _until(check: Any, timeout: float = 60.0) -> Any:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if found := check():
            return found
        time.sleep(0.2)
    raise AssertionError("never happened")


def test_a_spent_idle_budget_tightens_the_users_running_environment(api: Api) -> None:
    # $36,000/hour: idle for a second costs $10, past a $1 budget at the first check.
    api.start("alice", NAME, backend="local", inactivity_duration="2h", price_per_hour=36000)
    with api.client("admin") as admin, api.client("alice") as alice:
        try:
            answer = admin.put(
                "/policy",
                json={"user": "alice", "idle_budget_weekly": "$1", "floor_inactivity": "15m"},
            )
            assert answer.status_code == 200, answer.text
            row = _until(
                lambda: (
                    (r := alice.get(f"/environments/{NAME}").json())["inactivity_duration"] == 900
                    and r
                )
            )
            events = alice.get(f"/environments/{NAME}/events").json()
            mine = alice.get("/policy").json()
            shown = api.remote("alice", "policy", "show").stdout
        finally:
            admin.delete("/policy", params={"user": "alice"})
            alice.delete(f"/environments/{NAME}", params={"wait": "true"})
    assert row["status"] == "running"
    words = [event["message"] for event in events]
    assert any(
        w.startswith(
            "inactivity threshold lowered from 2h to 15m by policy (idle budget $1/week spent: $"
        )
        for w in words
    ), words
    assert mine["policies"]["over_budget"]["alice"] > 1
    assert mine["idle"]["spends"]["alice"] > 1
    assert "user alice: idle-budget-weekly $1, floor-inactivity 15m" in shown
    assert "  alice: $" in shown and "of $1 (over: idle thresholds at most 15m)" in shown


def test_a_budget_that_is_not_an_amount_is_refused_in_one_line(api: Api) -> None:
    with api.client("admin") as http:
        before = http.get("/policy").json()
        answer = http.put("/policy", json={"idle_budget_weekly": "lots", "floor_inactivity": "1h"})
        without_floor = http.put("/policy", json={"idle_budget_weekly": 50})
        after = http.get("/policy").json()
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "idle-budget-weekly: 'lots' is not an amount; accepted: an amount in USD above 0 "
        "such as 50, $50 or 12.50, or off"
    )
    assert without_floor.status_code == 422
    assert without_floor.json()["error"].startswith(
        "--idle-budget-weekly: needs --floor-inactivity"
    )
    assert after == before
    refused = api.remote(
        "admin",
        "policy",
        "set",
        "--idle-budget-weekly",
        "-3",
        "--floor-inactivity",
        "1h",
        check=False,
    )
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "error: idle-budget-weekly: '-3' is out of range; accepted: an amount in USD above 0 "
        "such as 50, $50 or 12.50, or off"
    ]
