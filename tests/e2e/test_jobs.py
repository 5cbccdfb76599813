"""Jobs keep an environment alive: `devenv run`, `devenv jobs`, `devenv logs --job` and
`devenv-keepalive` by hand, through the real CLI, server, local backend and ssh client."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e

INACTIVITY = 3


@pytest.fixture
def env_file(tmp_path: Path) -> Iterator[Any]:
    """Writes an environment file; every environment it named is stopped after the test."""
    names: list[str] = []
    world: list[Devenv] = []

    def make(devenv: Devenv, name: str, extra: str = "") -> Path:
        world[:] = [devenv]
        names.append(name)
        path = tmp_path / f"{name}.yml"
        path.write_text(
            f"type: dev-environment\nname: {name}\ninactivity_duration: {INACTIVITY}s\n{extra}"
        )
        return path

    yield make
    for name in names:
        world[0].run("stop", name, "--wait", check=False, timeout=60)


def jobs_of(devenv: Devenv, name: str) -> list[dict[str, Any]]:
    return list(json.loads(devenv.run("jobs", name, "--json").stdout))


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_a_detached_job_keeps_an_idle_environment_alive_until_it_ends(
    devenv: Devenv, env_file: Any
) -> None:
    name = "e2e-job"
    devenv.run("start", str(env_file(devenv, name)))
    started = devenv.run(
        "run",
        name,
        "--detach",
        "--",
        "sh",
        "-c",
        "while [ ! -e stop ]; do sleep 0.1; done; echo done",
    )
    job = started.stdout.strip()
    assert job and job in started.stderr  # the id alone on stdout, a hint on stderr

    row = wait_for(lambda: (r := devenv.ps(name))["jobs"] == 1 and r, 10, "ps to count the job")
    assert (row["activity"], row["connections"], row["deadline"]) == ("active", 0, None)
    assert "jobs: 1" in devenv.run("ps", name).stdout
    listed = jobs_of(devenv, name)
    assert [(j["id"], j["state"], j["command"][0]) for j in listed] == [(job, "running", "sh")]
    table = devenv.run("jobs", name).stdout
    assert job in table and "running" in table

    # Deliberate: let more than the whole inactivity threshold pass with nobody connected.
    time.sleep(INACTIVITY + 2)
    assert devenv.ps(name)["status"] == "running"

    workspace = devenv.home / "envs" / name / "workspace"
    (workspace / "stop").touch()
    wait_for(lambda: devenv.ps(name)["jobs"] == 0, 10, "the job's end to reach ps")
    job_ended = datetime.now(UTC)
    ended = wait_for(
        lambda: (r := devenv.ps(name))["status"] == "terminated" and r, 30, "the idle end"
    )
    assert ended["termination_reason"] == "inactivity_duration_exceeded"
    events = devenv.run("logs", name).stdout
    assert "jobs 0 -> 1" in events and "last job ended; idle since" in events
    # Idle from the job's end, not from the start: it ended a threshold after that.
    idle_since = [line for line in events.splitlines() if "last job ended" in line][-1]
    assert idle_since
    assert (datetime.now(UTC) - job_ended).total_seconds() >= INACTIVITY - 1
    # The record and the log stay in the workspace.
    record = json.loads((workspace / ".devenv" / "jobs" / f"{job}.json").read_text())
    assert (record["exit_code"], record["ended"] is not None) == (0, True)
    assert (workspace / ".devenv" / "jobs" / f"{job}.log").read_text() == "done\n"


def test_run_streams_its_output_returns_its_exit_code_and_keeps_a_log(
    devenv: Devenv, env_file: Any
) -> None:
    name = "e2e-run"
    devenv.run("start", str(env_file(devenv, name)))
    result = devenv.run(
        "run",
        name,
        "--id",
        "build-1",
        "--",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 7",
        check=False,
    )
    assert result.returncode == 7, result.stderr
    assert result.stdout == "hello\n"
    assert "oops" in result.stderr and "build-1" in result.stderr

    one_line = devenv.run("run", name, "--id", "shell-1", "--", "echo a && echo b")
    assert one_line.stdout == "a\nb\n"

    assert devenv.run("logs", name, "--job", "build-1").stdout == "hello\noops\n"
    listed = {j["id"]: j for j in jobs_of(devenv, name)}
    assert (listed["build-1"]["state"], listed["build-1"]["exit_code"]) == ("exited", 7)
    assert listed["build-1"]["command"] == ["sh", "-c", "echo hello; echo oops >&2; exit 7"]
    assert (listed["shell-1"]["state"], listed["shell-1"]["exit_code"]) == ("exited", 0)
    assert "exited (7)" in devenv.run("jobs", name).stdout

    missing = devenv.run("logs", name, "--job", "nope", check=False)
    assert missing.returncode == 2 and "no job nope" in missing.stderr
    bad = devenv.run("logs", name, "--job", "../x", check=False)
    assert bad.returncode == 2 and "job id" in bad.stderr
    nothing = devenv.run("run", name, "--detach", check=False)
    assert nothing.returncode == 2 and "no command" in nothing.stderr
    assert devenv.ps(name)["jobs"] == 0


def test_keepalive_by_hand_counts_and_max_duration_still_ends_everything(
    devenv: Devenv, env_file: Any
) -> None:
    """`devenv-keepalive` started in a shell that then leaves keeps the environment in
    use; max_duration ends it anyway, and the job with it."""
    name = "e2e-hand"
    devenv.run("start", str(env_file(devenv, name, "max_duration: 12s\n")))
    # As a script or tmux would: in the background of a shell that then leaves. (An exec
    # session: a login shell's profile may reset PATH, see the README.)
    started = devenv.ssh(name, "nohup devenv-keepalive sleep 600 >/dev/null 2>&1 &")
    assert started.returncode == 0, started.stderr
    row = wait_for(
        lambda: (r := devenv.ps(name))["jobs"] == 1 and r["connections"] == 0 and r,
        15,
        "the hand-started job alone to keep it in use",
    )
    assert row["activity"] == "active"
    (record,) = jobs_of(devenv, name)
    assert record["command"] == ["sleep", "600"] and record["state"] == "running"
    pid = int(record["pid"])
    assert alive(pid) and b"DEVENV_ENV=" in Path(f"/proc/{pid}/environ").read_bytes()

    ended = wait_for(
        lambda: (r := devenv.ps(name))["status"] == "terminated" and r, 40, "max_duration"
    )
    assert ended["termination_reason"] == "max_duration_exceeded"
    wait_for(lambda: not alive(pid), 10, "the job to end with its environment")
    assert not alive(int(record["child_pid"]))
    assert os.path.exists(devenv.home / "envs" / name / "workspace" / ".devenv" / "jobs")
