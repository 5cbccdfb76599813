"""The Python API, used as the README shows it: real server, real worker, real instances."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import devenv
from devenv.errors import (
    DevenvError,
    EnvironmentEndedError,
    EnvironmentNotFoundError,
    InvalidValueError,
    ServerUnreachableError,
)
from tests.e2e.harness import Devenv, free_port

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "examples" / "dev.yml"

# The README's and the example, comments and all (hence the long lines).
README_EXAMPLE = """\
import devenv

env = devenv.start("dev.yml", inactivity_duration="2h")   # a path, a dict or a config model; keyword overrides
print(env.name, env.status().deadline)
env.update(inactivity_duration="8h")                       # validated, in force at once; returns the new status
env.update(max_duration="off")
env.stop(wait=True)

for e in devenv.list(all=True):                            # the same fields as `devenv ps --json`
    print(e.name, e.status, e.activity, e.connections, e.deadline)
env = devenv.get("my-env")                                 # by name or workflow id
"""


@pytest.fixture
def sdk_env(devenv: Devenv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Devenv]:
    """This process configured as the e2e world's user (the SDK reads DEVENV_* and HOME)."""
    for key in [k for k in os.environ if k.startswith("DEVENV_")]:
        monkeypatch.delenv(key)
    for key, value in devenv.env.items():
        if key.startswith("DEVENV_") or key == "HOME":
            monkeypatch.setenv(key, value)
    yield devenv


