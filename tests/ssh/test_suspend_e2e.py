"""Suspend and resume on ``backend: ssh`` as a user lives it: the real `devenv` CLI, the
real OpenSSH client and Debian's sshd on loopback. A user's file survives an idle
suspension and a resume; nobody gets in while suspended."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.ssh.conftest import account_of, pids_of, shadow
from tests.ssh.test_e2e import World, until_status, world  # noqa: F401 (the fixture)

pytestmark = pytest.mark.e2e


def test_a_users_file_survives_an_idle_suspension_and_a_resume_on_ssh(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "inactivity_duration": "5s", "on_idle": "suspend"}))
    devenv.run("start", str(path))
    wrote = devenv.ssh(name, "echo unpushed > notes.txt && echo ok")
    assert wrote.stdout == "ok\n", wrote.stderr
    account = account_of(name)
    assert account is not None

    row = until_status(world, name, "suspended", timeout=40)
    assert row["suspend_reason"] == "idle for 5s (on_idle: suspend)"
    assert row["termination_reason"] is None
    assert pids_of(account.name) == [], "nothing of the user's runs while suspended"
    assert shadow(account.name)[1].startswith("!"), "the account is locked"
    refused = devenv.ssh(name, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert "suspended" in devenv.run("ps").stdout
    assert "suspending: idle for 5s (on_idle: suspend)" in devenv.run("logs", name).stdout

    resumed = devenv.run("resume", name)
    assert f"{name} is running again" in resumed.stdout
    # `resume` returns once SSH works: the very next login succeeds.
    read = devenv.ssh(name, "cat notes.txt")
    assert read.returncode == 0 and read.stdout == "unpushed\n", read.stderr
    assert devenv.ps(name)["status"] in ("running", "suspending", "suspended")

    stopped = devenv.run("stop", name, "--wait")
    assert stopped.stdout.strip() == f"{name}: terminated (stopped_by_user)"
    assert devenv.ps(name)["status"] == "terminated"
    gone = devenv.ssh(name, "true")
    assert gone.returncode == 255
