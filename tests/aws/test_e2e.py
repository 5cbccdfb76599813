"""``backend: aws`` end to end, as a user lives it: the `devenv` CLI, `ssh`, moto and sshd.

A private devenv world (its own home and embedded Temporal server) whose worker talks
to the moto server over HTTP on loopback; each instance's machine is a real sshd
booted from the user data devenv generated (see ``conftest.Booter``).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.backends.ssh.host_setup import account_name
from tests.aws.conftest import REGION, Booter, MotoServer, booting
from tests.e2e.harness import Devenv, serving, wait_for
from tests.ssh.conftest import until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("aws_env")]


class World:
    def __init__(self, devenv: Devenv, booter: Booter, moto: MotoServer) -> None:
        self.devenv = devenv
        self.booter = booter
        self.moto = moto

    def config(self, directory: Path, **section: Any) -> tuple[str, Path]:
        name = f"awse-{secrets.token_hex(4)}"
        aws: dict[str, Any] = {
            "region": REGION,
            "instance_type": "g5.xlarge",
            "image": "amazon-linux-2023",
            "allow_ssh_from": ["203.0.113.7/32"],
            "ssh_user": "root",
            "ssh_endpoint": self.booter.endpoint,
            "ready_timeout": "2m",
        }
        aws.update(section)
        doc = {
            "type": "dev-environment",
            "name": name,
            "backend": "aws",
            "aws": aws,
            "inactivity_duration": "2h",
        }
        path = directory / f"{name}.yml"
        path.write_text(yaml.safe_dump(doc))
        return name, path

    def instance(self, instance_id: str) -> dict[str, Any]:
        found = self.moto.client().describe_instances(InstanceIds=[instance_id])
        return dict(found["Reservations"][0]["Instances"][0])

    def instances_named(self, name: str) -> list[dict[str, Any]]:
        found = self.moto.client().describe_instances(
            Filters=[{"Name": "tag:devenv:name", "Values": [name]}]
        )
        return [i for r in found["Reservations"] for i in r["Instances"]]

    def logs(self, name: str) -> str:
        return self.devenv.run("logs", name, check=False).stdout

    def until_status(self, name: str, status: str, timeout: float = 60) -> dict[str, Any]:
        try:
            return wait_for(
                lambda: (row := self.devenv.ps(name))["status"] == status and row,
                timeout,
                f"{name} {status}",
            )
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; its events:\n{self.logs(name)}") from None


@pytest.fixture(scope="module")
def world(
    moto: MotoServer, aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    markers = tmp_path_factory.mktemp("aws-e2e-markers")
    with booting(moto) as booter:
        devenv = Devenv(
            tmp_path_factory.mktemp("aws-e2e"),
            extra_env={
                **aws_env,
                "DEVENV_SSH_HOST_DIR": str(booter.host_dir),
                "DEVENV_AWS_FAILSAFE_ACTION": f"touch {markers}/shutdown",
                "DEVENV_API_PORT": "0",
            },
        )
        with serving(devenv):
            yield World(devenv, booter, moto)


def test_an_ec2_environment_starts_is_used_costs_and_stops_leaving_nothing_running(
    world: World, tmp_path: Path
) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    started = devenv.run("start", str(path))
    assert name in started.stdout, started.stdout
    row = devenv.ps(name)
    assert (row["status"], row["backend"]) == ("running", "aws")
    assert row["price_per_hour"] > 0 and row["cost"] is not None
    [instance] = world.instances_named(name)
    assert instance["State"]["Name"] == "running"
    assert instance["InstanceType"] == "g5.xlarge"

    # The user's own ssh, through the config devenv wrote, pinned to the generated host key.
    who = devenv.ssh(name, "id -un")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == account_name(name)
    table = devenv.run("ps").stdout
    assert name in table and "$" in table

    logs = world.logs(name)
    assert f"instance {instance['InstanceId']} ready at" in logs

    # The machine's failsafe always holds the thresholds now in force: raised to 12h,
    # it must never end the machine after the 2h it was started with.
    policy_file = world.booter.host_dir / "failsafe" / f"{account_name(name)}.json"
    wait_for(
        lambda: json.loads(policy_file.read_text())["inactivity_seconds"] == 7200,
        20,
        "the first policy",
    )
    devenv.run("signal", name, "--inactivity", "12h")
    wait_for(
        lambda: json.loads(policy_file.read_text())["inactivity_seconds"] == 12 * 3600,
        20,
        "the raised threshold on the machine",
    )
    assert json.loads(policy_file.read_text())["failsafe_after_seconds"] == 12 * 3600

    devenv.run("stop", name, "--wait")
    assert world.instance(instance["InstanceId"])["State"]["Name"] == "terminated"
    assert devenv.ps(name)["status"] == "terminated"


def test_an_instance_terminated_from_the_console_ends_as_instance_lost_with_the_cause(
    world: World, tmp_path: Path
) -> None:
    name, path = world.config(tmp_path, spot=True)
    world.devenv.run("start", str(path))
    [instance] = world.instances_named(name)
    world.moto.client().terminate_instances(InstanceIds=[instance["InstanceId"]])
    row = world.until_status(name, "terminated")
    assert row["termination_reason"] == "instance_lost"
    logs = world.logs(name)
    assert f"EC2 instance {instance['InstanceId']} is" in logs, logs


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"region": "eu-wset-1"}, "aws.region: invalid value 'eu-wset-1'"),
        ({"instance_type": "g5"}, "aws.instance_type: invalid value 'g5'"),
        ({"allow_ssh_from": ["0.0.0.1/0"]}, "aws.allow_ssh_from"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(
    world: World, tmp_path: Path, section: dict[str, Any], expected: str
) -> None:
    name, path = world.config(tmp_path, **section)
    result = world.devenv.run("start", str(path), check=False)
    assert result.returncode == 2, result
    assert expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not world.instances_named(name)
    rows = json.loads(world.devenv.run("ps", "--json").stdout)
    assert all(row["name"] != name for row in rows)


def test_an_instance_type_the_region_lacks_fails_the_start_in_one_line_and_leaks_nothing(
    world: World, tmp_path: Path
) -> None:
    name, path = world.config(tmp_path, instance_type="g5.xlargee")
    result = world.devenv.run("start", str(path), check=False)
    assert result.returncode == 2, result
    assert "aws.instance_type: 'g5.xlargee' is not offered in eu-west-1" in result.stderr
    assert not world.instances_named(name)
    assert world.devenv.ps(name)["status"] == "failed"


async def test_a_slow_provision_says_what_it_is_waiting_for(world: World, tmp_path: Path) -> None:
    from devenv.client.async_client import AsyncClient

    name, path = world.config(tmp_path)
    world.booter.paused = True  # the machine boots slowly: SSH does not answer yet
    try:
        world.devenv.run("start", str(path), "--detach")
        client = AsyncClient(
            address=f"127.0.0.1:{world.devenv.temporal_port}", home=world.devenv.home
        )
        env = await client.get(name)
        said: list[str] = []
        waiting = asyncio.create_task(env.wait_ready(progress=lambda text, _: said.append(text)))
        await until(lambda: any("waiting for SSH" in text for text in said), "the step", 30)
    finally:
        world.booter.paused = False
    try:
        ready = await asyncio.wait_for(waiting, 60)
        assert ready.status == "running"
        step = next(text for text in said if "waiting for SSH" in text)
        assert step.startswith(f"Provisioning {name}… waiting for SSH on i-")
        assert world.booter.endpoint in step
    finally:  # machines share the booter's port: the next test's must not meet this one
        world.devenv.run("stop", name, "--wait")


def test_gc_terminates_a_planted_orphan_and_spares_the_live_environment(
    world: World, tmp_path: Path
) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    [live] = world.instances_named(name)
    ec2 = world.moto.client()
    orphan = world.moto.plant("t-forgotten")
    stranger = world.moto.plant()
    try:
        listed = json.loads(devenv.run("gc", "--json").stdout)
        by_id = {row["id"]: row for row in listed["leftovers"]}
        assert by_id[orphan]["status"] == "orphan" and by_id[orphan]["where"] == REGION
        assert by_id[live["InstanceId"]]["status"] == "live"
        assert stranger not in by_id
        table = devenv.run("gc").stdout
        assert orphan in table and "devenv gc --yes" in table

        devenv.run("gc", "--yes")
        assert world.instance(orphan)["State"]["Name"] == "terminated"
        assert world.instance(stranger)["State"]["Name"] == "running"
        assert world.instance(live["InstanceId"])["State"]["Name"] == "running"
        assert devenv.ssh(name, "true").returncode == 0
    finally:
        ec2.terminate_instances(InstanceIds=[orphan, stranger])
        devenv.run("stop", name, "--wait", check=False)


class NoCredentials(Devenv):
    """A world whose worker has no AWS credentials at all."""

    @property
    def env(self) -> dict[str, str]:
        env = super().env
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            env.pop(key, None)
        return env


def test_a_start_without_credentials_is_listed_as_ended_never_terminating(
    moto: MotoServer, aws_env: dict[str, str], tmp_path: Path
) -> None:
    """It stayed ``terminating … provisioning_failed`` in ``ps --all`` for ever while
    Temporal showed the workflow Failed: a closed workflow is never shown as alive."""
    devenv = NoCredentials(tmp_path / "world", extra_env={**aws_env, "DEVENV_API_PORT": "0"})
    with serving(devenv):
        name = f"awsnc-{secrets.token_hex(4)}"
        path = tmp_path / f"{name}.yml"
        doc = {
            "type": "dev-environment",
            "name": name,
            "backend": "aws",
            "aws": {
                "region": REGION,
                "instance_type": "t3.micro",
                "image": "amazon-linux-2023",
                "allow_ssh_from": ["203.0.113.7/32"],
            },
            "inactivity_duration": "2h",
        }
        path.write_text(yaml.safe_dump(doc))
        started = devenv.run("start", str(path), check=False)
        assert started.returncode != 0
        assert "credentials" in started.stderr

        def ended() -> dict[str, Any] | None:
            rows = json.loads(devenv.run("ps", "--all", "--json").stdout)
            row = next(r for r in rows if r["name"] == name)
            return row if row["status"] in ("failed", "terminated") else None

        row = wait_for(ended, 30, f"{name} listed as ended")
        assert row["status"] == "failed" and row["deadline"] is None
        assert str(row["termination_reason"]).startswith("provisioning_failed")
        plain = json.loads(devenv.run("ps", "--json").stdout)
        assert name not in [r["name"] for r in plain]
