"""The aws backend against the moto server over HTTP, its machines played by real sshd.

Each test provisions as the worker does, then checks what a user relies on: one
instance per environment run even when provisioning is retried, the host key pinned
from the start, nothing left running after a failure, a clear line for every
mistake, a lost instance told apart from a network blip, and a machine that ends
itself once no control plane reads it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from devenv.backends.aws.backend import AwsBackend, AwsInstanceData
from devenv.backends.aws.prices import hourly_price
from devenv.backends.base import InstanceGoneError, ProvisioningError
from devenv.client import sshconfig
from devenv.env_secrets import store_env_secrets
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import (
    INSTANCE_LOST,
    PROVISIONING_ERROR,
    ProvisionInput,
    TerminateInput,
)
from devenv.models.state import EnvSpec, FailsafePolicy, InstanceInfo
from devenv.settings import Settings
from tests.aws.conftest import REGION, Booter, MotoServer, booting, moto_env, running_moto
from tests.ssh.conftest import make_settings, run, until

pytestmark = pytest.mark.usefixtures("aws_env")


@dataclass
class Lab:
    moto: MotoServer
    booter: Booter
    settings: Settings
    backend: AwsBackend
    user_key: Path
    marker_dir: Path

    def section(self, **overrides: Any) -> dict[str, Any]:
        section: dict[str, Any] = {
            "region": REGION,
            "instance_type": "t3.micro",
            "image": "amazon-linux-2023",
            "allow_ssh_from": ["203.0.113.7/32"],
            "ssh_user": "root",
            "ssh_endpoint": self.booter.endpoint,
            "ready_timeout": "2m",
            "tags": {"team": "ml"},
        }
        section.update(overrides)
        return section

    def request(self, token: str | None = None, **section: Any) -> ProvisionInput:
        name = f"awsb-{secrets.token_hex(4)}"
        spec = EnvSpec(
            name=name,
            backend="aws",
            inactivity_duration=3600,
            user_public_key=public_key_line(ensure_keypair(self.user_key)),
            backend_config=self.section(**section),
            owner="alice",
        )
        return ProvisionInput(
            workflow_id=f"devenv-{name}",
            instance_token=token or f"t{secrets.token_hex(8)}",
            spec=spec,
        )

    def instances(self, token: str, *states: str) -> list[dict[str, Any]]:
        filters = [{"Name": "tag:devenv:token", "Values": [token]}]
        if states:
            filters.append({"Name": "instance-state-name", "Values": list(states)})
        found = self.moto.client().describe_instances(Filters=filters)
        return [i for r in found["Reservations"] for i in r["Instances"]]

    def terminate_request(
        self, request: ProvisionInput, info: InstanceInfo | None
    ) -> TerminateInput:
        return TerminateInput(
            workflow_id=request.workflow_id,
            instance_token=request.instance_token,
            spec=request.spec,
            instance=info,
        )

    @property
    def marker(self) -> Path:
        return self.marker_dir / "shutdown"


@pytest.fixture(scope="module")
def lab(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("aws-home")
    markers = tmp_path_factory.mktemp("aws-markers")
    settings = make_settings(home)
    with booting(moto) as booter:
        backend = AwsBackend(
            settings,
            host_dir=str(booter.host_dir),
            # The failsafe's "shutdown": a marker file (only one test lets it fire).
            failsafe_action=f"touch {markers}/shutdown",
            failsafe_interval=0.2,
            connect_timeout=5.0,
            poll_interval=0.2,
        )
        yield Lab(moto, booter, settings, backend, home / "user" / "id_ed25519", markers)


@pytest.fixture
async def provisioned(lab: Lab) -> AsyncIterator[tuple[ProvisionInput, InstanceInfo]]:
    request = lab.request()
    info = await lab.backend.provision(request)
    try:
        yield request, info
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))


def assert_provisioning_error(error: BaseException, *parts: str) -> None:
    assert isinstance(error, ProvisioningError), repr(error)
    assert isinstance(error, ApplicationError) and error.type == PROVISIONING_ERROR
    assert "\n" not in error.message, error.message
    for part in parts:
        assert part in error.message, error.message


async def test_provision_runs_one_tagged_instance_reached_with_its_pinned_host_key(
    lab: Lab, provisioned: tuple[ProvisionInput, InstanceInfo]
) -> None:
    request, info = provisioned
    [instance] = lab.instances(request.instance_token)
    tags = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}
    assert tags["devenv:name"] == request.spec.name
    assert tags["devenv:workflow-id"] == request.workflow_id
    assert tags["devenv:owner"] == "alice"
    assert tags["team"] == "ml"
    assert instance["State"]["Name"] == "running"
    assert instance["InstanceType"] == "t3.micro"
    # A shutdown from inside (the failsafe) must end the billing for good.
    attribute = lab.moto.client().describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="instanceInitiatedShutdownBehavior"
    )
    assert attribute["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"

    assert info.backend == "aws" and info.instance_id == instance["InstanceId"]
    assert (info.host, info.port) == ("127.0.0.1", lab.booter.port)
    machine = lab.booter.machines[info.instance_id]
    # The key devenv pins is the one it gave the machine at boot: never learned on first use.
    assert info.host_public_key == machine.user_data["ssh_keys"]["ed25519_public"]
    data = AwsInstanceData.model_validate(info.data)
    assert data.region == REGION and data.instance_id == info.instance_id
    assert info.price_per_hour == hourly_price("t3.micro", REGION, False)
    assert info.price_per_hour is not None and info.price_per_hour > 0
    assert info.failsafe

    # The user logs in with the real OpenSSH client, pinned to that key.
    config = sshconfig.write_entry(lab.settings, request.spec.name, info, lab.user_key)
    done = await run("ssh", "-F", config, "-o", "BatchMode=yes", request.spec.name, "id -un")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() == info.username
    report = await lab.backend.probe(info)
    assert report.connections == 0


async def test_a_retried_provision_finds_its_instance_and_never_makes_a_second(
    lab: Lab,
) -> None:
    request = lab.request()
    lab.booter.paused = True  # the first attempt dies before the machine answers
    first = asyncio.create_task(lab.backend.provision(request))
    try:
        await until(lambda: lab.instances(request.instance_token), "the first RunInstances")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    finally:
        lab.booter.paused = False
    info = await lab.backend.provision(request)
    again = await lab.backend.provision(request)
    try:
        assert len(lab.instances(request.instance_token)) == 1
        assert info.instance_id == again.instance_id
        assert info.host_public_key == again.host_public_key
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))


async def test_terminate_ends_the_instance_and_succeeds_again_and_without_a_record(
    lab: Lab,
) -> None:
    request = lab.request()
    info = await lab.backend.provision(request)
    await lab.backend.terminate(lab.terminate_request(request, info))
    [instance] = lab.instances(request.instance_token)
    assert instance["State"]["Name"] == "terminated"
    await until(lambda: info.instance_id not in lab.booter.machines, "the machine to stop")
    # Already terminated, with and without the recorded instance: both succeed.
    await lab.backend.terminate(lab.terminate_request(request, info))
    await lab.backend.terminate(lab.terminate_request(request, None))
    assert not await lab.backend.is_alive(info)


async def test_a_machine_never_reachable_times_out_and_cleanup_leaves_nothing_running(
    lab: Lab,
) -> None:
    request = lab.request(ready_timeout="5s")
    lab.booter.paused = True
    try:
        with pytest.raises(ProvisioningError) as caught:
            await lab.backend.provision(request)
    finally:
        lab.booter.paused = False
    assert_provisioning_error(
        caught.value, "aws.ready_timeout (5s)", "not reachable", "(aws.ssh_endpoint)"
    )
    assert "ssh_config" not in caught.value.message, "an aws environment has no ssh_config"
    assert lab.instances(request.instance_token, "running")
    # The workflow cleans up by token alone: the failed provision returned no instance.
    await lab.backend.terminate(lab.terminate_request(request, None))
    assert not lab.instances(request.instance_token, "pending", "running", "stopped")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"instance_type": "t3.micrx"}, ["aws.instance_type", "'t3.micrx'", REGION]),
        ({"image": "ami-0123456789abcdef0"}, ["aws.image", "ami-0123456789abcdef0"]),
        ({"image": "ubuntu-24.04"}, ["aws.image", "'ubuntu-24.04'", "SSM parameter"]),
    ],
)
async def test_a_wrong_instance_type_or_image_is_one_line_and_creates_nothing(
    lab: Lab, section: dict[str, Any], expected: list[str]
) -> None:
    request = lab.request(**section)
    with pytest.raises(ProvisioningError) as caught:
        await lab.backend.provision(request)
    assert_provisioning_error(caught.value, *expected)
    assert not lab.instances(request.instance_token)


async def test_missing_credentials_are_one_line(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    request = lab.request()
    with pytest.raises(ProvisioningError) as caught:
        await lab.backend.provision(request)
    assert_provisioning_error(
        caught.value,
        "AWS credentials: the devenv worker has none",
        "ones exported after `devenv server` started are not seen",
        "restart it (`devenv server stop`, then `devenv server`",
    )


async def test_credentials_the_account_refuses_are_one_line(
    lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A second moto that authenticates requests: the test's keys belong to no IAM user.
    with running_moto(tmp_path, INITIAL_NO_AUTH_ACTION_COUNT="0") as strict:
        for key, value in moto_env(strict.endpoint).items():
            monkeypatch.setenv(key, value)
        request = lab.request()
        with pytest.raises(ProvisioningError) as caught:
            await lab.backend.provision(request)
    assert_provisioning_error(caught.value, "AWS credentials refused", REGION)


async def test_an_instance_terminated_from_the_console_is_lost_with_its_cause(
    lab: Lab, provisioned: tuple[ProvisionInput, InstanceInfo]
) -> None:
    _, info = provisioned
    stream = lab.backend.presence(info)
    first = await anext(stream)
    assert first.connections == 0
    lab.moto.client().terminate_instances(InstanceIds=[info.instance_id])
    with pytest.raises(InstanceGoneError) as caught:
        await asyncio.wait_for(anext(stream), 30)
    assert caught.value.type == INSTANCE_LOST
    assert info.instance_id in caught.value.message
    assert "terminated" in caught.value.message or "shutting-down" in caught.value.message


async def test_the_failsafe_ends_an_unread_idle_machine_with_the_thresholds_it_was_sent(
    lab: Lab,
) -> None:
    # Nobody connected, no control plane reading: with a one-hour threshold nothing
    # happens; told one second (apply_policy, as after `devenv signal`), it shuts down.
    request = lab.request(failsafe_after="1s")
    info = await lab.backend.provision(request)
    try:
        marker = lab.marker
        assert not marker.exists()
        policy = FailsafePolicy.of(1, None, datetime.now(UTC))
        await lab.backend.apply_policy(info, policy)
        await until(marker.exists, "the failsafe's shutdown", timeout=15)
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))


async def test_leftovers_are_devenv_tagged_instances_and_removal_spares_the_rest(
    lab: Lab, provisioned: tuple[ProvisionInput, InstanceInfo]
) -> None:
    request, info = provisioned
    ec2 = lab.moto.client()
    orphan_token = f"t{secrets.token_hex(8)}"
    orphan = lab.moto.plant(orphan_token)
    stranger = lab.moto.plant()
    try:
        found = {left.id: left for left in await lab.backend.leftovers()}
        assert orphan in found and info.instance_id in found
        assert stranger not in found  # no devenv tags: never a leftover
        assert found[orphan].instance_token == orphan_token
        assert found[orphan].workflow_id == "devenv-forgotten"
        assert found[info.instance_id].instance_token == request.instance_token
        await lab.backend.remove_leftover(found[orphan])
        state = ec2.describe_instances(InstanceIds=[orphan])["Reservations"][0]["Instances"][0]
        assert state["State"]["Name"] == "terminated"
        assert await lab.backend.is_alive(info)
    finally:
        ec2.terminate_instances(InstanceIds=[orphan, stranger])


async def test_env_reaches_ssh_commands_and_init_runs_once_on_the_machine(lab: Lab) -> None:
    """aws reuses the ssh layer: the account's env.sh and its init, on the booted machine."""
    plain = lab.request()
    ref = store_env_secrets(lab.settings, {"API_TOKEN": "aws-tok"})
    spec = plain.spec.model_copy(
        update={
            "env": {"GREETING": "hi"},
            "env_secrets": ref,
            "init": ['echo "$GREETING $API_TOKEN" >> init.txt'],
        }
    )
    request = plain.model_copy(update={"spec": spec})
    info = await lab.backend.provision(request)
    try:
        await lab.backend.provision(request)  # a retry: init does not run again
        config = sshconfig.write_entry(lab.settings, spec.name, info, lab.user_key)
        ssh = ("ssh", "-F", config, "-o", "BatchMode=yes", spec.name)
        done = await run(*ssh, 'echo "$GREETING|$API_TOKEN"; cat init.txt')
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == "hi|aws-tok\nhi aws-tok\n"
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))
