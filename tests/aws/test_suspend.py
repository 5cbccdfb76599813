"""Suspend and resume on the aws backend: the moto server over HTTP, its machines played
by real sshd on loopback (the Booter halts a stopped machine and boots it again).

What a user relies on: suspend stops the instance (EC2 says ``stopped``: no compute
billed) and keeps its disk; resume starts it, reaches it with the same pinned host key
and gives back their files, the presence agent and the failsafe; a failsafe shutdown of
an ``on_idle: suspend`` environment stops rather than terminates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError

from devenv.backends.aws.backend import SUSPEND_REFUSED, AwsBackend, AwsInstanceData
from devenv.backends.aws.config import AwsConfig
from devenv.backends.aws.prices import storage_price_per_hour
from devenv.backends.base import InstanceGoneError, can_suspend
from devenv.client import sshconfig
from devenv.models.messages import ProvisionInput, SuspendInput
from devenv.models.state import FailsafePolicy, InstanceInfo
from tests.aws.conftest import REGION, MotoServer, booting
from tests.aws.test_backend import Lab, assert_provisioning_error
from tests.ssh.conftest import make_settings, pids_of, run, until

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture(scope="module")
def lab(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("aws-suspend-home")
    markers = tmp_path_factory.mktemp("aws-suspend-markers")
    with booting(moto) as booter:
        backend = AwsBackend(
            make_settings(home),
            host_dir=str(booter.host_dir),
            failsafe_action=f"touch {markers}/shutdown",
            failsafe_interval=0.2,
            connect_timeout=5.0,
            poll_interval=0.2,
        )
        yield Lab(moto, booter, backend.settings, backend, home / "user" / "id_ed25519", markers)


def suspend_input(request: ProvisionInput, info: InstanceInfo) -> SuspendInput:
    return SuspendInput(
        workflow_id=request.workflow_id,
        instance_token=request.instance_token,
        spec=request.spec,
        instance=info,
    )


def state_of(lab: Lab, instance_id: str) -> str:
    found = lab.moto.client().describe_instances(InstanceIds=[instance_id])
    return str(found["Reservations"][0]["Instances"][0]["State"]["Name"])


def shutdown_behavior(lab: Lab, instance_id: str) -> str:
    found = lab.moto.client().describe_instance_attribute(
        InstanceId=instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    return str(found["InstanceInitiatedShutdownBehavior"]["Value"])


def suspending(lab: Lab, **section: Any) -> ProvisionInput:
    request = lab.request(**section)
    spec = request.spec.model_copy(update={"on_idle": "suspend"})
    return request.model_copy(update={"spec": spec})


def failsafe_pid(lab: Lab, account: str) -> int | None:
    pid_file = lab.booter.host_dir / "failsafe" / f"{account}.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def test_the_aws_backend_says_it_can_suspend(lab: Lab) -> None:
    assert can_suspend(lab.backend)
    assert AwsConfig.suspendable is True


async def test_a_file_survives_stop_and_start_with_the_same_pinned_host_key(lab: Lab) -> None:
    request = suspending(lab)
    info = await lab.backend.provision(request)
    try:
        assert shutdown_behavior(lab, info.instance_id) == "stop", "a failsafe shutdown suspends"
        data = AwsInstanceData.model_validate(info.data)
        assert data.storage_gb is not None and data.storage_gb > 0
        volumes = lab.moto.client().describe_volumes(
            Filters=[{"Name": "attachment.instance-id", "Values": [info.instance_id]}]
        )["Volumes"]
        sizes = [(int(v["Size"]), str(v["VolumeType"])) for v in volumes]
        assert data.storage_gb == sum(size for size, _ in sizes)
        assert info.storage_price_per_hour == storage_price_per_hour(sizes, REGION)
        config = sshconfig.write_entry(lab.settings, request.spec.name, info, lab.user_key)

        async def ssh(command: str) -> Any:
            return await run("ssh", "-F", config, "-o", "BatchMode=yes", request.spec.name, command)

        wrote = await ssh("echo kept > notes.txt; setsid sleep 600 >/dev/null 2>&1 </dev/null &")
        assert wrote.returncode == 0, wrote.stderr
        before = failsafe_pid(lab, info.username)
        assert before is not None, "the failsafe runs"

        suspended = await lab.backend.suspend(suspend_input(request, info))
        assert state_of(lab, info.instance_id) == "stopped", "StopInstances, not terminate"
        assert suspended.host_public_key == info.host_public_key
        assert suspended.storage_price_per_hour is not None
        assert suspended.storage_price_per_hour > 0
        assert suspended.storage_price_per_hour < (info.price_per_hour or 0)
        await until(lambda: info.instance_id in lab.booter.halted, "the machine to halt")
        assert pids_of(info.username) == [], "nothing of the account runs on a stopped machine"
        assert (await ssh("true")).returncode == 255, "nobody reaches a stopped machine"
        assert await lab.backend.is_alive(info), "stopped is not gone"
        assert await lab.backend.is_suspended(info)
        again = await lab.backend.suspend(suspend_input(request, suspended))  # retried
        assert again.host_public_key == info.host_public_key
        assert state_of(lab, info.instance_id) == "stopped"

        resumed = await lab.backend.resume(suspend_input(request, suspended))
        assert state_of(lab, info.instance_id) == "running", "StartInstances"
        assert lab.booter.machines[info.instance_id].boots == 2, "the same instance, booted again"
        assert resumed.instance_id == info.instance_id
        assert resumed.host_public_key == info.host_public_key, "the same pinned host key"
        assert (resumed.host, resumed.port) == ("127.0.0.1", lab.booter.port)
        config = sshconfig.write_entry(lab.settings, request.spec.name, resumed, lab.user_key)
        notes = await ssh("cat notes.txt")
        assert notes.returncode == 0, notes.stderr
        assert notes.stdout == b"kept\n", "the disk was kept"
        assert (await lab.backend.probe(resumed)).connections == 0, "the agent answers"
        assert failsafe_pid(lab, info.username) is not None, "the failsafe runs again"
        assert not await lab.backend.is_suspended(resumed)

        assert (await lab.backend.resume(suspend_input(request, resumed))) == resumed  # retried
        assert lab.booter.machines[info.instance_id].boots == 2, "a retry starts nothing"
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))
    assert state_of(lab, info.instance_id) == "terminated"


async def test_the_failsafe_shutdown_stops_only_when_idleness_suspends(lab: Lab) -> None:
    request = lab.request()
    info = await lab.backend.provision(request)
    try:
        assert shutdown_behavior(lab, info.instance_id) == "terminate"
        policy = FailsafePolicy.of(3600, None, datetime.now(UTC), on_idle="suspend")
        await lab.backend.apply_policy(info, policy)
        assert shutdown_behavior(lab, info.instance_id) == "stop"
        written = lab.booter.host_dir / "failsafe" / f"{info.username}.json"
        assert '"on_idle": "suspend"' in written.read_text()
        await lab.backend.apply_policy(info, policy.model_copy(update={"on_idle": "terminate"}))
        assert shutdown_behavior(lab, info.instance_id) == "terminate"
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))


async def test_a_terminated_instance_cannot_be_resumed_and_spot_cannot_suspend(lab: Lab) -> None:
    refused = suspending(lab, spot=True)
    with pytest.raises(ApplicationError) as caught:
        await lab.backend.provision(refused)
    assert_provisioning_error(caught.value, "aws.spot:", "on_idle: suspend")
    assert not lab.instances(refused.instance_token), "nothing created"

    request = lab.request()
    info = await lab.backend.provision(request)
    await lab.backend.terminate(lab.terminate_request(request, info))
    with pytest.raises(InstanceGoneError):
        await lab.backend.resume(suspend_input(request, info))
    with pytest.raises(InstanceGoneError):
        await lab.backend.suspend(suspend_input(request, info))
    spot = info.model_copy(update={"data": {**info.data, "spot": True}})
    with pytest.raises(ApplicationError) as not_spot:
        await lab.backend.suspend(suspend_input(request, spot))
    assert not_spot.value.type == SUSPEND_REFUSED and not_spot.value.non_retryable


async def test_a_suspend_or_resume_retried_after_a_crash_finishes_the_job(lab: Lab) -> None:
    # A worker that died right after StopInstances (or StartInstances): the retry finds the
    # instance stopping/stopped (pending/running) and finishes without asking twice.
    request = lab.request()
    info = await lab.backend.provision(request)
    try:
        lab.moto.client().stop_instances(InstanceIds=[info.instance_id])
        suspended = await lab.backend.suspend(suspend_input(request, info))
        assert state_of(lab, info.instance_id) == "stopped"
        await until(lambda: info.instance_id in lab.booter.halted, "the machine to halt")
        lab.moto.client().start_instances(InstanceIds=[info.instance_id])
        resumed = await lab.backend.resume(suspend_input(request, suspended))
        assert resumed.host_public_key == info.host_public_key
        assert (await lab.backend.probe(resumed)).connections == 0
    finally:
        await lab.backend.terminate(lab.terminate_request(request, info))
