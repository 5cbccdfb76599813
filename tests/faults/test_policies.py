"""An admin's policy through the CLI, on a real deployment (Temporal and a worker as
processes of their own): running environments brought within it at once and told so,
starts and changes outside it refused with one line, the user's own choice given back
when the bound rises, and the policy kept across kill -9 of Temporal and the worker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from devenv.activities.policy_fanout import PolicyActivities
from devenv.models.policy import FanOutResult, PolicyStatus
from devenv.worker.temporal_connection import connect
from tests.faults.cluster import Cluster, example_file, port_open, wait_for

pytestmark = pytest.mark.faults

H = 3600
REFUSED_START = (
    "inactivity_duration: 12h exceeds the policy's max-inactivity 8h "
    "(set by an admin for everyone; devenv policy show)"
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A deployment of its own: a policy for everyone must not bind other tests."""
    cluster = Cluster(tmp_path_factory.mktemp("policies"))
    try:
        cluster.ensure_up()
        yield cluster
    finally:
        cluster.teardown()


def show(world: Cluster) -> dict[str, Any]:
    return dict(json.loads(world.run("policy", "show", "--json").stdout))


def test_a_policy_binds_running_environments_and_refuses_what_is_outside_it(
    world: Cluster, tmp_path: Path
) -> None:
    world.start_env("pol-long", "--inactivity", "12h")
    world.start_env("pol-short", "--inactivity", "4h")

    answer = world.run("policy", "set", "--max-inactivity", "8h", "--default-inactivity", "2h")
    assert "policy for everyone: default-inactivity 2h, max-inactivity 8h (version 1)" in (
        answer.stdout
    )
    assert "reached all 2 running environment(s); 1 changed" in answer.stdout
    assert world.ps("pol-long")["inactivity_duration"] == 8 * H
    assert world.ps("pol-short")["inactivity_duration"] == 4 * H
    assert (
        "inactivity threshold lowered from 12h to 8h by policy (max-inactivity 8h)"
        in world.logs("pol-long")
    )

    # A start outside it: one line, exit 2, nothing created.
    refused = world.run(
        "start", str(example_file()), "--name", "pol-refused", "--inactivity", "12h", check=False
    )
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr.strip() == f"error: {REFUSED_START}"
    listed = json.loads(world.run("ps", "--all", "--json").stdout)
    assert "pol-refused" not in [row["name"] for row in listed]

    # A start that gives no threshold gets the policy's default.
    config = tmp_path / "bare.yml"
    config.write_text("type: dev-environment\nbackend: local\n")
    world.run("start", str(config), "--name", "pol-default")
    assert world.ps("pol-default")["inactivity_duration"] == 2 * H

    # A change outside it: one line, exit 2, unchanged.
    changed = world.run("signal", "pol-short", "--inactivity", "off", check=False)
    assert changed.returncode == 2
    assert "inactivity_duration: off is refused by the policy's max-inactivity 8h" in (
        changed.stderr
    )
    assert len(changed.stderr.strip().splitlines()) == 1
    assert world.ps("pol-short")["inactivity_duration"] == 4 * H

    # Raising the bound gives back what the user asked for, never more.
    world.run("policy", "set", "--max-inactivity", "24h")
    assert world.ps("pol-long")["inactivity_duration"] == 12 * H
    assert world.ps("pol-short")["inactivity_duration"] == 4 * H

    # A daily stop becomes each one's fixed end (the next one), and is removed again.
    at = (datetime.now(UTC) + timedelta(hours=2)).strftime("%H:%M")
    world.run("policy", "set", "--stop-at-daily", at, "--tz", "UTC")
    due = datetime.fromisoformat(world.ps("pol-long")["deadline"])
    assert due.strftime("%H:%M") == at and due - datetime.now(UTC) < timedelta(hours=2)
    assert f"by policy (stop-at-daily {at} UTC)" in world.logs("pol-long")
    bad = world.run("policy", "set", "--stop-at-daily", "8pm", check=False)
    assert (bad.returncode, bad.stderr.strip()) == (
        2,
        "error: stop-at-daily: '8pm' is not a time of day; accepted: HH:MM such as 20:00",
    )
    world.run("policy", "set", "--stop-at-daily", "off", "--tz", "off")
    assert "scheduled stop removed by policy" in world.logs("pol-long")


def test_a_fan_out_sent_again_applies_nothing_twice(world: Cluster) -> None:
    """What a retried fan-out does (its worker killed after it sent some): the same
    version again is refused by every environment that has it, and records nothing."""
    status = PolicyStatus.model_validate(show(world))
    reached = status.reached
    assert reached is not None and reached.version == status.policies.version
    events_before = world.logs("pol-long").count("by policy")

    async def again() -> FanOutResult:
        client = await connect(world.settings)
        return await ActivityEnvironment().run(
            PolicyActivities(client).fan_out_policy, status.policies
        )

    result = asyncio.run(again())
    assert (result.changed, result.already) == (0, reached.environments)
    assert world.logs("pol-long").count("by policy") == events_before


def test_the_policy_survives_kill_9_of_temporal_and_the_worker(world: Cluster) -> None:
    world.run("policy", "set", "--user", "alice", "--max-duration", "1d", "--no-off")
    before = show(world)
    assert before["policies"]["users"]["alice"]["no_off"] is True

    world.kill_worker()
    world.kill_temporal()
    wait_for(lambda: not port_open(world.temporal_port), 10, "the dead server's port to close")
    world.ensure_up()

    after = show(world)
    assert after["policies"] == before["policies"]
    refused = world.run(
        "start", str(example_file()), "--name", "pol-after", "--inactivity", "2d", check=False
    )
    assert refused.returncode == 2 and "exceeds the policy's max-inactivity 1d" in refused.stderr

    cleared = world.run("policy", "clear")
    assert "policy for everyone: none" in cleared.stdout
    world.run("policy", "clear", "--user", "alice")
    assert set(show(world)["policies"]["everyone"].values()) == {None}
    assert show(world)["policies"]["users"] == {}
