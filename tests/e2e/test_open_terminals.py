"""A terminal left open is not a user (``connected_idle``), as a user lives it on the local
backend: a real ``ssh -tt`` session left untouched is warned in its terminal, then the
environment ends; one that types every few seconds keeps it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Devenv, Session, wait_for

pytestmark = pytest.mark.e2e


def config(tmp_path: Path, name: str, **keys: Any) -> Path:
    doc = {"type": "dev-environment", "name": name, **keys}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _ended(devenv: Devenv, name: str, timeout: float) -> dict[str, Any]:
    return wait_for(
        lambda: (row := devenv.ps(name))["status"] == "terminated" and row, timeout, "the end"
    )


def test_an_untouched_terminal_is_warned_then_the_environment_ends(
    devenv: Devenv, tmp_path: Path
) -> None:
    name = "e2e-open-idle"
    path = config(tmp_path, name, inactivity_duration="10s", connected_idle="20s")
    devenv.run("start", str(path))
    session = devenv.open_session(name)
    try:
        session.expect(f"devenv: this is '{name}'")
        row = wait_for(lambda: (r := devenv.ps(name))["connections"] == 1 and r, 15, "counted")
        assert row["deadline"] is not None, "connected, yet a deadline: connected_idle's"
        text = session.expect_terminal_warning(name, timeout=30)
        assert "connected but idle for 20s" in text and "any keystroke keeps it" in text
        verbose = devenv.run("ps", name, "-v").stdout
        assert "connected_idle 20s:" in verbose, verbose
        row = _ended(devenv, name, 30)
        wait_for(lambda: session.process.poll() is not None, 15, "the session to end")
    except AssertionError:
        print(devenv.run("logs", name).stdout, devenv.run("ps", name, "-v").stdout)
        print("".join(session.output))
        raise
    finally:
        if session.process.poll() is None:
            session.kill()
    assert row["termination_reason"] == "connected_idle_exceeded"
    logs = devenv.run("logs", name).stdout
    assert "warning written to 1 open terminal" in logs
    assert "connected_idle 20s exceeded: no terminal input since" in logs


def _typing(session: Session, seconds: float, every: float = 3.0) -> None:
    """Type a command every few seconds, as someone at work does."""
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1
        session.send(f"echo tick-{count}\n")
        session.expect(f"tick-{count}")
        time.sleep(every)  # the pace of a person typing, not a wait for a condition


def test_a_terminal_that_types_every_few_seconds_keeps_it(devenv: Devenv, tmp_path: Path) -> None:
    name = "e2e-open-typing"
    path = config(tmp_path, name, inactivity_duration="10s", connected_idle="20s")
    devenv.run("start", str(path))
    session = devenv.open_session(name)
    try:
        session.expect(f"devenv: this is '{name}'")
        _typing(session, 45)
        row = devenv.ps(name)
        assert row["status"] == "running", row
        assert "*** devenv:" not in "".join(session.output), "no warning while typing"
        verbose = devenv.run("ps", name, "-v").stdout
        assert "last input" in verbose, verbose
    finally:
        session.kill()
    devenv.run("stop", name, "--wait")
