"""Provision and terminate: idempotent, detached, thorough, and never resurrected."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from devenv.backends.local import proctools
from devenv.backends.local.backend import PROVISIONING_ERROR
from devenv.backends.local.files import (
    ENV_MARKER,
    LOCK_FILE,
    PID_FILE,
    READY_FILE,
    SERVER_MODULE,
    TERMINATED_FILE,
)
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.state import InstanceInfo
from tests.local_backend.conftest import Instance, Lab, mode, run, wait_until, write_ssh_config


def server_pids(instance_dir: Path) -> list[int]:
    """Live processes running the instance server of ``instance_dir``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            argv = proctools.cmdline(int(entry.name))
            if SERVER_MODULE in argv and str(instance_dir) in argv:
                if proctools.is_running(int(entry.name)):
                    found.append(int(entry.name))
    return found


def marked_commands(token: str) -> set[str]:
    """The command lines of the live processes carrying instance ``token``'s marker."""
    return {
        " ".join(proctools.cmdline(pid)) for pid in proctools.processes_with_env(ENV_MARKER, token)
    }


def tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


async def test_provision_is_idempotent_per_token(lab: Lab) -> None:
    request = lab.request("idem")
    first = await lab.backend.provision(request)
    again = await lab.backend.provision(request)
    assert (again.data["pid"], again.port, again.host_public_key) == (
        first.data["pid"],
        first.port,
        first.host_public_key,
    )
    assert first.backend == "local" and first.host == "127.0.0.1"
    assert first.instance_id == request.instance_token
    instance_dir = lab.backend.instance_dir("idem", request.instance_token)
    assert server_pids(instance_dir) == [first.data["pid"]]
    assert await lab.backend.is_alive(first)
    await lab.backend.terminate(
        TerminateInput(
            workflow_id="w",
            instance_token=request.instance_token,
            spec=request.spec,
            instance=first,
        )
    )


async def test_concurrent_provisions_start_one_server(lab: Lab) -> None:
    request = lab.request("race")
    infos = await asyncio.gather(*(lab.backend.provision(request) for _ in range(3)))
    assert len({info.data["pid"] for info in infos}) == 1
    assert len(server_pids(lab.backend.instance_dir("race", request.instance_token))) == 1
    await lab.backend.terminate(
        TerminateInput(workflow_id="w", instance_token=request.instance_token, spec=request.spec)
    )


async def test_key_material_and_folders_are_private(lab: Lab, shared: Instance) -> None:
    instance_dir = lab.backend.instance_dir("shared", shared.token)
    assert mode(instance_dir / "host_ed25519") == 0o600
    assert mode(instance_dir / "server.json") == 0o600
    assert mode(lab.settings.internal_key) == 0o600
    for folder in (
        lab.settings.envs_dir,
        instance_dir.parent.parent,
        instance_dir.parent,
        instance_dir,
    ):
        assert mode(folder) == 0o700, folder
    assert "PRIVATE KEY" not in (instance_dir / "server.log").read_text()


