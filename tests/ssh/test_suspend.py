"""Suspend and resume on the ssh backend, against Debian's real sshd on loopback.

What a user relies on: while suspended nothing of theirs runs and nobody gets in (the
real OpenSSH client is refused), and after resume their files and their login are back,
on the same host with the same pinned host key. Both steps may be repeated (the
workflow retries them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from devenv.backends.base import can_suspend
from devenv.backends.ssh.config import SshConfig
from devenv.client import sshconfig
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import SuspendInput
from devenv.models.state import LoginSettings
from tests.ssh.conftest import (
    Env,
    Lab,
    account_of,
    host_dir_of,
    make_settings,
    pids_of,
    run,
    shadow,
    until,
)


def suspend_request(env: Env) -> SuspendInput:
    return SuspendInput(
        workflow_id=env.request.workflow_id,
        instance_token=env.request.instance_token,
        spec=env.request.spec,
        instance=env.info,
    )


def test_the_ssh_backend_says_it_can_suspend(lab: Lab) -> None:
    assert can_suspend(lab.backend)
    assert SshConfig.suspendable is True


async def test_a_file_survives_suspend_and_resume_and_nobody_gets_in_meanwhile(
    lab: Lab,
) -> None:
    env = await lab.provision()
    assert not await lab.backend.is_suspended(env.info)
    wrote = await env.ssh(
        "echo kept > notes.txt; setsid nohup env -i sleep 600 >/dev/null 2>&1 </dev/null &"
    )
    assert wrote.returncode == 0, wrote.stderr
    await until(lambda: pids_of(env.account), "the escaped sleep to run")
    session = await asyncio.create_subprocess_exec(
        *env.ssh_argv("-tt", env.name), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        suspended = await lab.backend.suspend(suspend_request(env))
        assert pids_of(env.account) == [], "no process of the account may remain"
        assert await asyncio.wait_for(session.wait(), 10) != 0, "the open session is cut"
    finally:
        if session.returncode is None:
            session.kill()
            await session.wait()
    assert suspended.host_public_key == env.info.host_public_key
    assert (suspended.host, suspended.port) == (env.info.host, env.info.port)

    refused = await env.ssh("true")
    assert refused.returncode == 255 and b"Permission denied" in refused.stderr
    assert shadow(env.account)[1].startswith("!"), "locked"
    assert not (env.home / ".ssh" / "authorized_keys").exists(), "keys put away"
    assert (env.home / "notes.txt").read_text() == "kept\n", "the home is kept"
    assert account_of(env.name) is not None
    assert await lab.backend.is_alive(env.info), "suspended is not gone"
    assert await lab.backend.is_suspended(env.info)

    again = await lab.backend.suspend(suspend_request(env))  # retried: still suspended
    assert again == suspended
    assert (await env.ssh("true")).returncode == 255

    resumed = await lab.backend.resume(suspend_request(env))
    assert resumed.host_public_key == env.info.host_public_key, "the same pinned key"
    assert (resumed.host, resumed.port, resumed.username) == (
        env.info.host,
        env.info.port,
        env.account,
    )
    notes = await env.ssh("cat notes.txt")
    assert notes.returncode == 0, notes.stderr
    assert notes.stdout == b"kept\n"
    assert not shadow(env.account)[1].startswith("!"), "unlocked"
    assert not await lab.backend.is_suspended(resumed)
    report = await lab.backend.probe(resumed)
    assert report.connections == 0, "the presence agent answers again"
    records = host_dir_of(lab.sshd) / "accounts"
    assert not list(records.glob(f"{env.account}.suspended")), "nothing left of the suspension"
    assert not list(records.glob(f"{env.account}.keys*"))

    assert await lab.backend.resume(suspend_request(env)) == resumed  # retried: running
    again_notes = await env.ssh("cat notes.txt")
    assert again_notes.stdout == b"kept\n"
    await lab.backend.terminate(env.terminate_request())


async def test_a_suspended_environment_can_still_be_terminated_and_leaves_nothing_behind(
    lab: Lab,
) -> None:
    env = await lab.provision()
    await env.ssh("echo kept > notes.txt")
    await lab.backend.suspend(suspend_request(env))
    await lab.backend.terminate(env.terminate_request())
    records = host_dir_of(lab.sshd) / "accounts"
    assert not list(records.glob(f"{env.account}.suspended"))
    assert not list(records.glob(f"{env.account}.keys*")), "the kept keys are removed"
    assert (env.home / "notes.txt").read_text() == "kept\n", "terminate keeps the home"
    assert (await env.ssh("true")).returncode == 255
    assert not await lab.backend.is_alive(env.info)


async def test_a_member_the_environment_is_shared_with_gets_back_in_after_resume(
    lab: Lab, tmp_path: Path
) -> None:
    env = await lab.provision()
    member_key = tmp_path / "member" / "id_ed25519"
    line = public_key_line(ensure_keypair(member_key))
    await lab.backend.apply_login(
        env.info, LoginSettings(banner="hi", shared_keys=[f"{line} devenv-shared:bob"])
    )
    member_home = make_settings(tmp_path / "member-home")
    config = sshconfig.write_entry(member_home, env.name, env.info, member_key)

    async def as_member() -> int:
        done = await run("ssh", "-F", config, "-o", "BatchMode=yes", env.name, "true")
        return done.returncode

    assert await as_member() == 0
    await lab.backend.suspend(suspend_request(env))
    assert await as_member() == 255, "members are refused while suspended too"
    await lab.backend.resume(suspend_request(env))
    assert await as_member() == 0, "the members' keys come back with the owner's"
    await lab.backend.terminate(env.terminate_request())
