"""Suspend and resume on ``backend: aws`` as a user lives it: the `devenv` CLI, `ssh`,
moto over HTTP on loopback and the booted sshd behind each instance (never moto's
invented addresses). StopInstances keeps the disk, StartInstances brings it back:
a user's file survives an idle suspension and a resume, and ``delete_after`` ends a
suspended one after its warning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.aws.test_e2e import World, world  # noqa: F401 (the fixture)
from tests.e2e.harness import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("aws_env")]


def configured(world: World, directory: Path, **top: Any) -> tuple[str, Path]:  # noqa: F811
    name, path = world.config(directory)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, **top}))
    return name, path


class Transcript:
    """The CLI session as a user sees it (printed: ``pytest -s`` shows it)."""

    def __init__(self, world: World) -> None:  # noqa: F811
        self.devenv = world.devenv

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = self.devenv.run(*argv, check=check)
        shown = " ".join(Path(a).name if a.endswith(".yml") else a for a in argv)
        print(f"$ devenv {shown}\n{done.stdout}{done.stderr}", end="", flush=True)
        return done


def test_a_users_file_survives_an_idle_suspension_and_a_resume_on_aws(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    devenv = world.devenv
    cli = Transcript(world)
    name, path = configured(world, tmp_path, inactivity_duration="5s", on_idle="suspend")
    cli.run("start", str(path))
    [instance] = world.instances_named(name)
    instance_id = instance["InstanceId"]
    wrote = devenv.ssh(name, "echo unpushed > notes.txt && echo ok")
    assert wrote.stdout == "ok\n", wrote.stderr
    cli.run("ps")

    row = world.until_status(name, "suspended")
    assert row["suspend_reason"] == "idle for 5s (on_idle: suspend)"
    assert world.instance(instance_id)["State"]["Name"] == "stopped", "StopInstances, kept"
    refused = devenv.ssh(name, "true")
    assert refused.returncode == 255, "nothing answers while the machine is stopped"
    assert "suspending: idle for 5s (on_idle: suspend)" in world.logs(name)
    # While suspended it costs its volumes, listed apart from the running cost.
    [listed] = [r for r in json.loads(cli.run("ps", "--json").stdout) if r["name"] == name]
    assert 0 < listed["storage_price_per_hour"] < listed["price_per_hour"]
    assert listed["storage_cost"] is not None and listed["suspension_saved"] is not None
    assert " storage" in cli.run("ps").stdout
    detail = cli.run("ps", name, "-v").stdout
    assert "running; suspension saved $" in detail and "storage $" in detail

    resumed = cli.run("resume", name)
    assert f"{name} is running again" in resumed.stdout
    assert world.instance(instance_id)["State"]["Name"] == "running"
    read = devenv.ssh(name, "cat notes.txt")
    assert read.returncode == 0 and read.stdout == "unpushed\n", read.stderr
    assert world.booter.machines[instance_id].boots == 2, "the same instance, booted again"

    cli.run("stop", name, "--wait")
    assert world.instance(instance_id)["State"]["Name"] == "terminated"
    assert devenv.ps(name)["status"] == "terminated"
    cli.run("ps", "--all")
    cli.run("logs", name)


def test_suspend_wait_and_resume_on_aws(world: World, tmp_path: Path) -> None:  # noqa: F811
    devenv = world.devenv
    name, path = configured(world, tmp_path)
    devenv.run("start", str(path))
    [instance] = world.instances_named(name)
    instance_id = instance["InstanceId"]
    assert devenv.ssh(name, "echo mine > kept.txt").returncode == 0

    suspended = devenv.run("suspend", name, "--wait")
    assert name in suspended.stdout and "suspended" in suspended.stdout, suspended.stdout
    assert devenv.ps(name)["status"] == "suspended"
    assert world.instance(instance_id)["State"]["Name"] == "stopped"

    devenv.run("resume", name)
    assert world.instance(instance_id)["State"]["Name"] == "running"
    assert devenv.ssh(name, "cat kept.txt").stdout == "mine\n"
    devenv.run("stop", name, "--wait")
    assert world.instance(instance_id)["State"]["Name"] == "terminated"


def test_delete_after_ends_a_suspended_aws_environment_after_its_warning(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    devenv = world.devenv
    name, path = configured(
        world,
        tmp_path,
        inactivity_duration="3s",
        on_idle="suspend",
        delete_after="20s",
        warn_before="5s",
    )
    devenv.run("start", str(path))
    [instance] = world.instances_named(name)
    instance_id = instance["InstanceId"]
    world.until_status(name, "suspended")
    assert world.instance(instance_id)["State"]["Name"] == "stopped"

    row = world.until_status(name, "terminated", timeout=60)
    assert row["termination_reason"] == "delete_after_exceeded"
    assert world.instance(instance_id)["State"]["Name"] == "terminated"
    events = json.loads(devenv.run("logs", name, "--json").stdout)
    words = [e["message"] for e in events]
    warned = [i for i, m in enumerate(words) if m.startswith("warning:")]
    ended = [i for i, m in enumerate(words) if m.startswith("terminated:")]
    assert warned and ended and warned[-1] < ended[0], words
    assert f"devenv resume {name}" in words[warned[-1]], words
    assert " running; suspension saved $" in words[warned[-1]], "storage vs running, saved"
    assert words[warned[0]].startswith(f"warning: {name} is suspended (files kept) at "), words
    print("\n".join(f"{e['at']}  {e['message']}" for e in events))
    wait_for(lambda: instance_id not in world.booter.machines, 10, "the machine gone")
