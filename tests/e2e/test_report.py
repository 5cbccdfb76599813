"""`devenv report` on the real stack: two sessions with a break, then idle termination."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e

NAME = "e2e-report"
THRESHOLD = 5


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def use_once(devenv: Devenv, token: str) -> None:
    """One interactive session: open it, see it counted, close it, see it gone."""
    session = devenv.open_session(NAME)
    session.send(f"echo {token}-$((6*7))\n")
    session.expect(f"{token}-42")
    wait_for(lambda: devenv.ps(NAME)["activity"] == "active", 10, f"{token}: active")
    assert session.close() == 0


def test_report_counts_running_use_a_break_and_the_idle_end(devenv: Devenv, example: Path) -> None:
    devenv.run(
        "start", str(example), "--name", NAME, "--inactivity", f"{THRESHOLD}s",
        "--max-duration", "1h",
    )  # fmt: skip
    use_once(devenv, "first")
    row = wait_for(lambda: (r := devenv.ps(NAME))["activity"] == "idle" and r, 10, "idle")
    idle_since = when(row["idle_since"])
    # A break of at least a second, well inside the threshold (polled, not slept).
    wait_for(
        lambda: datetime.now(UTC) - idle_since >= timedelta(seconds=1), 5, "a break", every=0.05
    )
    use_once(devenv, "second")
    ended = wait_for(
        lambda: (r := devenv.ps(NAME))["status"] == "terminated" and r, 30, "termination"
    )
    assert ended["termination_reason"] == "inactivity_duration_exceeded"

    report = json.loads(devenv.run("report", "--since", "1d", "--json").stdout)
    assert set(report) >= {"since", "until", "environments", "total", "breaks", "suggestion"}
    assert when(report["until"]) - when(report["since"]) == timedelta(days=1)
    env: dict[str, Any] = next(e for e in report["environments"] if e["name"] == NAME)
    assert (env["status"], env["termination_reason"]) == ("terminated", ended["termination_reason"])
    assert env["history_complete"] is True

    # Running is ready -> ended; in use is two intervals, separated by one break.
    ready, end = when(env["ready_at"]), when(env["ended_at"])
    running = env["hours_running"] * 3600
    assert abs(running - (end - ready).total_seconds()) < 0.01
    assert len(env["in_use"]) == 2, env["in_use"]
    (first_start, first_end), (second_start, second_end) = (
        (when(a), when(b)) for a, b in env["in_use"]
    )
    assert ready <= first_start < first_end < second_start < second_end <= end
    in_use = env["hours_in_use"] * 3600
    assert (
        abs(in_use - ((first_end - first_start) + (second_end - second_start)).total_seconds())
        < 0.01
    )
    assert 0 < in_use < running

    # The break: at least the second waited for, shorter than the threshold it survived.
    assert len(env["breaks_seconds"]) == 1
    (gap,) = env["breaks_seconds"]
    assert 0.9 <= gap < THRESHOLD
    assert abs(gap - (second_start - first_end).total_seconds()) < 0.01

    # Idle before termination: the threshold, plus the moment the end itself took.
    idle = env["hours_idle_before_termination"] * 3600
    assert THRESHOLD <= idle < THRESHOLD + 5
    assert when(env["idle_at_end_since"]) >= second_end - timedelta(seconds=1)
    # Every second of running is accounted for exactly once.
    wait = env["wait_before_first_use_seconds"]
    assert abs(wait + in_use + gap + idle - running) < 0.05

    # Local instances are free; what was saved is counted to now (max_duration, 1h after
    # creation, is still ahead).
    assert (env["price_per_hour"], env["cost"], env["saved"]) == (0.0, 0.0, 0.0)
    assert env["saved_until"] == "now"
    to_now = when(report["until"]) - end
    assert abs(env["hours_saved"] * 3600 - to_now.total_seconds()) < 0.01

    # Totals and the break distribution include this environment (others may share the server).
    total, breaks = report["total"], report["breaks"]
    assert total["environments"] >= 1 and total["hours_running"] >= env["hours_running"]
    assert breaks["count"] >= 1 and breaks["buckets"]["<5m"] >= 1
    assert breaks["max_seconds"] >= gap
    suggestion = report["suggestion"]
    assert suggestion["threshold_seconds"] % 300 == 0
    assert suggestion["threshold_seconds"] > max(gap, wait)

    table = devenv.run("report", "--since", "1d").stdout
    line = next(text for text in table.splitlines() if text.strip().startswith(NAME))
    assert "terminated" in line and "inactivity" in line and "(to now)" in line
    assert "Breaks" in table and "Suggested inactivity threshold:" in table
    assert "total (" in table, table


def test_a_bad_period_is_one_line(devenv: Devenv) -> None:
    result = devenv.run("report", "--since", "1x", check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: since: invalid value '1x'")
    assert len(result.stderr.splitlines()) == 1
