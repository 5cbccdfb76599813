"""kill -9 of the worker: no deadline moves, no instance is doubled, lost or leaked.

The worker is `devenv server --worker-only`, a process of its own next to the
Temporal dev server (see cluster.py), killed with SIGKILL and started again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.faults.cluster import (
    Cluster,
    closes_at,
    example_file,
    now,
    port_open,
    wait_for,
    when,
)

pytestmark = pytest.mark.faults

LATE_TOLERANCE = 1.5
"""Seconds an environment may end after its deadline: the ~1 s promise plus CI jitter."""


def test_a_worker_back_before_the_deadline_keeps_the_original_deadline(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    row = cluster.start_env("wk-early", "--inactivity", "6s")
    deadline = when(row["deadline"])
    port = cluster.instance_port("wk-early")

    cluster.kill_worker()
    time.sleep(1)  # on purpose: an outage, not just a restart (checked: deadline unmoved)
    restart = cluster.start_worker()
    figures["worker restart (process start to polling both queues)"] = f"{restart:.2f}s"
    assert now() < deadline, "the worker must be back before the deadline for this test"
    assert cluster.ps("wk-early")["deadline"] == row["deadline"]

    closed = closes_at(port, timeout=15)
    late = (closed - deadline).total_seconds()
    figures["fault 1: port closed after the original deadline"] = f"{late:+.2f}s"
    assert -0.2 < late <= LATE_TOLERANCE, f"closed {late:.2f}s after the deadline"
    ended = cluster.ps("wk-early")
    assert (ended["status"], ended["termination_reason"]) == (
        "terminated",
        "inactivity_duration_exceeded",
    )
    assert cluster.instance_pids("wk-early") == []


def test_a_worker_down_across_the_deadline_terminates_the_overdue_environment_on_restart(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    row = cluster.start_env("wk-down", "--inactivity", "2s")
    deadline = when(row["deadline"])
    port = cluster.instance_port("wk-down")

    cluster.kill_worker()
    wait_for(lambda: now() > deadline, 10, "the deadline to pass")
    time.sleep(2)  # on purpose: 2 s overdue with no worker; nothing may end it meanwhile
    assert port_open(port), "with the worker down nothing may terminate the instance"

    began = now()
    cluster.start_worker()
    closed = closes_at(port, timeout=15)
    delay = (closed - began).total_seconds()
    figures["fault 2: worker started again -> overdue instance's port closed"] = f"{delay:.2f}s"
    assert delay <= 3.0, f"terminated {delay:.2f}s after the worker was started again"
    ended = cluster.ps("wk-down")
    assert (ended["status"], ended["termination_reason"]) == (
        "terminated",
        "inactivity_duration_exceeded",
    )
    assert cluster.instance_pids("wk-down") == []


@contextmanager
def most_instances(cluster: Cluster, name: str) -> Iterator[list[int]]:
    """Samples the number of instance processes of ``name`` every 20 ms; yields [max]."""
    most = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            most[0] = max(most[0], len(cluster.instance_pids(name)))
            time.sleep(0.02)  # the sampling period, not a wait for anything

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield most
    finally:
        done.set()
        sampler.join(5)


@pytest.mark.parametrize("moment", ["detach-returned", "instance-starting"])
def test_a_worker_killed_while_provisioning_leaves_exactly_one_instance(
    cluster: Cluster, moment: str, figures: dict[str, str]
) -> None:
    name = f"wk-prov-{moment.split('-')[0]}"
    instances = cluster.home / "envs" / name / "instances"
    with most_instances(cluster, name) as most:
        cluster.run("start", str(example_file()), "--name", name, "--inactivity", "1h", "--detach")
        if moment == "instance-starting":
            # The instance process exists but has not announced readiness: the
            # provision attempt is in the middle of waiting for it.
            wait_for(lambda: list(instances.glob("*/server.pid")), 10, "the instance pidfile")
        cluster.kill_worker()
        at_kill = list(instances.glob("*/ready.json"))
        cluster.start_worker()
        began = time.monotonic()
        row = cluster.wait_status(name, "running", timeout=30)
        figures[f"fault 4: worker killed ({moment}) -> running after restart"] = (
            f"{time.monotonic() - began:.1f}s"
        )
        pids = cluster.instance_pids(name)
        port = cluster.ready_port(name)
    assert len(pids) == 1, f"instance processes after recovery: {pids}"
    assert most[0] == 1, f"at some point {most[0]} instance processes ran"
    if moment == "instance-starting":
        assert at_kill == [], "the kill was meant to land before the instance was ready"
    assert row["connections"] == 0
    assert port_open(port)

    cluster.run("stop", name, "--wait")
    assert cluster.instance_pids(name) == []
    assert not port_open(port)


def test_a_worker_killed_while_terminating_finishes_the_termination(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    cluster.start_env("wk-term", "--inactivity", "1h")
    port = cluster.instance_port("wk-term")

    cluster.run("stop", "wk-term")
    cluster.kill_worker()
    cluster.start_worker()
    began = time.monotonic()
    row = cluster.wait_status("wk-term", "terminated", timeout=20)
    figures["fault 4: worker killed (stop returned) -> terminated after restart"] = (
        f"{time.monotonic() - began:.1f}s"
    )
    assert row["termination_reason"] == "stopped_by_user"
    assert not port_open(port)
    assert cluster.instance_pids("wk-term") == []
    assert "terminated: stopped_by_user" in cluster.logs("wk-term")


def test_a_restarted_worker_sees_users_who_connected_while_it_was_down(
    cluster: Cluster, figures: dict[str, str]
) -> None:
    """The blind window after a worker crash: the dead worker's monitor attempt is failed
    by the next worker at once (not after the 30 s heartbeat timeout), so the user who
    connected meanwhile is seen within a couple of seconds of the restart."""
    name = "wk-blind"
    cluster.start_env(name, "--inactivity", "1h")
    cluster.kill_worker()
    session = cluster.open_session(name)
    try:
        session.send("echo blind-$((6*7))\n")
        session.expect("blind-42")
        cluster.start_worker()
        began = time.monotonic()
        wait_for(lambda: cluster.ps(name)["connections"] == 1, 40, "the user to be seen")
        blind = time.monotonic() - began
        figures["weak spot: worker restarted -> a user connected meanwhile is seen"] = (
            f"{blind:.1f}s"
        )
        assert blind <= 5.0, f"the user was invisible for {blind:.1f}s after the restart"
        assert session.close() == 0
    finally:
        if session.process.poll() is None:
            session.process.kill()
    cluster.run("stop", name, "--wait")


def test_a_user_who_connected_while_the_worker_was_down_is_not_terminated(
    cluster: Cluster,
) -> None:
    """The overdue timer is the first thing the restarted worker runs, before its monitor
    is back: the workflow's `probe` of the instance finds the user and keeps it up."""
    name = "wk-probe"
    row = cluster.start_env(name, "--inactivity", "2s")
    deadline = when(row["deadline"])
    cluster.kill_worker()
    session = cluster.open_session(name)
    try:
        session.send("echo probe-$((6*7))\n")
        session.expect("probe-42")
        # Past the deadline and the sticky timeout: the timer's task waits on the shared
        # queue and is the first thing the restarted worker runs, before its monitor.
        wait_for(lambda: (now() - deadline).total_seconds() > 3, 10, "the deadline to pass")
        cluster.start_worker()
        # The probe of the overdue timer, not the monitor, must be what saw the user.
        wait_for(lambda: "staying up" in cluster.logs(name), 15, "the probe to keep it up")
        row = cluster.ps(name)
        assert (row["status"], row["connections"]) == ("running", 1), row
        assert session.process.poll() is None, "the user's session was cut"
        assert "terminat" not in cluster.logs(name)
    finally:
        if session.process.poll() is None:
            session.process.kill()
        cluster.run("stop", name, "--wait", check=False)
