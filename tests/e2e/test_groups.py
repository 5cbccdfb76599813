"""Groups as a user meets them on the local backend: the real CLI, server, sshd and ssh.

A GPU box (``keep_alive: group``, 15 s threshold) is kept alive while its user works over
ssh on the CPU box of the same group, ends 15 s after that user leaves, and
``devenv ps --group`` lists the group."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e

GPU, CPU, GROUP = "e2e-grp-gpu", "e2e-grp-cpu", "e2e-pair"


def test_an_ssh_session_on_one_box_keeps_its_group_alive(devenv: Devenv, tmp_path: Path) -> None:
    for name, rest in ((CPU, "inactivity_duration: 1h\n"), (GPU, "inactivity_duration: 15s\n")):
        config = tmp_path / f"{name}.yml"
        keep = "keep_alive: group\n" if name == GPU else ""
        config.write_text(f"type: dev-environment\nname: {name}\ngroup: {GROUP}\n{rest}{keep}")
        devenv.run("start", str(config))
    listed = json.loads(devenv.run("ps", "--group", GROUP, "--json").stdout)
    assert sorted(row["name"] for row in listed) == [CPU, GPU]
    assert {row["group"] for row in listed} == {GROUP}
    assert json.loads(devenv.run("ps", "--group", "no-such-group", "--json").stdout) == []
    table = devenv.run("ps", "--group", GROUP).stdout
    assert CPU in table and GPU in table

    session = devenv.open_session(CPU)
    session.send("echo at-work\n")
    session.expect("at-work")
    wait_for(lambda: devenv.ps(CPU)["connections"] == 1, 15, "the user counted on the cpu box")
    started = datetime.fromisoformat(devenv.ps(GPU)["idle_since"])
    logs = wait_for(
        lambda: (
            f"kept alive by group {GROUP}: {CPU} is in use"
            in (text := devenv.run("logs", GPU).stdout)
            and text
        ),
        40,
        "the gpu box kept alive by the session on the cpu box",
    )
    assert "inactivity threshold" not in logs
    gpu = devenv.ps(GPU)
    assert gpu["status"] == "running" and gpu["connections"] == 0
    verbose = devenv.run("ps", GPU, "-v").stdout
    assert f"group: {GROUP}, keep_alive: group (presence in any of the group keeps it" in verbose
    assert f"kept alive by group {GROUP}" in verbose  # among the last events
    assert datetime.fromisoformat(gpu["deadline"]) > started + timedelta(seconds=15)

    assert session.close() == 0
    left = wait_for(
        lambda: (r := devenv.ps(CPU))["connections"] == 0 and r["idle_since"], 15, "user gone"
    )
    ended = wait_for(
        lambda: (r := devenv.ps(GPU))["status"] == "terminated" and r, 60, "the gpu box ended"
    )
    assert ended["termination_reason"] == "inactivity_duration_exceeded"
    assert devenv.ps(CPU)["status"] == "running", "the cpu box keeps its own threshold"
    logs = devenv.run("logs", GPU).stdout
    assert "inactivity threshold 15s exceeded" in logs
    ran_on = datetime.fromisoformat(ended["billed_until"]) - datetime.fromisoformat(left)
    assert ran_on >= timedelta(seconds=15), "the group was in use until the user left"
    devenv.run("stop", CPU, "--wait")
