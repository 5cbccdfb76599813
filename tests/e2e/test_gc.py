"""`devenv gc`: leftovers of environments whose workflow is gone are found and removed;
a running environment's instance is never touched.

Orphans are planted as they happen for real: an environment's workflow terminated from
Temporal directly (no cleanup ran), and one whose name was then started again (a new
instance of the same workflow id; the old one is still an orphan).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

import devenv as sdk
from devenv.backends.local import proctools
from tests.e2e.harness import Devenv, wait_for

pytestmark = pytest.mark.e2e

ITEM_KEYS = {
    "backend",
    "id",
    "where",
    "name",
    "workflow_id",
    "instance_token",
    "detail",
    "status",
    "reason",
}


@dataclass(frozen=True)
class Instance:
    name: str
    token: str
    pid: int


def instances(world: Devenv, name: str) -> dict[str, Instance]:
    """Every instance of ``name`` that has run, by token (its server's pid from ready.json)."""
    found = {}
    for folder in (world.home / "envs" / name / "instances").iterdir():
        ready = folder / "ready.json"
        if ready.exists():
            found[folder.name] = Instance(name, folder.name, json.loads(ready.read_text())["pid"])
    return found


def only_instance(world: Devenv, name: str) -> Instance:
    (instance,) = instances(world, name).values()
    return instance


async def terminate_workflows(world: Devenv, names: list[str]) -> None:
    """End workflows from Temporal itself: no terminate activity runs, instances stay."""
    client = await Client.connect(f"127.0.0.1:{world.temporal_port}")
    for name in names:
        await client.get_workflow_handle(f"devenv-{name}").terminate(reason="test: lost")


def gc_json(world: Devenv, *args: str) -> dict[str, list[dict[str, object]]]:
    report = json.loads(world.run("gc", "--json", *args).stdout)
    assert set(report) == {"leftovers", "removed", "warnings"}
    return dict(report)


def by_token(items: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {item["instance_token"]: item for item in items}


def start(world: Devenv, example: Path, name: str) -> None:
    world.run("start", str(example), "--name", name, "--inactivity", "1h", "--max-duration", "off")


def test_gc_removes_only_what_no_running_environment_owns(devenv: Devenv, example: Path) -> None:
    live, reborn, dead = "gc-live", "gc-reborn", "gc-dead"
    planted: list[Instance] = []
    try:
        for name in (live, reborn, dead):
            start(devenv, example, name)
        live_one = only_instance(devenv, live)
        old_reborn, dead_one = only_instance(devenv, reborn), only_instance(devenv, dead)
        planted += [old_reborn, dead_one]
        asyncio.run(terminate_workflows(devenv, [reborn, dead]))
        start(devenv, example, reborn)  # same name, same workflow id, a new instance
        (new_reborn,) = (i for t, i in instances(devenv, reborn).items() if t != old_reborn.token)
        assert proctools.is_running(old_reborn.pid) and proctools.is_running(dead_one.pid)

        # --json: the shape, and each instance classified by its token.
        report = gc_json(devenv)
        assert report["removed"] == [] and report["warnings"] == []
        for item in report["leftovers"]:
            assert set(item) == ITEM_KEYS, item
        found = by_token(report["leftovers"])
        for instance, status in (
            (dead_one, "orphan"),
            (old_reborn, "orphan"),
            (live_one, "live"),
            (new_reborn, "live"),
        ):
            item = found[instance.token]
            assert (item["backend"], item["status"], item["id"]) == (
                "local",
                status,
                str(instance.pid),
            ), item
            assert (item["name"], item["workflow_id"]) == (instance.name, f"devenv-{instance.name}")
        assert found[dead_one.token]["reason"] == "its workflow is terminated"
        assert found[old_reborn.token]["reason"] == "its environment runs another instance now"
        assert found[live_one.token]["reason"] == "its environment is running"

        # The table, the summary and the hint; nothing is removed without --yes.
        listed = devenv.run("gc")
        lines = listed.stdout.splitlines()
        assert lines[0].split() == ["BACKEND", "ID", "WHERE", "NAME", "STATUS", "DETAIL"]
        row = next(line for line in lines if line.split()[1:2] == [str(dead_one.pid)])
        assert row.split()[:5] == ["local", str(dead_one.pid), row.split()[2], dead, "orphan"]
        row = next(line for line in lines if line.split()[1:2] == [str(live_one.pid)])
        assert row.split()[3:5] == [live, "live"]
        orphans = sum(item["status"] == "orphan" for item in report["leftovers"])
        assert f"{orphans} orphan" in lines[-2], listed.stdout
        assert lines[-1] == f"run `devenv gc --yes` to terminate {orphans} orphans"
        assert proctools.is_running(dead_one.pid) and proctools.is_running(old_reborn.pid)

        # --yes: the orphans end, with a line each; the live environments are untouched.
        removed = devenv.run("gc", "--yes")
        for instance in (dead_one, old_reborn):
            assert f"terminated local {instance.pid} on " in removed.stdout, removed.stdout
            assert f"({instance.name})" in removed.stdout
            wait_for(lambda i=instance: not proctools.is_running(i.pid), 10, "the orphan to end")
        assert f"Terminated {orphans} of {orphans} orphans." in removed.stdout
        for instance in (live_one, new_reborn):
            assert f"terminated local {instance.pid} " not in removed.stdout
            assert proctools.is_running(instance.pid)
            assert devenv.ps(instance.name)["status"] == "running"
            answer = devenv.ssh(instance.name, "echo", "still-here")
            assert (answer.returncode, answer.stdout.strip()) == (0, "still-here"), answer.stderr

        # Afterwards: nothing of ours is an orphan; the SDK sees what the CLI sees.
        after = by_token(gc_json(devenv)["leftovers"])
        assert dead_one.token not in after and old_reborn.token not in after
        assert after[live_one.token]["status"] == "live"
        client = sdk.Client(address=f"127.0.0.1:{devenv.temporal_port}", home=devenv.home)
        sdk_report = client.gc()
        assert {item.instance_token: item.status for item in sdk_report.leftovers}[
            new_reborn.token
        ] == "live"
        assert not [item for item in sdk_report.orphans if item.name in (live, reborn, dead)]
    finally:
        for instance in planted:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if proctools.is_running(instance.pid):
                    os.killpg(instance.pid, signal.SIGKILL)
        for name in (live, reborn):
            devenv.run("stop", name, "--wait", check=False, timeout=60)


def test_an_environment_that_ended_normally_leaves_nothing_for_gc(
    devenv: Devenv, example: Path
) -> None:
    """Its terminate ran: no row for it, and `gc --yes --json` removes nothing of it."""
    name = "gc-clean"
    start(devenv, example, name)
    instance = only_instance(devenv, name)
    devenv.run("stop", name, "--wait")
    assert not proctools.is_running(instance.pid)
    report = gc_json(devenv, "--yes")
    assert instance.token not in by_token(report["leftovers"])
    assert instance.token not in by_token(report["removed"])
