"""Key material and tokens stay where they belong, after a real start, session and stop.

* Files holding keys are 0600 in 0700 folders.
* No private key and no token reaches the workflow history, a log, `devenv logs`, or
  any other file devenv writes.
* Nothing devenv places inside an environment (the shell's process environment, the
  workspace) carries credentials or Temporal coordinates.

Honest limit: the local backend runs the environment as the same OS user on the same
host as devenv itself, so it is *not* an isolation boundary against that user; a shell
in the environment can read anything the user can (``~/.devenv`` included, and the
workspace itself lives under DEVENV_HOME, so its path says where). These tests cover
what devenv itself hands to the environment, which is what matters once the same code
runs on a separate machine (the ssh and aws backends).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from tests.e2e.harness import Devenv
from tests.security.conftest import SECRET_VALUES, instance_dirs, mode

pytestmark = pytest.mark.e2e

PRIVATE_MARKER = "PRIVATE KEY"
SSH_A = ["ssh", "-A", "-o", "BatchMode=yes", "-F"]


def key_body_lines(path: Path) -> list[str]:
    """The base64 lines between BEGIN and END: the key material itself."""
    lines = [line.strip() for line in path.read_text().splitlines()]
    assert lines[0].startswith("-----BEGIN") and PRIVATE_MARKER in lines[0], path
    body = [line for line in lines[1:] if line and not line.startswith("-----")]
    assert body, path
    return body


def private_key_files(world: Devenv) -> list[Path]:
    """Every private key devenv holds for this world while ``sec-main`` runs."""
    files = [
        world.home / "keys" / "internal_ed25519",
        world.home / "ssh" / "id_ed25519",  # generated: the user has no ~/.ssh key
        *(world.home / "envs").glob("*/instances/*/host_ed25519"),
    ]
    assert len(files) >= 3, files
    return files


def walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        yield Path(folder)
        for name in sorted(files):
            yield Path(folder) / name


async def history_text(world: Devenv) -> str:
    """Every workflow's full history as JSON, with every payload decoded to text."""
    client = await Client.connect(f"127.0.0.1:{world.temporal_port}")
    texts: list[str] = []
    count = 0
    async for execution in client.list_workflows():
        count += 1
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        history = json.loads((await handle.fetch_history()).to_json())
        texts.append(json.dumps(history))
        texts.extend(_decoded_payloads(history))
    assert count > 0
    return "\n".join(texts)


def _decoded_payloads(node: Any) -> Iterator[str]:
    """Payload bodies are base64 in history JSON: decode them, or a grep sees nothing."""
    if isinstance(node, dict):
        data = node.get("data")
        if isinstance(data, str) and "metadata" in node:
            yield base64.b64decode(data).decode(errors="replace")
        for value in node.values():
            yield from _decoded_payloads(value)
    elif isinstance(node, list):
        for value in node:
            yield from _decoded_payloads(value)


def shell_environment(world: Devenv, name: str) -> dict[str, str]:
    result = world.ssh(name, "env -0")
    assert result.returncode == 0, result.stderr
    pairs = (item.split("=", 1) for item in result.stdout.split("\0") if "=" in item)
    return {key: value for key, value in pairs}


def test_key_files_are_0600_in_0700_folders(world: Devenv, main_env: str) -> None:
    home = world.home
    [instance] = instance_dirs(world, main_env)
    expected_private = {
        home / "keys" / "internal_ed25519",
        home / "keys" / "internal_ed25519.pub",
        home / "ssh" / "id_ed25519",
        home / "ssh" / "id_ed25519.pub",
        home / "ssh" / "config",
        home / "ssh" / "hosts" / f"{main_env}.conf",
        home / "ssh" / "hosts" / f"{main_env}.known_hosts",
        instance / "host_ed25519",
        instance / "host_ed25519.pub",
        instance / "server.json",
        world.user_home / ".ssh" / "config",
    }
    for path in sorted(expected_private):
        assert mode(path) == 0o600, f"{path}: {mode(path):04o}"
    # Every folder from DEVENV_HOME down to each of those files.
    folders = {parent for path in expected_private for parent in path.parents}
    for folder in sorted(folders & ({home} | set(home.rglob("*")))):
        assert mode(folder) == 0o700, f"{folder}: {mode(folder):04o}"
    assert mode(world.user_home / ".ssh") == 0o700

    # And no private key lies anywhere else (a copy in a log, a temporary file...).
    workspace = home / "envs" / main_env / "workspace"
    for path in walk(home):
        if path.is_file() and workspace not in path.parents:
            if PRIVATE_MARKER.encode() in path.read_bytes():
                assert path in expected_private, f"unexpected private key file {path}"


