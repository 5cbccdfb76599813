"""Suspend and resume over the HTTP API and in remote mode, against the real `devenv
server`: who may do which (suspend like stop, resume like connect), and a user's file
still there after a remote `devenv resume` over real OpenSSH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.e2e.harness import DEVENV

pytestmark = pytest.mark.e2e


def test_the_owner_suspends_a_member_resumes_and_others_learn_nothing(api: Api) -> None:
    name = "api-nap"
    api.start("alice", name, on_idle="suspend", inactivity_duration="2h")
    with api.client("alice") as alice, api.client("bob") as bob, api.client("carol") as carol:
        assert alice.patch(f"/environments/{name}", json={"shared_with": ["bob"]}).is_success
        refused = bob.post(f"/environments/{name}/suspend")
        assert refused.status_code == 403
        assert refused.json()["error"].endswith("only alice or an admin can suspend it")
        assert carol.post(f"/environments/{name}/suspend").status_code == 404
        assert bob.post(f"/environments/{name}/resume").status_code == 422  # running

        done = alice.post(f"/environments/{name}/suspend", params={"wait": "true"})
        assert done.status_code == 200, done.text
        row = done.json()
        assert row["status"] == "suspended"
        assert row["suspend_reason"] == "asked: by alice via the API"
        assert row["on_idle"] == "suspend" and row["deadline"] is not None
        again = alice.post(f"/environments/{name}/suspend")
        assert again.status_code == 422
        assert again.json()["error"].startswith(f"devenv-{name}: {name} is already suspended")
        assert alice.get(f"/environments/{name}/connection").status_code == 409

        back = bob.post(f"/environments/{name}/resume", params={"wait": "true"})
        assert back.status_code == 200, back.text
        assert back.json()["status"] == "running"
        events = [e["message"] for e in alice.get(f"/environments/{name}/events").json()]
        assert "resuming (asked: by bob via the API)" in events
        assert alice.delete(f"/environments/{name}", params={"wait": "true"}).is_success


def test_remote_resume_rewrites_the_entry_and_the_workspace_is_there(
    api: Api, tmp_path: Path
) -> None:
    name = "api-remote-nap"
    api.start("alice", name)
    machine = api.machine("alice", tmp_path)

    def devenv(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEVENV, *args], env=machine, capture_output=True, text=True, timeout=120
        )

    wrote = devenv("ssh", name, "--", "sh", "-c", "'echo remote > remote.txt && echo ok'")
    assert wrote.stdout.strip() == "ok", wrote.stderr
    suspended = devenv("suspend", name, "--wait")
    assert f"{name}: suspended; workspace kept." in suspended.stdout, suspended.stderr
    resumed = devenv("resume", name)
    assert f"{name} is running again" in resumed.stdout, resumed.stderr
    entry = Path(machine["DEVENV_HOME"]) / "ssh" / "config"
    read = subprocess.run(
        ["ssh", "-F", str(entry), "-o", "BatchMode=yes", name, "cat", "remote.txt"],
        env=machine,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert read.stdout == "remote\n", read.stderr
    assert devenv("stop", name, "--wait").returncode == 0
