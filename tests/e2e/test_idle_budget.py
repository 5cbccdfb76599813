"""``idle_budget`` as a user meets it on the local backend: the real CLI, server and ssh."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e


def test_an_idle_budget_ends_the_environment_at_the_money_deadline(
    devenv: Devenv, tmp_path: Path
) -> None:
    """$12 of idleness at $3600/h (a workstation priced by the team, local has no price of
    its own) is 12 s after the last user leaves; the inactivity rule (1h) would be later.
    ``ps -v`` says the budget holds; the end names it."""
    config = tmp_path / "budget.yml"
    config.write_text(
        "type: dev-environment\nname: e2e-budget\n"
        "inactivity_duration: 1h\nprice_per_hour: 3600\nidle_budget: $12\n"
    )
    devenv.run("start", str(config))
    row = devenv.ps("e2e-budget")
    assert row["price_per_hour"] == 3600
    session = devenv.ssh("e2e-budget", "sleep 3; echo worked")
    assert (session.returncode, session.stdout) == (0, "worked\n"), session.stderr
    idle = wait_for(
        lambda: (r := devenv.ps("e2e-budget"))["connections"] == 0 and r["idle_since"] and r,
        15,
        "the user gone",
    )
    idle_since = datetime.fromisoformat(idle["idle_since"])
    assert (datetime.fromisoformat(idle["deadline"]) - idle_since).total_seconds() == 12
    verbose = devenv.run("ps", "e2e-budget", "-v").stdout
    assert "idle budget $12 at $3600/h (12s)" in verbose
    assert "(idle_budget)" in verbose and "(holds now)" in verbose
    ended = wait_for(
        lambda: (r := devenv.ps("e2e-budget"))["status"] == "terminated" and r, 30, "the end"
    )
    assert ended["termination_reason"] == "idle_budget_exceeded"
    ran_idle = (datetime.fromisoformat(ended["billed_until"]) - idle_since).total_seconds()
    assert 12 <= ran_idle < 30, ran_idle
    logs = devenv.run("logs", "e2e-budget").stdout
    assert "idle budget $12 at $3600/h (12s) spent (idle since" in logs


def test_auto_learns_from_real_ssh_breaks(devenv: Devenv, tmp_path: Path) -> None:
    """``--inactivity auto`` (over the file's 2h): four ssh sessions, three breaks between
    them; the threshold leaves the max (4h) for the bounds' min (15m) once 3 breaks are
    known, with the event saying why, and ``ps -v`` shows the rule."""
    config = tmp_path / "auto.yml"
    config.write_text("type: dev-environment\nname: e2e-auto\ninactivity_duration: 2h\n")
    devenv.run("start", str(config), "--inactivity", "auto")
    assert devenv.ps("e2e-auto")["inactivity_duration"] == 4 * 3600
    for _ in range(4):
        assert devenv.ssh("e2e-auto", "true").returncode == 0
        wait_for(lambda: devenv.ps("e2e-auto")["activity"] == "idle", 15, "the user gone")
    logs = wait_for(
        lambda: (
            "auto: inactivity 4h -> 15m" in (text := devenv.run("logs", "e2e-auto").stdout) and text
        ),
        15,
        "the learned threshold",
    )
    # Other tests' environments of the same owner may add their breaks: at least these 3.
    assert "auto: inactivity 4h -> 15m (longest of " in logs
    verbose = devenv.run("ps", "e2e-auto", "-v").stdout
    assert "inactivity_duration: auto within 15m..4h, now 15m (longest of " in verbose
    row = devenv.ps("e2e-auto")
    assert (row["inactivity_duration"], row["inactivity_auto"]) == (15 * 60, True)
    table = devenv.run("ps").stdout
    assert any("e2e-auto" in line and "auto 15m" in line for line in table.splitlines())
    devenv.run("stop", "e2e-auto", "--wait")
