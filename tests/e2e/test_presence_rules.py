"""Presence rules as a user meets them, through the real CLI, server and ssh client."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e


def test_a_user_who_logs_in_just_before_the_deadline_keeps_the_machine(
    devenv: Devenv, tmp_path: Path
) -> None:
    """min_connection_duration must not cost a connected user the machine.

    The user logs in 3.5 s after the environment became idle; the deadline (6 s) comes
    while their connection is still inside the 4 s minimum, so it is not counted yet.
    The probe sees it waiting: the decision waits until it would count (login + 4 s),
    when it does; the session finishes.
    """
    config = tmp_path / "late.yml"
    config.write_text(
        "type: dev-environment\nname: e2e-late\n"
        "inactivity_duration: 6s\nmin_connection_duration: 4s\n"
    )
    devenv.run("start", str(config))
    idle_since = datetime.fromisoformat(devenv.ps("e2e-late")["idle_since"])
    # Deliberate: log in at a chosen moment of the idle period, not as soon as possible.
    time.sleep(max(0.0, 3.5 - (datetime.now(UTC) - idle_since).total_seconds()))
    session = devenv.ssh("e2e-late", "sleep 10; echo worked")
    assert (session.returncode, session.stdout) == (0, "worked\n"), session.stderr
    events = devenv.run("logs", "e2e-late").stdout
    assert "opened within min_connection_duration" in events
    ended = wait_for(
        lambda: (row := devenv.ps("e2e-late"))["status"] == "terminated" and row, 30, "the end"
    )
    assert ended["termination_reason"] == "inactivity_duration_exceeded"


def test_the_shell_sees_none_of_the_workers_secrets(devenv: Devenv) -> None:
    """The server was started with secrets in its environment only if the test world set
    them; whatever it had, a shell gets the allow-list (see tests/local_backend for the full
    list with planted secrets)."""
    devenv.run(
        "start", str(Path(__file__).parents[2] / "examples" / "dev.yml"), "--name", "e2e-env"
    )
    shell = devenv.ssh("e2e-env", "env")
    names = {line.split("=", 1)[0] for line in shell.stdout.splitlines() if "=" in line}
    assert {"HOME", "USER", "PATH", "SHELL", "DEVENV_ENV"} <= names
    assert not {n for n in names if n.startswith(("DEVENV_TEMPORAL", "TEMPORAL_", "PYTEST"))}
    devenv.run("stop", "e2e-env", "--wait")


def test_stop_keeps_the_workspace_and_purge_deletes_it(devenv: Devenv) -> None:
    example = str(Path(__file__).parents[2] / "examples" / "dev.yml")
    workspace = devenv.home / "envs" / "e2e-purge" / "workspace"
    devenv.run("start", example, "--name", "e2e-purge")
    assert devenv.ssh("e2e-purge", "echo kept > notes.txt").returncode == 0
    devenv.run("stop", "e2e-purge", "--wait")
    assert (workspace / "notes.txt").read_text() == "kept\n"
    devenv.run("start", example, "--name", "e2e-purge")
    assert devenv.ssh("e2e-purge", "cat notes.txt").stdout == "kept\n"
    devenv.run("stop", "e2e-purge", "--wait", "--purge")
    assert not workspace.exists()
    assert "the workspace will be deleted at termination" in devenv.run("logs", "e2e-purge").stdout
