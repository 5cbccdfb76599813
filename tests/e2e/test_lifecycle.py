"""The core promise, as a user lives it: work over SSH, walk away, the environment ends."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, port_open, wait_for

pytestmark = pytest.mark.e2e


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def test_a_user_session_keeps_it_alive_and_walking_away_terminates_it(
    devenv: Devenv, example: Path
) -> None:
    started = devenv.run(
        "start", str(example), "--name", "e2e-idle", "--inactivity", "4s", "--max-duration", "off"
    )
    assert "e2e-idle" in started.stdout and "ssh" in started.stdout
    row = devenv.ps("e2e-idle")
    assert (row["status"], row["activity"], row["connections"]) == ("running", "idle", 0)
    assert row["inactivity_duration"] == 4
    assert (row["price_per_hour"], row["cost"]) == (0.0, 0.0), "local: free"
    port = devenv.instance_port("e2e-idle")

    session = devenv.open_session("e2e-idle")
    session.send("echo shell-$((6*7)) $(tty)\n")
    session.expect("shell-42 /dev/pts/")
    wait_for(lambda: devenv.ps("e2e-idle")["activity"] == "active", 10, "ps to show active")
    assert devenv.ps("e2e-idle")["connections"] == 1

    time.sleep(6)  # past the 4s threshold, but a user is connected
    row = devenv.ps("e2e-idle")
    assert (row["status"], row["activity"], row["deadline"]) == ("running", "active", None)

    assert session.close() == 0
    row = wait_for(
        lambda: (r := devenv.ps("e2e-idle"))["activity"] == "idle" and r, 5, "ps to show idle"
    )
    assert when(row["deadline"]) - when(row["idle_since"]) == timedelta(seconds=4)

    row = wait_for(
        lambda: (r := devenv.ps("e2e-idle"))["status"] == "terminated" and r, 15, "termination"
    )
    assert row["termination_reason"] == "inactivity_duration_exceeded"
    assert not port_open(port), "the instance's SSH port must be closed"
    logs = devenv.run("logs", "e2e-idle").stdout
    assert "user connected" in logs and "inactivity" in logs


def test_an_unauthenticated_tcp_connection_does_not_keep_it_alive(
    devenv: Devenv, example: Path
) -> None:
    devenv.run("start", str(example), "--name", "e2e-scan", "--inactivity", "3s")
    port = devenv.instance_port("e2e-scan")
    with socket.create_connection(("127.0.0.1", port)) as held_open:
        held_open.recv(64)  # the SSH banner: a real connection, never authenticated
        assert devenv.ps("e2e-scan")["connections"] == 0
        row = wait_for(
            lambda: (r := devenv.ps("e2e-scan"))["status"] == "terminated" and r, 20, "termination"
        )
    assert row["termination_reason"] == "inactivity_duration_exceeded"


def test_signal_changes_the_threshold_of_a_running_environment_at_once(
    devenv: Devenv, example: Path
) -> None:
    devenv.run("start", str(example), "--name", "e2e-signal", "--inactivity", "2s")
    raised = json.loads(devenv.run("signal", "e2e-signal", "--inactivity", "1h", "--json").stdout)
    assert raised["inactivity_duration"] == 3600 and raised["status"] == "running"
    time.sleep(3)  # past the old 2s threshold
    assert devenv.ps("e2e-signal")["status"] == "running"

    lowered = devenv.run("signal", "devenv-e2e-signal", "--inactivity", "1s")
    assert "terminating now" in lowered.stdout
    row = wait_for(
        lambda: (r := devenv.ps("e2e-signal"))["status"] == "terminated" and r, 10, "termination"
    )
    assert row["termination_reason"] == "inactivity_duration_exceeded"

    late = devenv.run("signal", "e2e-signal", "--inactivity", "2h", check=False)
    assert late.returncode == 2 and "terminated" in late.stderr


def test_signal_off_switches_a_rule_off_as_the_readme_says(devenv: Devenv, example: Path) -> None:
    """``--inactivity off`` (and ``0``, ``false``, ``--max-duration off``) switch the rule
    off; they were refused as ``null is not a duration``."""
    name = "e2e-signal-off"
    devenv.run("start", str(example), "--name", name, "--inactivity", "1h", "--max-duration", "2h")
    try:
        for word in ("off", "0", "false", "OFF"):
            devenv.run("signal", name, "--inactivity", "1h")
            changed = devenv.run("signal", name, "--inactivity", word, "--json")
            assert json.loads(changed.stdout)["inactivity_duration"] is None, word
        shown = devenv.run("signal", name, "--max-duration", "off", "--stop-at", "off")
        assert "inactivity off, max duration off" in shown.stdout
        row = devenv.ps(name)
        assert row["inactivity_duration"] is None and row["max_duration"] is None
        assert row["status"] == "running"
    finally:
        devenv.run("stop", name, "--wait", check=False)


def test_a_second_start_of_a_running_name_is_refused_and_the_first_is_untouched(
    devenv: Devenv, example: Path, tmp_path: Path
) -> None:
    """`devenv start` of a name that is running: one line, exit code 2, and the running
    environment keeps its thresholds, deadline, instance, host key and history."""
    name = "e2e-twice"
    devenv.run("start", str(example), "--name", name, "--inactivity", "1h", "--max-duration", "off")
    before = devenv.ps(name)
    assert (before["status"], before["inactivity_duration"], before["max_duration"]) == (
        "running",
        3600,
        None,
    )
    host_entry = devenv.home / "ssh" / "hosts" / f"{name}.conf"
    entry_before = host_entry.read_text()
    port = devenv.instance_port(name)
    instances = devenv.home / "envs" / name / "instances"
    tokens_before = sorted(path.name for path in instances.iterdir())
    events_before = json.loads(devenv.run("logs", name, "--json").stdout)

    # The name given on the command line, then in the file itself.
    named = tmp_path / "twice.yml"
    named.write_text(example.read_text().replace("name: my-env", f"name: {name}"))
    attempts = [
        ["start", str(example), "--name", name, "--inactivity", "5s", "--max-duration", "1d"],
        ["start", str(named), "--inactivity", "5s"],
    ]
    for args in attempts:
        again = devenv.run(*args, check=False)
        assert again.returncode == 2, (again.args, again.stdout, again.stderr)
        assert again.stdout == ""
        assert again.stderr.splitlines() == [
            f"error: an environment named '{name}' is already running; "
            f"stop it with `devenv stop {name}` or choose another name"
        ]

    assert devenv.ps(name) == before, "the refused start changed the running environment"
    assert host_entry.read_text() == entry_before, "the pinned host key was rewritten"
    assert devenv.instance_port(name) == port and port_open(port)
    assert sorted(path.name for path in instances.iterdir()) == tokens_before, "a 2nd instance"
    assert json.loads(devenv.run("logs", name, "--json").stdout) == events_before
    assert devenv.ssh(name, "echo", "still-mine").stdout == "still-mine\n"

    devenv.run("stop", name, "--wait")
    # Once it has ended, the name is free again: a new environment, a new instance.
    devenv.run("start", str(example), "--name", name, "--inactivity", "1h")
    assert devenv.ps(name)["status"] == "running"
    assert len(list(instances.iterdir())) == len(tokens_before) + 1
    devenv.run("stop", name, "--wait")


def test_tools_stop_and_logs(devenv: Devenv, example: Path, tmp_path: Path) -> None:
    devenv.run("start", str(example), "--name", "e2e-tools")

    assert devenv.run("ssh", "e2e-tools", "--", "echo", "from-devenv-ssh").stdout.strip() == (
        "from-devenv-ssh"
    )
    (tmp_path / "upload.txt").write_text("payload\n")
    (tmp_path / "batch").write_text(f"put {tmp_path / 'upload.txt'} upload.txt\n")
    sftp = subprocess.run(
        ["sftp", "-F", str(devenv.ssh_config), "-b", str(tmp_path / "batch"), "e2e-tools"],
        env=devenv.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert sftp.returncode == 0, sftp.stderr
    assert devenv.ssh("e2e-tools", "cat upload.txt").stdout == "payload\n"

    table = devenv.run("ps").stdout
    assert "e2e-tools" in table and "running" in table
    assert "COST" in table and "$0.00" in table

    stopped = devenv.run("stop", "e2e-tools", "--wait")
    assert "stopped_by_user" in stopped.stdout
    assert devenv.ps("e2e-tools")["termination_reason"] == "stopped_by_user"
    assert "e2e-tools" in devenv.run("ps", "--all").stdout
    assert "e2e-tools" not in devenv.run("ps").stdout
    assert "stop" in devenv.run("logs", "e2e-tools").stdout


def test_unknown_environment_is_one_clear_line(devenv: Devenv) -> None:
    result = devenv.run("ps", "no-such-env", check=False)
    assert result.returncode == 2
    assert (
        result.stderr.strip() == "error: no environment named 'no-such-env' (see `devenv ps --all`)"
    )


def test_start_brings_up_the_embedded_server_by_itself(tmp_path: Path, example: Path) -> None:
    world = Devenv(tmp_path)
    try:
        result = world.run("start", str(example), "--name", "e2e-auto", "--inactivity", "2s")
        assert "started one in the background" in result.stderr
        assert world.ps("e2e-auto")["status"] == "running"
        assert world.ssh("e2e-auto", "echo", "hello").stdout == "hello\n"
        row = wait_for(
            lambda: (r := world.ps("e2e-auto"))["status"] == "terminated" and r, 15, "termination"
        )
        assert row["termination_reason"] == "inactivity_duration_exceeded"
    finally:
        world.cleanup()