PROVISION_AND_DIE = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from devenv.backends.local.backend import LocalBackend
    from devenv.models.messages import ProvisionInput
    from devenv.settings import Settings

    request = ProvisionInput.model_validate_json(sys.argv[1])
    info = asyncio.run(LocalBackend(Settings.load()).provision(request))
    print(info.model_dump_json(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # the worker dies without any cleanup
    """
)


async def test_the_instance_survives_the_worker_that_provisioned_it(
    lab: Lab, tmp_path: Path
) -> None:
    request = lab.request("orphan")
    worker = await run(
        sys.executable, "-c", PROVISION_AND_DIE, request.model_dump_json(), timeout=30
    )
    assert worker.returncode == -9, worker.err
    info = InstanceInfo.model_validate_json(worker.stdout)
    assert info.data["pid"] is not None and proctools.is_running(info.data["pid"])
    assert await lab.backend.is_alive(info)
    # Not a child of anyone still around from the worker's side.
    assert proctools.ancestors(info.data["pid"]).isdisjoint({os.getpid()})

    config = write_ssh_config(tmp_path, "orphan", info, lab.user_key)
    result = await run("ssh", "-F", config, "orphan", "echo alive")
    assert result.out == "alive\n", result.err
    # A retry of the same provision (as Temporal would do) finds it.
    assert (await lab.backend.provision(request)).data["pid"] == info.data["pid"]
    await lab.backend.terminate(
        TerminateInput(
            workflow_id="w", instance_token=request.instance_token, spec=request.spec, instance=info
        )
    )
    assert not proctools.is_running(info.data["pid"])


async def test_terminate_kills_everything_keeps_the_workspace_and_never_resurrects(
    lab: Lab,
) -> None:
    instance = await lab.provision("doomed")
    (instance.workspace / "notes.txt").write_text("keep me\n")
    detached = await instance.ssh(
        instance.alias,
        "nohup sleep 1000 >/dev/null 2>&1 &"
        " setsid sleep 1001 >/dev/null 2>&1 </dev/null &"
        " echo started",
    )
    assert detached.out == "started\n", detached.err
    held_open = await asyncio.create_subprocess_exec(
        *instance.ssh_argv("-tt", instance.alias, "sleep 1002"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    # The session's sleep runs once ssh has logged in: wait for it, not for a fixed time.
    sleeps = {"sleep 1000", "sleep 1001", "sleep 1002"}
    await wait_until(lambda: sleeps <= marked_commands(instance.token))
    marked = proctools.processes_with_env(ENV_MARKER, instance.token)
    assert instance.info.data["pid"] in marked
    assert len(marked) >= 4  # server, two detached sleeps, the session's sleep

    await lab.backend.terminate(instance.terminate_request())
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []
    assert not await lab.backend.is_alive(instance.info)
    assert await asyncio.wait_for(held_open.wait(), 10) != 0
    assert (instance.workspace / "notes.txt").read_text() == "keep me\n"

    await lab.backend.terminate(instance.terminate_request())  # idempotent
    with pytest.raises(ApplicationError) as refused:
        await lab.backend.provision(instance.request)
    assert refused.value.type == PROVISIONING_ERROR and refused.value.non_retryable
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []

    # The next environment of the same name works in the same workspace.
    successor = await lab.provision("doomed")
    result = await successor.ssh(successor.alias, "cat notes.txt")
    assert result.out == "keep me\n"


async def test_the_server_cleans_up_its_processes_on_sigterm(lab: Lab) -> None:
    """Even without the backend's sweep, a stopped server leaves nothing running."""
    instance = await lab.provision("tidy")
    started = await instance.ssh(instance.alias, "nohup sleep 1003 >/dev/null 2>&1 & echo ok")
    assert started.out == "ok\n", started.err
    held_open = await asyncio.create_subprocess_exec(
        *instance.ssh_argv("-tt", instance.alias, "sleep 1004"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    await wait_until(lambda: {"sleep 1003", "sleep 1004"} <= marked_commands(instance.token))
    assert instance.info.data["pid"] is not None
    os.kill(instance.info.data["pid"], signal.SIGTERM)
    await asyncio.to_thread(proctools.wait_gone, [instance.info.data["pid"]], 5.0)
    assert not proctools.is_running(instance.info.data["pid"])
    assert proctools.processes_with_env(ENV_MARKER, instance.token) == []
    await asyncio.wait_for(held_open.wait(), 10)
    log = (lab.backend.instance_dir("tidy", instance.token) / "server.log").read_text()
    assert "stopped" in log


async def test_terminate_before_anything_was_provisioned(lab: Lab) -> None:
    """A stop that won the race against provisioning: a late provision must not start it."""
    request = lab.request("never")
    token = request.instance_token
    await lab.backend.terminate(
        TerminateInput(workflow_id="w", instance_token=token, spec=request.spec)
    )
    with pytest.raises(ApplicationError) as refused:
        await lab.backend.provision(request)
    assert refused.value.type == PROVISIONING_ERROR and refused.value.non_retryable
    assert refused.value.message == (
        f"instance {token} of never was terminated; it is not started again"
    )
    assert proctools.processes_with_env(ENV_MARKER, token) == []
    instance_dir = lab.backend.instance_dir("never", token)
    assert server_pids(instance_dir) == []
    assert {path.name for path in instance_dir.iterdir()} == {TERMINATED_FILE, LOCK_FILE}


async def test_a_server_that_cannot_start_fails_provisioning_cleanly(lab: Lab) -> None:
    request = lab.request("broken")
    request.spec.user_public_key = "not-a-key"
    with pytest.raises(ApplicationError) as failed:
        await lab.backend.provision(request)
    assert failed.value.type == PROVISIONING_ERROR and failed.value.non_retryable
    assert "user public key is not an OpenSSH public key" in str(failed.value)
    assert proctools.processes_with_env(ENV_MARKER, request.instance_token) == []
    instance_dir = lab.backend.instance_dir("broken", request.instance_token)
    assert server_pids(instance_dir) == []
    assert not (instance_dir / PID_FILE).exists() and not (instance_dir / READY_FILE).exists()


async def test_is_alive_is_not_fooled_by_a_reused_pid(lab: Lab, shared: Instance) -> None:
    assert await lab.backend.is_alive(shared.info)
    # The pid lives in the backend's data; this process is alive but not the server.
    impostor = shared.info.model_copy(update={"data": {**shared.info.data, "pid": os.getpid()}})
    assert not await lab.backend.is_alive(impostor)
    gone = shared.info.model_copy(update={"instance_id": "tnothere"})
    assert not await lab.backend.is_alive(gone)


UNSAFE = ["../escape", "a/b", "..", ".", "", "-rf", "x" * 129]


@pytest.mark.parametrize("bad", UNSAFE, ids=repr)
async def test_an_unsafe_token_is_refused_before_anything_is_created(lab: Lab, bad: str) -> None:
    """Tokens become folder names: one that could escape ``envs/`` fails provisioning for
    good (not retried), says which value is wrong, and creates no file and no process."""
    request = ProvisionInput.model_validate(
        {**lab.request("unsafe").model_dump(), "instance_token": bad}
    )
    before = tree(lab.home)
    with pytest.raises(ApplicationError) as refused:
        await lab.backend.provision(request)
    assert refused.value.type == PROVISIONING_ERROR and refused.value.non_retryable
    assert refused.value.message == f"invalid instance token for the local backend: {bad!r}"
    # Nor may terminate touch a path outside: Temporal would retry it forever if it could.
    with pytest.raises(ApplicationError) as refused_too:
        await lab.backend.terminate(
            TerminateInput(workflow_id="w", instance_token=bad, spec=request.spec)
        )
    assert refused_too.value.non_retryable and refused_too.value.message == refused.value.message
    assert tree(lab.home) == before, "a refused request left files behind"
    assert not (lab.settings.envs_dir / "unsafe" / "escape").exists()
    assert proctools.processes_with_env(ENV_MARKER, bad) == []


@pytest.mark.parametrize("bad", ["../escape", "a/b", "..", ".hidden"], ids=repr)
async def test_an_unsafe_environment_name_is_refused_before_anything_is_created(
    lab: Lab, bad: str
) -> None:
    request = lab.request("placeholder")
    request.spec.name = bad
    before = tree(lab.home)
    with pytest.raises(ApplicationError) as refused:
        await lab.backend.provision(request)
    assert refused.value.type == PROVISIONING_ERROR and refused.value.non_retryable
    assert refused.value.message == f"invalid environment name for the local backend: {bad!r}"
    assert tree(lab.home) == before, "a refused request left files behind"
    assert not (lab.home / "escape").exists()
    assert proctools.processes_with_env(ENV_MARKER, request.instance_token) == []