async def test_private_keys_and_tokens_never_leave_their_files(
    world: Devenv, tmp_path: Path
) -> None:
    """Start, use over ssh and stop an environment; then look everywhere for key material."""
    example = Path(__file__).parents[2] / "examples" / "dev.yml"
    world.run("start", str(example), "--name", "sec-leak", "--inactivity", "1h")
    key_files = private_key_files(world)
    needles = {PRIVATE_MARKER, *SECRET_VALUES}
    for path in key_files:
        needles.update(key_body_lines(path))

    session = world.open_session("sec-leak")
    try:
        session.send("echo in-session-$((6*7))\n")
        session.expect("in-session-42")
    finally:
        assert session.close() == 0
    assert world.ssh("sec-leak", "true").returncode == 0
    world.run("stop", "sec-leak", "--wait")

    haystacks: dict[str, str] = {
        "workflow history": await history_text(world),
        "devenv logs": world.run("logs", "sec-leak").stdout,
        "devenv logs --json": world.run("logs", "sec-leak", "--json").stdout,
        "devenv ps --all --json": world.run("ps", "--all", "--json").stdout,
    }
    user_public = (world.home / "ssh" / "id_ed25519.pub").read_text().split()[1]
    assert user_public in haystacks["workflow history"], "payloads must have been decoded"
    logs_dir = world.home / "logs"
    assert (logs_dir / "server.log").is_file(), "the server devenv start launched logs here"
    skip = {path.resolve() for path in key_files}
    checked = 0
    for root in (world.home, world.user_home):
        for path in walk(root):
            if path.is_file() and not path.is_symlink() and path.resolve() not in skip:
                haystacks[str(path)] = path.read_bytes().decode("latin-1")
                checked += 1
    assert checked > 10
    server_logs = [name for name in haystacks if name.endswith("server.log")]
    assert len(server_logs) >= 2, "the worker's log and the instances' logs were searched"

    for where, text in haystacks.items():
        for needle in needles:
            assert needle not in text, f"{needle[:24]}... found in {where}"


def test_the_shell_carries_no_credentials_or_temporal_coordinates(
    world: Devenv, main_env: str
) -> None:
    """The worker holds an API key and other DEVENV_/TEMPORAL_ variables; a shell in the
    environment sees none of them, only DEVENV_ENV with the opaque instance id."""
    env = shell_environment(world, main_env)
    [instance] = instance_dirs(world, main_env)
    assert env["DEVENV_ENV"] == instance.name
    assert main_env not in instance.name, "the instance id must not name the workflow"
    leaked = sorted(
        key for key in env if key.startswith(("DEVENV_", "TEMPORAL_")) and key != "DEVENV_ENV"
    )
    assert leaked == []
    for key, value in env.items():
        for secret in SECRET_VALUES:
            assert secret not in value, key
        assert str(world.home / "keys") not in value, key
        assert f"127.0.0.1:{world.temporal_port}" not in value, key
    assert "SSH_AUTH_SOCK" not in env

    # The instance server (the shell's parent) was started with the same cleaned environment.
    server_pid = int((instance / "server.pid").read_text())
    server_env = Path(f"/proc/{server_pid}/environ").read_bytes().decode(errors="replace")
    for secret in SECRET_VALUES:
        assert secret not in server_env
    assert "DEVENV_TEMPORAL_" not in server_env and "DEVENV_HOME=" not in server_env


def test_the_workspace_holds_nothing_of_devenv(world: Devenv, main_env: str) -> None:
    """The workspace is where the user works: no key, no token, no link out of it."""
    workspace = world.home / "envs" / main_env / "workspace"
    listing = world.ssh(main_env, "pwd; ls -A")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0] == str(workspace)
    for path in walk(workspace):
        assert not path.is_symlink(), path
        if path.is_file():
            data = path.read_bytes()
            assert PRIVATE_MARKER.encode() not in data, path
            assert not any(secret.encode() in data for secret in SECRET_VALUES), path
    for key_file in private_key_files(world):
        assert workspace not in key_file.resolve().parents, key_file


def test_agent_forwarding_is_refused(world: Devenv, main_env: str, tmp_path: Path) -> None:
    """With an agent forwarded, a shell in the environment could use the user's keys."""
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(socket_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        env = {**world.env, "SSH_AUTH_SOCK": str(socket_path)}
        result = subprocess.run(
            [*SSH_A, str(world.ssh_config), main_env, "echo agent=${SSH_AUTH_SOCK:-none}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "agent=none" in result.stdout, (result.stdout, result.stderr)
    finally:
        agent.terminate()
        agent.wait(10)
