"""Suspend and resume of local instances, with real processes and the real OpenSSH client:
suspend ends every process and keeps the workspace; resume serves it again on a new port
with the same pinned host key."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.exceptions import ApplicationError

from devenv.backends.base import can_suspend
from devenv.backends.local import proctools
from devenv.backends.local.files import ENV_MARKER
from devenv.models.messages import INSTANCE_LOST, SuspendInput
from tests.local_backend.conftest import Instance, Lab, wait_until, write_ssh_config
from tests.local_backend.test_local_lifecycle import marked_commands


def suspend_request(instance: Instance) -> SuspendInput:
    return SuspendInput(
        workflow_id=instance.request.workflow_id,
        instance_token=instance.token,
        spec=instance.request.spec,
        instance=instance.info,
    )


async def test_a_users_file_survives_a_suspension_and_resume_on_a_new_port(lab: Lab) -> None:
    assert can_suspend(lab.backend)
    instance = await lab.provision("napper")
    wrote = await instance.ssh(
        instance.alias,
        "echo unpushed work > notes.txt; nohup sleep 1010 >/dev/null 2>&1 &"
        " setsid sleep 1011 >/dev/null 2>&1 </dev/null & echo ok",
    )
    assert wrote.out == "ok\n", wrote.err
    held_open = await asyncio.create_subprocess_exec(
        *instance.ssh_argv("-tt", instance.alias, "sleep 1012"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    sleeps = {"sleep 1010", "sleep 1011", "sleep 1012"}
    await wait_until(lambda: sleeps <= marked_commands(instance.token))

    suspended = await lab.backend.suspend(suspend_request(instance))
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []
    assert await asyncio.wait_for(held_open.wait(), 10) != 0
    assert not await lab.backend.is_alive(suspended)
    assert suspended.data["pid"] is None
    refused = await instance.ssh(instance.alias, "true")
    assert refused.returncode == 255  # nothing listens: users cannot log in
    assert (instance.workspace / "notes.txt").read_text() == "unpushed work\n"
    again = await lab.backend.suspend(suspend_request(instance))  # idempotent
    assert again == suspended

    request = suspend_request(instance).model_copy(update={"instance": suspended})
    resumed = await lab.backend.resume(request)
    assert resumed.host_public_key == instance.info.host_public_key
    assert resumed.data["pid"] != instance.info.data["pid"]
    assert await lab.backend.is_alive(resumed)
    assert await lab.backend.resume(request) == resumed  # idempotent: the same server
    # The user's ssh config entry with the new port; the host key pinned at start still holds.
    config = write_ssh_config(lab.home / "ssh-resumed", instance.alias, resumed, lab.user_key)
    read = await instance.ssh(instance.alias, "cat notes.txt", config=config)
    assert read.out == "unpushed work\n", read.err

    await lab.backend.terminate(
        instance.terminate_request().model_copy(update={"instance": resumed})
    )
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []


async def test_a_terminated_instance_cannot_be_resumed(lab: Lab) -> None:
    instance = await lab.provision("gone")
    suspended = await lab.backend.suspend(suspend_request(instance))
    await lab.backend.terminate(
        instance.terminate_request().model_copy(update={"instance": suspended})
    )
    with pytest.raises(ApplicationError) as lost:
        await lab.backend.resume(suspend_request(instance))
    assert lost.value.type == INSTANCE_LOST and lost.value.non_retryable
    with pytest.raises(ApplicationError):
        await lab.backend.suspend(suspend_request(instance))
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []
