"""kill -9 of the worker mid-suspend and mid-resume: nothing lost or doubled, the
workspace intact, the environment ends up where it was asked to go."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.harness import DEVENV
from tests.faults.cluster import Cluster, port_open, wait_for

pytestmark = pytest.mark.faults


def start_suspendable(cluster: Cluster, name: str, tmp_path: Path) -> None:
    config = tmp_path / f"{name}.yml"
    config.write_text("type: dev-environment\non_idle: suspend\ninactivity_duration: off\n")
    cluster.run("start", str(config), "--name", name)
    wrote = cluster.ssh(name, "echo unpushed > notes.txt && echo ok")
    assert wrote.stdout == "ok\n", wrote.stderr


def instance_dirs(cluster: Cluster, name: str) -> list[Path]:
    return sorted((cluster.home / "envs" / name / "instances").iterdir())


def test_a_worker_killed_mid_suspend_suspends_once_on_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_suspendable(cluster, "wk-nap", tmp_path)
    [server] = cluster.instance_pids("wk-nap")
    # A stopped server holds its SIGTERM: the suspend waits on it (the backend's stop
    # timeout) and is surely under way when the worker dies.
    os.kill(server, signal.SIGSTOP)
    cluster.run("suspend", "wk-nap")
    wait_for(lambda: cluster.ps("wk-nap")["status"] == "suspending", 10, "suspending")
    time.sleep(1)  # on purpose: inside the suspend activity's wait for the stopped server
    cluster.kill_worker()
    cluster.start_worker()

    cluster.wait_status("wk-nap", "suspended", 30)
    assert cluster.instance_pids("wk-nap") == []
    assert len(instance_dirs(cluster, "wk-nap")) == 1, "no second instance"
    logs = cluster.logs("wk-nap")
    assert logs.count("suspended: asked; workspace kept") == 1, logs

    resumed = cluster.run("resume", "wk-nap")
    assert "wk-nap is running again" in resumed.stdout
    assert len(cluster.instance_pids("wk-nap")) == 1
    read = cluster.ssh("wk-nap", "cat notes.txt")
    assert read.stdout == "unpushed\n", read.stderr
    cluster.run("stop", "wk-nap", "--wait")


def test_a_worker_killed_mid_resume_resumes_once_on_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_suspendable(cluster, "wk-wake", tmp_path)
    cluster.run("suspend", "wk-wake", "--wait")
    assert cluster.instance_pids("wk-wake") == []

    # The worker dies inside the resume activity: it has launched the server (server.pid
    # written) and waits for it to listen. The retry must adopt that server, not start a
    # second one.
    [instance] = instance_dirs(cluster, "wk-wake")
    assert not (instance / "server.pid").exists()
    asking = subprocess.Popen([DEVENV, "resume", "wk-wake"], env=cluster.env)
    wait_for(lambda: (instance / "server.pid").exists(), 30, "the server launched", every=0.002)
    cluster.kill_worker()
    listed = json.loads(cluster.run("ps", "--json").stdout)  # the memo: no worker needed
    assert [row["status"] for row in listed if row["name"] == "wk-wake"] == ["resuming"]
    asking.kill()
    asking.wait()
    cluster.start_worker()

    cluster.wait_status("wk-wake", "running", 30)
    wait_for(lambda: len(cluster.instance_pids("wk-wake")) == 1, 10, "one server")
    time.sleep(1)  # on purpose: a second, late server would show up now
    assert len(cluster.instance_pids("wk-wake")) == 1, "never two servers"
    assert len(instance_dirs(cluster, "wk-wake")) == 1
    logs = cluster.logs("wk-wake")
    assert logs.count("resumed at ") == 1, logs
    # The killed `devenv resume` never rewrote the entry: `devenv ssh` does.
    read = cluster.run("ssh", "wk-wake", "cat", "notes.txt")
    assert read.stdout == "unpushed\n", read.stderr
    cluster.run("stop", "wk-wake", "--wait")


def test_a_temporal_server_killed_mid_suspend_suspends_once_on_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_suspendable(cluster, "nap-mid-suspend", tmp_path)
    [server] = cluster.instance_pids("nap-mid-suspend")
    os.kill(server, signal.SIGSTOP)  # the suspend waits on it, as above
    cluster.run("suspend", "nap-mid-suspend")
    time.sleep(1)  # on purpose: inside the suspend activity's wait for the stopped server
    cluster.kill_temporal()
    wait_for(lambda: not port_open(cluster.temporal_port), 10, "the dead server's port to close")
    cluster.start_temporal()

    cluster.wait_status("nap-mid-suspend", "suspended", 90)
    assert cluster.instance_pids("nap-mid-suspend") == []
    assert len(instance_dirs(cluster, "nap-mid-suspend")) == 1
    logs = cluster.logs("nap-mid-suspend")
    assert logs.count("suspended: asked; workspace kept") == 1, logs
    cluster.run("resume", "nap-mid-suspend")
    read = cluster.ssh("nap-mid-suspend", "cat notes.txt")
    assert read.stdout == "unpushed\n", read.stderr
    cluster.run("stop", "nap-mid-suspend", "--wait")


def test_a_temporal_server_killed_mid_resume_resumes_once_on_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    start_suspendable(cluster, "wake-mid-resume", tmp_path)
    cluster.run("suspend", "wake-mid-resume", "--wait")
    [instance] = instance_dirs(cluster, "wake-mid-resume")
    asking = subprocess.Popen([DEVENV, "resume", "wake-mid-resume"], env=cluster.env)
    wait_for(lambda: (instance / "server.pid").exists(), 30, "the server launched", every=0.002)
    cluster.kill_temporal()
    asking.kill()
    asking.wait()
    wait_for(lambda: not port_open(cluster.temporal_port), 10, "the dead server's port to close")
    cluster.start_temporal()

    cluster.wait_status("wake-mid-resume", "running", 90)
    time.sleep(1)  # on purpose: a second, late server would show up now
    assert len(cluster.instance_pids("wake-mid-resume")) == 1, "never two servers"
    assert cluster.logs("wake-mid-resume").count("resumed at ") == 1
    read = cluster.run("ssh", "wake-mid-resume", "cat", "notes.txt")
    assert read.stdout == "unpushed\n", read.stderr
    cluster.run("stop", "wake-mid-resume", "--wait")
