"""The environment's SSH door, end to end through the ssh config devenv generates.

tests/local_backend already covers, against the instance server directly: loopback-only
listening, another key, another login name, passwords (asyncssh client), the activity
subsystem refused to the user key, the internal key limited to that subsystem, and a
replaced server under a pinned alias. Here: what a user's own OpenSSH client does with
the generated config, every listening socket of a whole devenv world, and host keys
across a stop and a restart of the same name.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
from pathlib import Path

import asyncssh
import pytest

from devenv.backends.local.files import ACTIVITY_SUBSYSTEM, ServerConfig
from devenv.backends.local.server import authorized_keys
from tests.e2e.harness import Devenv, port_open, wait_for

pytestmark = pytest.mark.e2e

BATCH_SSH = ["ssh", "-o", "BatchMode=yes", "-F"]
EXAMPLE = str(Path(__file__).parents[2] / "examples" / "dev.yml")
LOOPBACK = {
    "0100007F",  # 127.0.0.1 in /proc/net/tcp
    "00000000000000000000000001000000",  # ::1 in /proc/net/tcp6
    "0000000000000000FFFF00000100007F",  # ::ffff:127.0.0.1
}


def ssh_with(world: Devenv, name: str, *options: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """OpenSSH with no controlling terminal: an askpass program is its only prompt."""
    return subprocess.Popen(
        ["ssh", "-F", str(world.ssh_config), *options, name],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def test_passwords_and_keyboard_interactive_are_never_offered(
    world: Devenv, main_env: str, tmp_path: Path
) -> None:
    """A client that insists on passwords gets nothing to type them into."""
    asked = tmp_path / "askpass-was-called"
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\ntouch {asked}\necho guess\n")
    askpass.chmod(stat.S_IRWXU)
    env = {**world.env, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    code, out, err = finish(
        ssh_with(
            world,
            main_env,
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
            "-o",
            "BatchMode=no",
            "-o",
            "NumberOfPasswordPrompts=1",
            "-o",
            "PubkeyAuthentication=no",
            env=env,
        )
    )
    assert code == 255, (out, err)
    assert "Permission denied (publickey)" in err
    assert not asked.exists(), "the server must not offer a password prompt at all"


def test_the_user_key_cannot_open_the_activity_subsystem(world: Devenv, main_env: str) -> None:
    proc = subprocess.run(
        [*BATCH_SSH, str(world.ssh_config), "-s", main_env, ACTIVITY_SUBSYSTEM],
        env=world.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0, proc
    assert "connections" not in proc.stdout
    assert world.ps(main_env)["connections"] == 0, "the refused attempt does not linger"


def test_a_smuggled_second_key_line_never_becomes_the_internal_key() -> None:
    """The CLI refuses a .pub with two lines (tests/unit); the instance must refuse one
    too, whoever started the workflow (anyone with Temporal access can write a spec)."""
    user = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    internal = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    config = ServerConfig(
        instance_id="t1",
        workspace=Path("/nonexistent"),
        username="someone",
        user_public_key=f"{user}\ndevenv-internal,no-pty {other}",
        internal_public_key=internal,
        host_key=Path("/nonexistent"),
    )
    try:
        keys = authorized_keys(config)
    except ValueError:
        return  # refused: fine
    smuggled = asyncssh.import_public_key(other)
    matched = keys.validate(smuggled, "someone", "127.0.0.1", "127.0.0.1")
    assert matched is None, "a second line in user_public_key was accepted as a key"


async def ssh_async(
    world: Devenv, config: Path, name: str, command: str
) -> tuple[int, bytes, bytes]:
    """OpenSSH without blocking the loop (an in-test SSH server may have to answer it)."""
    proc = await asyncio.create_subprocess_exec(
        *BATCH_SSH,
        str(config),
        name,
        command,
        env=world.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        pass
    return inodes


def _world_pids(world: Devenv) -> list[int]:
    """The devenv server, its worker and dev server, and the instance servers."""
    home = str(world.home).encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"DEVENV_HOME=" + home + b"\0" in environ or home in cmdline:
            pids.append(int(proc.name))
    return pids


def test_every_listening_socket_of_a_devenv_world_is_on_loopback(
    world: Devenv, main_env: str
) -> None:
    inodes: set[str] = set()
    for pid in _world_pids(world):
        inodes |= _socket_inodes(pid)
    listening: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and fields[9] in inodes:
                listening[int(port_hex, 16)] = address
    expected = {world.temporal_port, world.ui_port, world.instance_port(main_env)}
    assert expected <= set(listening), (expected, listening)
    exposed = {port: address for port, address in listening.items() if address not in LOOPBACK}
    assert exposed == {}, f"listening beyond loopback: {exposed}"


async def test_host_keys_are_pinned_across_a_stop_and_a_restart(
    world: Devenv, tmp_path: Path
) -> None:
    """A server that takes over a stopped environment's port is refused by the stale
    entry; a new start of the same name gets a new host key, and the old entry never
    lets the new key through (nor the other way round)."""
    name = "sec-pin"
    hosts = world.home / "ssh" / "hosts"
    world.run("start", EXAMPLE, "--name", name)
    old_port = world.instance_port(name)
    old_known = (hosts / f"{name}.known_hosts").read_text()
    stale = tmp_path / "stale"
    shutil.copytree(hosts, stale)

    world.run("stop", name)  # without --wait: the entry stays, as after a crash
    wait_for(lambda: world.ps(name)["status"] == "terminated", 20, "termination")
    wait_for(lambda: not port_open(old_port), 10, "the old port to close")

    offered: list[str] = []

    class Impostor(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            offered.append(username)
            return True

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            return True

    impostor = await asyncssh.listen(
        "127.0.0.1",
        old_port,
        server_factory=Impostor,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        process_factory=lambda process: process.exit(0),
    )
    try:
        code, out, err = await ssh_async(world, world.ssh_config, name, "echo taken-over")
    finally:
        impostor.close()
        await impostor.wait_closed()
    assert code == 255
    assert b"taken-over" not in out
    assert b"Host key verification failed" in err or b"IDENTIFICATION HAS CHANGED" in err
    assert offered == [], "the client must give up before offering the user's key"

    refused = world.run("ssh", name, "--", "true", check=False)
    assert refused.returncode == 2 and "is terminated, not running" in refused.stderr

    world.run("start", EXAMPLE, "--name", name)
    new_known = (hosts / f"{name}.known_hosts").read_text()
    assert new_known.split()[1:3] != old_known.split()[1:3], "a new instance, a new host key"
    assert world.ssh(name, "echo", "fresh").stdout == "fresh\n"

    # The stale entry (old key) against the new server, at the new port: refused.
    conf = (stale / f"{name}.conf").read_text()
    conf = conf.replace(f"Port {old_port}", f"Port {world.instance_port(name)}")
    conf = conf.replace(str(hosts), str(stale))
    (stale / f"{name}.conf").write_text(conf)
    old_config = tmp_path / "old-config"
    old_config.write_text(f"Include {stale}/*.conf\n")
    code, out, err = await ssh_async(world, old_config, name, "echo should-not-run")
    assert code == 255
    assert b"should-not-run" not in out
    assert b"Host key verification failed" in err or b"CHANGED" in err
    world.run("stop", name, "--wait")
    assert not (hosts / f"{name}.known_hosts").exists(), "stop --wait removes the entry"
