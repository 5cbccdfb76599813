"""`devenv report`'s savings per idle rule: fixed inactivity, auto, idle_budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from devenv.cli.report import render
from devenv.client.report import build_report
from devenv.models.config import InactivityBounds
from devenv.models.state import (
    EnvEvent,
    EnvSpec,
    EnvState,
    InstanceInfo,
    Status,
    TerminationReason,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=12)
H = timedelta(hours=1)


def ended(
    name: str,
    reason: TerminationReason,
    *,
    used_until: timedelta,
    idle: timedelta,
    auto: InactivityBounds | None = None,
    threshold: int | None = None,
    budget: float | None = None,
) -> EnvState:
    """Used from ready for ``used_until``, then idle for ``idle``, then ended by ``reason``."""
    ready = T0
    left = ready + used_until
    end = left + idle
    spec = EnvSpec(
        name=name,
        user_public_key="ssh-ed25519 AAAA",
        inactivity_duration=threshold,
        inactivity_auto=auto,
        idle_budget=budget,
    )
    instance = InstanceInfo(
        instance_id=name,
        backend="local",
        host="h",
        port=22,
        username="u",
        host_public_key="k",
        task_queue="q",
        price_per_hour=2.0,
    )
    events = [
        EnvEvent(at=T0, message=f"environment {name!r} created"),
        EnvEvent(at=ready, message="user connected (1 connection)"),
        EnvEvent(at=left, message=f"last user disconnected; idle since {left:%H:%M:%S}Z"),
    ]
    return EnvState(
        spec=spec,
        instance=instance,
        status=Status.TERMINATED,
        termination_reason=reason,
        created_at=T0,
        ready_at=ready,
        idle_since=left,
        ended_at=end,
        events=events,
    )


def test_each_rule_says_what_it_saved() -> None:
    inactivity = TerminationReason.INACTIVITY_DURATION_EXCEEDED
    states = [
        ended("fixed", inactivity, used_until=H, idle=2 * H, threshold=7200),
        ended(
            "learned",
            inactivity,
            used_until=6 * H,
            idle=timedelta(minutes=15),
            threshold=900,
            auto=InactivityBounds(min=900, max=4 * 3600),
        ),
        ended(
            "budgeted",
            TerminationReason.IDLE_BUDGET_EXCEEDED,
            used_until=8 * H,
            idle=H,
            budget=2.0,
        ),
    ]
    result = build_report(states, T0 - H, NOW)
    rules = result.by_rule
    assert set(rules) == {"inactivity_duration", "auto", "idle_budget"}
    # Saved: price ($2/h) x (now 21:00 - ended): fixed ended at 12:00, learned at 15:15.
    assert (rules["inactivity_duration"].environments, rules["inactivity_duration"].saved) == (
        1,
        18.0,
    )
    assert rules["auto"].saved == 11.5
    # Learning cut the 4h max to 15m: 3h45m of it.
    assert rules["auto"].hours_saved_vs_max == 3.75
    assert rules["auto"].saved_vs_max == 7.5
    assert rules["idle_budget"].hours_saved == 3.0 and rules["idle_budget"].saved == 6.0
    [learned] = [e for e in result.environments if e.name == "learned"]
    assert learned.ended_by == "auto"
    console = Console(width=200, record=True)
    for part in render(result):
        console.print(part)
    text = console.export_text()
    assert "Saved by rule" in text
    assert "auto: $11.50 (5h45m), 1 environment ended; learning cut 3h45m ($7.50) from its max" in (
        text
    )
    assert "idle_budget: $6.00 (3h), 1 environment ended" in text
    table = text.split("Saved by rule")[0]
    ended_by = {row.split()[0]: row.split()[2] for row in table.splitlines()[2:] if row.strip()}
    assert ended_by["learned"] == "auto" and ended_by["budgeted"] == "idle_budget"
    assert ended_by["fixed"] == "inactivity"
