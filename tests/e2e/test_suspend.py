"""Suspend and resume as a user lives it on local: work, walk away, the environment is
suspended (not deleted); `devenv resume` brings the same workspace back over SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, port_open, wait_for

pytestmark = pytest.mark.e2e


def test_a_users_file_survives_an_idle_suspension_and_a_resume(
    devenv: Devenv, tmp_path: Path
) -> None:
    config = tmp_path / "dev.yml"
    config.write_text(
        "type: dev-environment\ninactivity_duration: 3s\non_idle: suspend\ndelete_after: 2d\n"
    )
    devenv.run("start", str(config), "--name", "e2e-nap")
    wrote = devenv.ssh("e2e-nap", "echo unpushed > notes.txt && echo ok")
    assert wrote.stdout == "ok\n", wrote.stderr
    port = devenv.instance_port("e2e-nap")

    row = wait_for(
        lambda: (r := devenv.ps("e2e-nap"))["status"] == "suspended" and r, 20, "suspension"
    )
    assert row["suspend_reason"] == "idle for 3s (on_idle: suspend)"
    assert row["deadline"] is not None and row["termination_reason"] is None
    assert not port_open(port), "nothing may run while suspended"
    listed = devenv.run("ps").stdout
    assert "suspended, deleted in 1d23h" in listed or "suspended, deleted in 2d" in listed
    again = devenv.run("suspend", "e2e-nap", check=False)
    assert again.returncode == 2
    assert "e2e-nap is already suspended; `devenv resume e2e-nap` resumes it" in again.stderr
    assert "suspending: idle for 3s (on_idle: suspend)" in devenv.run("logs", "e2e-nap").stdout

    resumed = devenv.run("resume", "e2e-nap")
    assert "e2e-nap is running again" in resumed.stdout
    assert devenv.instance_port("e2e-nap") != port or port_open(port)
    read = devenv.ssh("e2e-nap", "cat notes.txt")
    assert read.stdout == "unpushed\n", read.stderr
    refused = devenv.run("resume", "e2e-nap", check=False)
    assert refused.returncode == 2
    assert "e2e-nap is running, not suspended: nothing to resume" in refused.stderr

    # Asked this time (the 3s idle rule may beat the request: then it says so, in one line).
    asked = devenv.run("suspend", "e2e-nap", "--wait", check=False)
    assert asked.returncode == 0 or "is already suspend" in asked.stderr, asked.stderr
    wait_for(lambda: devenv.ps("e2e-nap")["status"] == "suspended", 20, "suspension")
    stopped = devenv.run("stop", "e2e-nap", "--wait")
    assert stopped.stdout.strip() == "e2e-nap: terminated (stopped_by_user)"
