"""Faults around the instance: it vanishes, the monitor's stream drops, a user's network dies."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from datetime import timedelta
from pathlib import Path

import pytest

from devenv.backends.local.backend import (
    KEEPALIVE_COUNT_MAX_VAR,
    KEEPALIVE_INTERVAL_VAR,
    LocalBackend,
)
from devenv.settings import Settings
from tests.faults.cluster import (
    KEEPALIVE_COUNT_MAX,
    KEEPALIVE_INTERVAL,
    Cluster,
    alive,
    cut_tcp,
    now,
    port_open,
    require_ss_kill,
    tcp_connections,
    wait_for,
    when,
)

pytestmark = pytest.mark.faults

INSTANCE_LOST_BOUND = 5.0
"""Seconds from the instance's death to `terminated (instance_lost)`: the monitor sees its
stream end at once (the kernel closes a dead process's sockets), finds the pid gone, and
the workflow terminates. A monitor between reconnects adds its backoff (at most 30 s)."""


@pytest.mark.parametrize("worker", ["running", "down"])
def test_an_instance_killed_from_outside_ends_with_instance_lost(
    cluster: Cluster, worker: str, figures: dict[str, str]
) -> None:
    name = f"lost-{worker}"
    cluster.start_env(name, "--inactivity", "1h")
    port = cluster.instance_port(name)
    [pid] = cluster.instance_pids(name)

    if worker == "down":
        cluster.kill_worker()
    killed = now()
    os.kill(pid, signal.SIGKILL)  # the machine vanishes: no SIGTERM, no cleanup of its own
    if worker == "down":
        # The instance is really gone (process and port) before any worker is back.
        wait_for(lambda: not alive(pid) and not port_open(port), 10, "the instance to vanish")
        cluster.start_worker()
    row = cluster.wait_status(name, "terminated", timeout=20)
    took = (now() - killed).total_seconds()
    figures[f"fault 5: instance kill -9 -> terminated (instance_lost), worker {worker}"] = (
        f"<= {took:.1f}s"
    )
    assert row["termination_reason"] == "instance_lost"
    bound = INSTANCE_LOST_BOUND + (1 if worker == "down" else 0)
    assert took <= bound, f"instance_lost took {took:.1f}s"
    assert not port_open(port)
    logs = cluster.logs(name)
    assert "instance lost" in logs and "terminated: instance_lost" in logs
    assert cluster.instance_pids(name) == []


def monitor_port(cluster: Cluster, instance_port: int, not_in: set[int]) -> int:
    """The local port of the worker's (the monitor's) connection to the instance."""
    assert cluster.worker is not None
    pid = cluster.worker.pid
    ports = wait_for(
        lambda: [p for p in tcp_connections(pid, instance_port) if p not in not_in],
        40,
        "the monitor to connect",
        every=0.05,
    )
    assert len(ports) == 1, f"the worker holds {len(ports)} connections to the instance"
    return ports[0]


def test_the_monitor_survives_network_blips_without_double_counting(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    """Only the monitor's TCP connection is cut: ``ss -K`` destroys that one socket in the
    kernel (the worker sees ECONNABORTED, the instance a reset), three times in a row."""
    require_ss_kill()  # fail, never skip: the guarantee needs real TCP cuts
    name = "net-blip"
    cluster.start_env(name, "--inactivity", "2s")
    port = cluster.instance_port(name)
    seen = {monitor_port(cluster, port, set())}
    session = cluster.open_session(name)
    try:
        session.send("echo blip-$((6*7))\n")
        session.expect("blip-42")
        wait_for(lambda: cluster.ps(name)["connections"] == 1, 10, "the user to count")

        gaps = []
        last = next(iter(seen))
        for _ in range(2):
            cut_tcp(last, port)
            cut = time.monotonic()
            last = monitor_port(cluster, port, seen)
            gaps.append(time.monotonic() - cut)
            seen.add(last)
        figures["fault 6: monitor reconnect delays after consecutive cuts"] = ", ".join(
            f"{gap:.2f}s" for gap in gaps
        )
        # A stream that dies right after connecting backs off: 1 s, then 2 s.
        assert [round(gap) for gap in gaps] == [1, 2], gaps

        row = cluster.ps(name)  # 3 s of blips, past the 2 s threshold: the user counts
        assert (row["status"], row["activity"], row["connections"]) == ("running", "active", 1)
        session.send("echo still-$((6*7))\n")
        session.expect("still-42")

        # The user leaves while the monitor is cut off (it reconnects in 4 s): the
        # reconnect's first report carries the moment the user left, so the 2 s
        # threshold is already exceeded when the workflow hears of it.
        cut_tcp(last, port)
        assert cluster.worker is not None
        worker_pid = cluster.worker.pid
        wait_for(lambda: tcp_connections(worker_pid, port) == [], 5, "the monitor to be cut off")
        assert session.close() == 0
        left = now()
    finally:
        if session.process.poll() is None:
            session.process.kill()
    row = cluster.wait_status(name, "terminated", timeout=20)
    assert row["termination_reason"] == "inactivity_duration_exceeded"
    events = json.loads(cluster.run("logs", name, "--json").stdout)
    [idle] = [e for e in events if e["message"].startswith("last user disconnected")]
    idle_since = idle["message"].rsplit("idle since ", 1)[1]
    assert abs(when(idle["at"]) - left).total_seconds() > 3, "heard of only after the reconnect"
    assert idle_since in (f"{left:%H:%M:%S}Z", f"{left - timedelta(seconds=1):%H:%M:%S}Z"), idle
    messages = [e["message"] for e in events]
    assert sum(m.startswith("user connected") for m in messages) == 1, messages
    assert cluster.instance_pids(name) == []


def test_a_user_whose_network_died_stops_counting_within_the_keepalive_bound(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    """SIGSTOP freezes the user's ssh client: its TCP connection stays open (the kernel
    still acks), but nothing answers the server's keepalives any more."""
    name = "ghost-user"
    cluster.start_env(name, "--inactivity", "2s")
    session = cluster.open_session(name)
    try:
        session.send("echo ghost-$((6*7))\n")
        session.expect("ghost-42")
        wait_for(lambda: cluster.ps(name)["connections"] == 1, 10, "the user to count")

        session.process.send_signal(signal.SIGSTOP)
        frozen = time.monotonic()
        wait_for(
            lambda: cluster.ps(name)["connections"] == 0, 20, "the silent user to stop counting"
        )
        ghost = time.monotonic() - frozen
        figures[
            f"fault 7: SIGSTOPped ssh client counted for (keepalive {KEEPALIVE_INTERVAL}s"
            f" x {KEEPALIVE_COUNT_MAX})"
        ] = f"{ghost:.2f}s"
        bound = float(KEEPALIVE_INTERVAL) * (int(KEEPALIVE_COUNT_MAX) + 1) + 1.5
        assert ghost <= bound, f"a dead connection counted for {ghost:.1f}s (bound {bound}s)"
        row = cluster.wait_status(name, "terminated", timeout=15)
        assert row["termination_reason"] == "inactivity_duration_exceeded"
        assert re.search(r"last user disconnected", cluster.logs(name))
    finally:
        session.process.send_signal(signal.SIGCONT)
        session.process.kill()
        session.process.wait(10)
    assert cluster.instance_pids(name) == []


def test_production_keepalive_bounds_a_dead_user_to_a_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What the README promises: asyncssh gives up when keepalive count_max + 1 is due."""
    monkeypatch.delenv(KEEPALIVE_INTERVAL_VAR, raising=False)
    monkeypatch.delenv(KEEPALIVE_COUNT_MAX_VAR, raising=False)
    settings = Settings(home=tmp_path, address="127.0.0.1:7233", namespace="default")
    backend = LocalBackend.for_worker(settings)
    assert backend.keepalive_interval * (backend.keepalive_count_max + 1) == 60
