"""`devenv ps NAME -v` on a real environment: who keeps it up and the rule of its deadline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e


def test_ps_verbose_shows_the_connection_and_the_rule(devenv: Devenv, example: Path) -> None:
    name = "e2e-verbose"
    devenv.run("start", str(example), "--name", name, "--inactivity", "1h", "--max-duration", "1d")
    session = devenv.open_session(name)
    try:
        session.send("echo verbose-$((6*7))\n")
        session.expect("verbose-42")
        wait_for(lambda: devenv.ps(name)["connections"] == 1, 10, "ps to count the session")

        shown = devenv.run("ps", name, "-v").stdout
        assert shown.startswith(f"{name}  running  local  "), shown
        assert "1 connection, 0 jobs" in shown, shown
        # In use: the idle rule waits, max_duration still sets the deadline.
        assert "rule: max_duration 1d since creation at " in shown, shown
        assert "(max_duration)" in shown and "warning due at " in shown, shown
        assert "user connected" in shown, shown  # the last events

        state = json.loads(devenv.run("ps", name, "-v", "--json").stdout)
        assert (state["status"], state["connections"]) == ("running", 1)
    finally:
        assert session.close() == 0

    shown = wait_for(
        lambda: "rule: idle for 1h since " in (out := devenv.run("ps", name, "-v").stdout) and out,
        10,
        "ps -v to show the idle rule",
    )
    assert "0 connections, 0 jobs: idle since " in shown, shown
    assert "(inactivity_duration)" in shown, shown

    devenv.run("stop", name, "--wait")
    shown = devenv.run("ps", name, "-v").stdout
    assert "ended at " in shown and "stopped_by_user" in shown, shown
