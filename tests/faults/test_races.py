"""Signals and stops racing the end of an environment, and each other."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from tests.e2e.harness import DEVENV
from tests.faults.cluster import Cluster, now, when

pytestmark = pytest.mark.faults


def refused(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit code 2, nothing on stdout, one line on stderr naming the state."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: "), result.stderr
    for word in words:
        assert word in line, line


def test_signal_and_stop_while_terminating_and_after_get_one_line_and_change_nothing(
    cluster: Cluster,
) -> None:
    name = "race-end"
    cluster.start_env(name, "--inactivity", "1h")
    [pid] = cluster.instance_pids(name)
    # A machine slow to stop keeps the environment TERMINATING for the backend's
    # stop timeout (5 s) before it is killed.
    os.kill(pid, signal.SIGSTOP)
    try:
        cluster.run("stop", name)
        assert cluster.ps(name)["status"] == "terminating"
        refused(cluster.run("signal", name, "--inactivity", "2h", check=False), "terminating")
        refused(cluster.run("stop", name, check=False), "terminating")
        assert cluster.ps(name)["status"] == "terminating"
    finally:
        os.kill(pid, signal.SIGCONT)
    row = cluster.wait_status(name, "terminated", timeout=20)
    refused(cluster.run("signal", name, "--inactivity", "2h", check=False), "terminated")
    refused(cluster.run("stop", name, check=False), "terminated")
    refused(cluster.run("signal", name, "--max-duration", "1d", check=False), "terminated")

    final = cluster.ps(name)
    assert final == row
    assert (final["inactivity_duration"], final["termination_reason"]) == (3600, "stopped_by_user")
    logs = cluster.logs(name)
    assert "changed" not in logs and logs.count("stop requested") == 1, logs
    assert cluster.instance_pids(name) == []


def test_two_signals_at_the_same_moment_both_apply_in_order(cluster: Cluster) -> None:
    name = "race-two"
    cluster.start_env(name, "--inactivity", "1h")
    calls = [
        subprocess.Popen(
            [DEVENV, "signal", name, "--inactivity", value],
            env=cluster.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for value in ("2h", "3h")
    ]
    for call in calls:
        _, err = call.communicate(timeout=60)
        assert call.returncode == 0, err

    changes = [
        re.search(r"inactivity threshold changed from (\S+) to (\S+);", event["message"])
        for event in json.loads(cluster.run("logs", name, "--json").stdout)
    ]
    applied = [(m.group(1), m.group(2)) for m in changes if m]
    assert len(applied) == 2, applied
    (first_from, first_to), (second_from, second_to) = applied
    assert first_from == "1h" and second_from == first_to, "the second saw the first applied"
    assert {first_to, second_to} == {"2h", "3h"}
    assert cluster.ps(name)["inactivity_duration"] == {"2h": 7200, "3h": 10800}[second_to]
    cluster.run("stop", name, "--wait")


def test_a_signal_landing_on_the_deadline_either_applies_or_is_refused(
    cluster: Cluster,
) -> None:
    """Whichever wins, the answer matches what happened: no threshold is changed on an
    environment that terminates, and no environment terminates after saying it won't."""
    name = "race-deadline"
    row = cluster.start_env(name, "--inactivity", "3s")
    deadline = when(row["deadline"])
    # On purpose: `devenv signal` takes ~0.7 s to start; aim its update at the deadline.
    time.sleep(max(0.0, (deadline - now()).total_seconds() - 0.7))
    result = cluster.run("signal", name, "--inactivity", "1h", check=False)
    if result.returncode == 0:
        assert "terminat" not in result.stdout, result.stdout
        # On purpose: a window past the old deadline in which it must NOT terminate.
        time.sleep(max(0.0, (deadline - now()).total_seconds()) + 1)
        final = cluster.ps(name)
        assert (final["status"], final["inactivity_duration"]) == ("running", 3600)
        assert "terminat" not in cluster.logs(name)
        cluster.run("stop", name, "--wait")
    else:
        refused(result, "nothing changed")
        final = cluster.wait_status(name, "terminated", timeout=10)
        assert (final["termination_reason"], final["inactivity_duration"]) == (
            "inactivity_duration_exceeded",
            3,
        )
        assert "changed" not in cluster.logs(name)
    assert cluster.instance_pids(name) == []
