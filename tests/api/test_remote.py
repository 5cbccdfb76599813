"""Remote mode: DEVENV_SERVER_URL + DEVENV_TOKEN make the SDK and the CLI talk to the
devenv server over HTTP; they print what direct mode prints."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import pytest

import devenv
from devenv.client.transports.direct import DirectTransport
from devenv.client.transports.http import HttpTransport
from devenv.errors import (
    EnvironmentEndedError,
    EnvironmentNotFoundError,
    InvalidValueError,
    ServerRefusedError,
)
from tests.api.conftest import Api
from tests.e2e.harness import DEVENV, wait_for

pytestmark = pytest.mark.e2e
T = TypeVar("T")


@pytest.fixture
def remote_as_admin(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    """This process configured as the world's admin in remote mode."""
    for key in [k for k in os.environ if k.startswith("DEVENV_")]:
        monkeypatch.delenv(key)
    for key, value in api.remote_env("admin").items():
        if key.startswith("DEVENV_") or key == "HOME":
            monkeypatch.setenv(key, value)
    yield api


def together(*calls: Callable[[], T]) -> list[T]:
    """Run CLI processes side by side: each one costs a Python start-up."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_the_cli_in_remote_mode_prints_what_direct_mode_prints(
    api: Api, example: Path, tmp_path: Path
) -> None:
    world = api.world
    _, _, made = together(
        lambda: world.run("start", str(example), "--name", "api-direct", "--detach"),
        lambda: api.start("alice", "api-remote"),
        lambda: api.remote("alice", "start", str(example), "--name", "api-by-cli", "--detach"),
    )
    assert "api-by-cli" in made.stderr
    api.remote("alice", "signal", "api-by-cli", "--inactivity", "3h")
    wait_for(
        lambda: all(
            row["status"] == "running" for row in json.loads(world.run("ps", "--json").stdout)
        ),
        30,
        "every environment running",
    )

    listings = (["ps", "--json"], ["ps", "--all", "--json"], ["ps", "api-remote", "--json"])
    outputs = together(
        *[lambda args=args: world.run(*args).stdout for args in listings],
        *[lambda args=args: api.remote("admin", *args).stdout for args in listings],
        lambda: api.remote("alice", "ps", "--json").stdout,
        lambda: api.remote("alice", "logs", "api-remote", "--json").stdout,
        lambda: world.run("logs", "api-remote", "--json").stdout,
    )
    direct, remote = outputs[:3], outputs[3:6]
    assert [json.loads(text) for text in remote] == [json.loads(text) for text in direct]
    owners = {row["name"]: row["owner"] for row in json.loads(direct[0])}
    assert owners["api-direct"] == api.admin, "direct mode records the local OS user"
    assert owners["api-remote"] == owners["api-by-cli"] == "alice"
    mine = json.loads(outputs[6])
    assert {row["name"] for row in mine} == {"api-remote", "api-by-cli"}
    by_cli = next(row for row in mine if row["name"] == "api-by-cli")
    assert by_cli["inactivity_duration"] == 3 * 3600
    assert outputs[7] == outputs[8], "logs --json"

    # Errors: one line, exit code 2, the same line as direct mode where it can be.
    wrong_token = dict(api.remote_env("alice"), DEVENV_TOKEN="devenv_not-a-real-token")
    hidden_ps, hidden_signal, bad, bad_direct, ssh, denied = together(
        lambda: api.remote("alice", "ps", "api-direct", check=False),
        lambda: api.remote("alice", "signal", "api-direct", "--inactivity", "1s", check=False),
        lambda: api.remote("alice", "signal", "api-remote", "--inactivity", "1x", check=False),
        lambda: world.run("signal", "api-remote", "--inactivity", "1x", check=False),
        lambda: api.remote("alice", "ssh", "api-remote", check=False),
        lambda: subprocess.run(
            [DEVENV, "ps"], env=wrong_token, capture_output=True, text=True, timeout=60
        ),
    )
    for hidden in (hidden_ps, hidden_signal):
        assert (hidden.returncode, hidden.stderr.strip()) == (
            2,
            "error: no environment named 'api-direct' (see `devenv ps --all`)",
        )
    assert (bad.returncode, bad.stderr) == (2, bad_direct.stderr)
    assert ssh.returncode == 255 and "Permission denied (publickey)" in ssh.stderr, (
        "the server machine's key is not alice's: her environment refuses it"
    )
    assert denied.returncode == 2
    assert "refused the token" in denied.stderr and "not-a-real-token" not in denied.stderr
    # --force ends an instance by the server's own records: one line, nothing ended.
    forced = api.remote("alice", "stop", "--force", "api-remote", check=False)
    assert (forced.returncode, forced.stderr.strip()) == (
        2,
        "error: --force: run `devenv stop --force api-remote` on the devenv server itself "
        "(without DEVENV_SERVER_URL): it ends the instance by the server's own records",
    )

    # On alice's own machine (her key), `devenv ssh` works remotely: the entry is written
    # there from what the server says, the host key pinned.
    alice = api.machine("alice", tmp_path)
    inside = subprocess.run(
        [DEVENV, "ssh", "api-remote", "--", "echo", "remote-$((6*7))"],
        env=alice,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (inside.returncode, inside.stdout) == (0, "remote-42\n"), inside.stderr
    known = Path(alice["DEVENV_HOME"]) / "ssh" / "hosts" / "api-remote.known_hosts"
    [host_key] = world.home.glob("envs/api-remote/instances/*/host_ed25519.pub")
    assert known.read_text().split()[:3] == ["devenv-api-remote", *host_key.read_text().split()[:2]]

    stopped, _, _ = together(
        lambda: api.remote("alice", "stop", "api-by-cli", "--wait", "--json"),
        lambda: world.run("stop", "api-direct"),
        lambda: world.run("stop", "api-remote"),
    )
    assert json.loads(stopped.stdout)[0]["termination_reason"] == "stopped_by_user"


async def test_the_sdk_in_remote_mode_returns_what_the_direct_sdk_returns(
    remote_as_admin: Api,
) -> None:
    api = remote_as_admin
    client = devenv.AsyncClient()
    assert isinstance(client.transport, HttpTransport)
    env = await client.start({"type": "dev-environment"}, name="api-sdk", inactivity_duration="2h")
    assert isinstance(env, devenv.AsyncEnvironment) and env.workflow_id == "devenv-api-sdk"
    status = await env.status()
    assert (status.status, status.owner, status.inactivity_duration) == (
        "running",
        api.admin,
        7200,
    )

    direct = devenv.AsyncClient(address=f"127.0.0.1:{api.world.temporal_port}")
    assert isinstance(direct.transport, DirectTransport)
    same = await direct.get("api-sdk")
    assert await same.status() == status

    changed = await env.update(inactivity_duration="8h")
    assert changed.inactivity_duration == 8 * 3600
    assert changed == await same.status()
    with pytest.raises(InvalidValueError) as remote_bad:
        await env.update(inactivity_duration="1x")
    with pytest.raises(InvalidValueError) as direct_bad:
        await same.update(inactivity_duration="1x")
    assert str(remote_bad.value) == str(direct_bad.value)
    assert await env.events() == await same.events()

    listed = await client.list()
    assert [row.model_dump() for row in listed] == [row.model_dump() for row in await direct.list()]
    blocking = devenv.Client().list(all=True)
    assert [row.model_dump() for row in blocking] == [
        row.model_dump() for row in await direct.list(all=True)
    ]
    # The module-level functions, in a process of their own (they keep their client).
    script = (
        "import asyncio, json, devenv\n"
        "rows = [r.model_dump(mode='json') for r in devenv.list(all=True)]\n"
        "again = asyncio.run(devenv.aio.list(all=True))\n"
        "assert [r.model_dump(mode='json') for r in again] == rows\n"
        "print(json.dumps(rows))\n"
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env=api.remote_env("admin"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        row.model_dump(mode="json") for row in await direct.list(all=True)
    ]

    with pytest.raises(EnvironmentNotFoundError):
        await client.get("api-no-such-thing")
    with pytest.raises(ServerRefusedError):
        await devenv.AsyncClient(token="devenv_wrong").list()

    ended = await env.stop(wait=True)
    assert (ended.status, ended.termination_reason) == ("terminated", "stopped_by_user")
    with pytest.raises(EnvironmentEndedError) as remote_ended:
        await env.update(max_duration="1h")
    with pytest.raises(EnvironmentEndedError) as direct_ended:
        await same.update(max_duration="1h")
    assert str(remote_ended.value) == str(direct_ended.value)
    await client.aclose()


def test_start_in_remote_mode_waits_and_leaves_a_working_ssh_entry(
    api: Api, example: Path, tmp_path: Path
) -> None:
    """`devenv start FILE` without --detach on a colleague's machine: it waits until the
    environment accepts SSH, prints how to connect, and plain `ssh -F` works there."""
    alice = api.machine("alice", tmp_path)
    started = subprocess.run(
        [DEVENV, "start", str(example), "--name", "api-remote-wait"],
        env=alice,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert started.returncode == 0, started.stderr
    assert "Environment api-remote-wait is running" in started.stdout
    config = Path(alice["DEVENV_HOME"]) / "ssh" / "config"
    assert f"ssh -F {config} api-remote-wait" in started.stdout
    inside = subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "api-remote-wait", "id", "-un"],
        env=alice,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert inside.returncode == 0, inside.stderr
    api.remote("alice", "stop", "api-remote-wait", "--wait")
