"""kill -9 of the Temporal dev server: its SQLite file under DEVENV_HOME holds everything."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import DEVENV, free_port
from tests.faults.cluster import (
    Cluster,
    alive,
    cmdline,
    environ,
    example_file,
    parent,
    pids,
    port_open,
    wait_for,
)

pytestmark = pytest.mark.faults


def rows(cluster: Cluster, prefix: str) -> list[dict[str, Any]]:
    """`devenv ps --all --json` for this test's environments, once it answers again."""

    def answer() -> subprocess.CompletedProcess[str] | None:
        result = cluster.run("ps", "--all", "--json", check=False)
        return result if result.returncode == 0 else None

    result = wait_for(answer, 30, "devenv ps to answer", every=0.2)
    assert result is not None
    return [row for row in json.loads(result.stdout) if row["name"].startswith(prefix)]


def test_a_killed_temporal_server_restarted_on_its_database_loses_nothing(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    cluster.start_env("srv-idle", "--inactivity", "1h")
    cluster.start_env("srv-changed", "--inactivity", "1h")
    cluster.run("signal", "srv-changed", "--inactivity", "45m", "--max-duration", "2h")
    cluster.start_env("srv-busy", "--inactivity", "1h")
    session = cluster.open_session("srv-busy")
    try:
        session.send("echo busy-$((6*7))\n")
        session.expect("busy-42")
        wait_for(lambda: cluster.ps("srv-busy")["connections"] == 1, 10, "the user to count")
        before = rows(cluster, "srv-")
        assert len(before) == 3

        cluster.kill_temporal()
        wait_for(
            lambda: not port_open(cluster.temporal_port), 10, "the dead server's port to close"
        )
        began = time.monotonic()
        cluster.start_temporal()
        after = rows(cluster, "srv-")
        figures["fault 3: Temporal restarted -> devenv ps answers again"] = (
            f"{time.monotonic() - began:.1f}s"
        )
        assert after == before

        # The worker carried on: the monitor still sees the user leave.
        assert session.close() == 0
        wait_for(lambda: cluster.ps("srv-busy")["activity"] == "idle", 15, "the user to leave")
    finally:
        if session.process.poll() is None:
            session.process.kill()
    for name in ("srv-idle", "srv-changed", "srv-busy"):
        cluster.run("stop", name, "--wait")
        assert cluster.instance_pids(name) == []


def dev_server_children(server_pid: int) -> list[int]:
    """The `temporal server start-dev` processes whose parent is ``server_pid``."""
    return [
        pid
        for pid in pids()
        if parent(pid) == server_pid and b"start-dev" in cmdline(pid) and alive(pid)
    ]


def test_devenv_server_restarts_its_dev_server_when_it_dies(
    tmp_path: Path, figures: dict[str, str]
) -> None:
    world = Cluster(tmp_path)
    server: subprocess.Popen[bytes] | None = None
    try:
        server = world.start_server()
        world.start_env("sup-env", "--inactivity", "1h")
        before = rows(world, "sup-")
        [child] = dev_server_children(server.pid)

        world_kill = time.monotonic()
        os.kill(child, signal.SIGKILL)
        [replacement] = wait_for(
            lambda: dev_server_children(server.pid), 20, "a new dev server", every=0.1
        )
        assert replacement != child
        after = rows(world, "sup-")
        figures["fault 3: devenv server's dev server killed -> devenv ps answers again"] = (
            f"{time.monotonic() - world_kill:.1f}s"
        )
        assert after == before
        assert server.poll() is None, "devenv server itself must survive"
        log = (tmp_path / "server.out").read_text()
        assert "exited unexpectedly" in log and "restarted the Temporal dev server" in log

        # A second embedded server on another port would open the same SQLite file.
        second = world.run("server", "--temporal-port", str(free_port()), check=False)
        assert second.returncode == 2
        assert "already runs the embedded Temporal server" in second.stderr
        assert dev_server_children(server.pid) == [replacement]

        world.run("stop", "sup-env", "--wait")
        assert world.instance_pids("sup-env") == []
    finally:
        world.run("server", "stop", check=False, timeout=30)
        if server is not None and server.poll() is None:
            server.kill()
        world.teardown()


def test_two_starts_racing_to_start_the_server_run_one_dev_server(tmp_path: Path) -> None:
    """Both `devenv start` find no server and launch one in the background: the embedded
    server's lock on DEVENV_HOME lets exactly one run Temporal on the SQLite file."""
    world = Cluster(tmp_path)
    world.home.mkdir(parents=True)
    try:
        starts = [
            subprocess.Popen(
                [DEVENV, "start", str(example_file()), "--name", f"auto-{i}", "--inactivity", "1h"],
                env=world.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        for start in starts:
            _, err = start.communicate(timeout=120)
            assert start.returncode == 0, err
        assert [row["status"] for row in rows(world, "auto-")] == ["running", "running"]

        marker = f"DEVENV_HOME={world.home}".encode()

        def servers() -> list[int]:
            return [
                pid
                for pid in pids()
                if cmdline(pid).split(b"\0")[1:4] == [b"-m", b"devenv.cli", b"server"]
                and marker in environ(pid)
                and alive(pid)
            ]

        wait_for(lambda: len(servers()) == 1, 20, "the losing server to exit")
        databases = [
            pid
            for pid in pids()
            if b"start-dev" in cmdline(pid)
            and str(world.settings.server_db).encode() in cmdline(pid)
        ]
        assert len(databases) == 1, f"{len(databases)} dev servers on one SQLite file"
        for name in ("auto-0", "auto-1"):
            world.run("stop", name, "--wait")
    finally:
        world.run("server", "stop", check=False, timeout=30)
        world.teardown()