def test_the_readme_example_runs_as_written_on_the_embedded_default(tmp_path: Path) -> None:
    """A fresh machine: no server runs; the script starts it, as `devenv start` would."""
    world = Devenv(tmp_path / "world")
    workdir = tmp_path / "work"
    workdir.mkdir()
    shutil.copy(EXAMPLE, workdir / "dev.yml")
    (workdir / "example.py").write_text(README_EXAMPLE)
    try:
        result = subprocess.run(
            [sys.executable, "example.py"],
            cwd=workdir,
            env=world.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        first, *listed = result.stdout.splitlines()
        name, deadline = first.split(" ", 1)
        assert name == "my-env"
        # Nobody connected: the idle deadline is 2h after it became ready.
        assert datetime.fromisoformat(deadline) > datetime.now(UTC) + timedelta(hours=1, minutes=59)
        assert "my-env terminated None 0 None" in listed, listed
        rows = json.loads(world.run("ps", "--all", "--json").stdout)
        [row] = [r for r in rows if r["name"] == "my-env"]
        assert row["status"] == "terminated"
        assert row["termination_reason"] == "stopped_by_user"
        assert row["inactivity_duration"] == 8 * 3600 and row["max_duration"] is None
        assert (world.home / "server.pid").exists(), "the embedded server was started"
    finally:
        world.cleanup()


async def test_the_async_sdk_changes_checks_and_stops(sdk_env: Devenv) -> None:
    client = devenv.AsyncClient()
    env = await client.start(EXAMPLE, name="sdk-async", inactivity_duration="2h")
    assert env.ssh_entry is not None and env.ssh_entry.ssh_config.exists()
    before = await env.status()
    assert (before.status, before.activity, before.inactivity_duration) == ("running", "idle", 7200)

    after = await env.update(inactivity_duration="8h")
    assert after.inactivity_duration == 8 * 3600
    assert after.deadline is not None and before.deadline is not None
    assert (after.deadline - before.deadline).total_seconds() == pytest.approx(6 * 3600, abs=1)
    assert (await env.update(max_duration="off")).max_duration is None

    for bad, why in (("1x", "is not a duration"), ("-5", "is negative"), ("5w", "longer than 4")):
        with pytest.raises(InvalidValueError) as raised:
            await env.update(inactivity_duration=bad)
        assert isinstance(raised.value, ValueError) and isinstance(raised.value, DevenvError)
        line = str(raised.value)
        assert line.startswith(f"inactivity_duration: {bad!r} ") and why in line
        assert "\n" not in line
        # The CLI says the same after the option's name.
        cli = sdk_env.run("signal", "sdk-async", "--inactivity", bad, check=False)
        assert cli.returncode == 2
        assert cli.stderr.strip() == f"error: --inactivity: {line.split(': ', 1)[1]}"
    assert (await env.status()).inactivity_duration == 8 * 3600, "nothing changed"

    same = await client.get("devenv-sdk-async")
    assert same.name == "sdk-async" and (await same.status()).name == "sdk-async"
    listed = await devenv.aio.list()
    assert "sdk-async" in [row.name for row in listed]
    # A page at a time (what `ps` prints for a fleet): the same environments.
    pages = [page async for page in client.list_pages(first_page_size=1)]
    assert len(pages[0]) == 1 and pages[-1].last
    assert sorted(row.name for page in pages for row in page) == sorted(r.name for r in listed)
    for page in devenv.Client().list_pages(first_page_size=1):
        assert [row.name for row in page] == [pages[0][0].name]
        break  # stopping early closes the listing on the client's own loop
    cli_rows = json.loads(sdk_env.run("ps", "sdk-async", "--json").stdout)
    assert cli_rows == [json.loads((await env.status()).model_dump_json())]

    ended = await env.stop(wait=True)
    assert (ended.status, ended.termination_reason) == ("terminated", "stopped_by_user")
    with pytest.raises(EnvironmentEndedError, match="nothing changed"):
        await env.update(inactivity_duration="1h")
    with pytest.raises(EnvironmentNotFoundError, match="no environment named 'never-was'"):
        await client.get("never-was")
    with pytest.raises(InvalidValueError, match="NAME: invalid value"):
        await client.get("no such name")


async def test_an_unreachable_server_is_its_own_error(sdk_env: Devenv) -> None:
    client = devenv.AsyncClient(address=f"127.0.0.1:{free_port()}")
    with pytest.raises(ServerUnreachableError, match=r"no Temporal server answers at 127\.0\.0\.1"):
        await client.list()
    with pytest.raises(ServerUnreachableError, match=r"no Temporal server answers"):
        _ = [page async for page in client.list_pages()]


async def test_start_takes_a_mapping_or_a_model_and_bad_input_starts_nothing(
    sdk_env: Devenv,
) -> None:
    from devenv.backends.local.config import LocalConfig

    client = devenv.AsyncClient()
    with pytest.raises(InvalidValueError) as raised:
        await client.start({"type": "dev-environment", "inactivity": "2h"}, name="sdk-bad")
    assert str(raised.value).startswith("config: unknown key 'inactivity': did you mean")
    with pytest.raises(InvalidValueError, match="config: backend: invalid value 'gcp'"):
        await client.start({"type": "dev-environment", "backend": "gcp"}, name="sdk-bad")
    with pytest.raises(InvalidValueError, match="max_duration: invalid value '2x'"):
        await client.start(EXAMPLE, name="sdk-bad", max_duration="2x")
    assert "sdk-bad" not in [row.name for row in await client.list(all=True)]

    model = LocalConfig(type="dev-environment", name="sdk-model", inactivity_duration=600)
    env = await client.start(model, max_duration="1d")
    status = await env.status()
    assert (status.name, status.inactivity_duration, status.max_duration) == (
        "sdk-model",
        600,
        86400,
    )
    await env.stop(wait=True)


def test_the_blocking_client_is_the_same_api(sdk_env: Devenv) -> None:
    client = devenv.Client()
    env = client.start({"type": "dev-environment", "name": "sdk-sync"}, inactivity_duration=90)
    assert env.status().inactivity_duration == 90
    assert env.update(inactivity_duration="off").inactivity_duration is None
    assert any(event.message.startswith("inactivity threshold changed") for event in env.events())
    assert env.stop(wait=True).termination_reason == "stopped_by_user"
