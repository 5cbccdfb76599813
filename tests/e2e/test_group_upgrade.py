"""Groups on a server whose database predates them: ``devenv server`` registers the
``DevEnvGroup`` search attribute in the embedded server's existing SQLite file (the dev
server's ``--search-attribute`` does so only in a database it creates), and a server that
lacks it refuses a group's listing in one line saying what to do, no traceback."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import devenv
from devenv.errors import ServerRefusedError
from devenv.worker.binaries import temporal_cli
from tests.e2e.harness import DEVENV, Devenv, free_port, serving, wait_for

pytestmark = pytest.mark.e2e

BEFORE_GROUPS = ["DevEnvStatus=Keyword", "DevEnvBackend=Keyword", "DevEnvName=Keyword"]
"""What an older devenv registered (DevEnvDeadline too; left out, it makes no difference)."""


def old_args() -> list[str]:
    return [arg for pair in BEFORE_GROUPS for arg in ("--search-attribute", pair)]


def test_devenv_server_adds_the_group_attribute_to_an_older_database(tmp_path: Path) -> None:
    world = Devenv(tmp_path)
    world.home.mkdir(parents=True)
    port = free_port()
    database = str(world.home / "temporal.db")
    command = [str(temporal_cli()), "server", "start-dev", "--headless", "--ip", "127.0.0.1"]
    command += ["--port", str(port), "--db-filename", database, *old_args()]
    older = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        listed = [str(temporal_cli()), "operator", "search-attribute", "list"]
        listed += ["--address", f"127.0.0.1:{port}"]
        wait_for(lambda: subprocess.run(listed, capture_output=True).returncode == 0, 30, "older")
    finally:
        older.terminate()
        older.wait(20)
    with serving(world):
        result = world.run("ps", "--group", "gpu-work", "--json")
        assert json.loads(result.stdout) == []
        server_out = (world.root / "server.out").read_text(errors="replace")
        assert "registered search attributes DevEnvDeadline, DevEnvGroup" in server_out


async def test_a_server_without_the_group_attribute_is_named_in_one_line(tmp_path: Path) -> None:
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(temporal_cli()),
        ui=False,
        dev_server_extra_args=old_args(),
    ) as env:
        address = env.client.service_client.config.target_host
        client = devenv.AsyncClient(address=address)
        with pytest.raises(ServerRefusedError) as refused:
            await client.list(group="gpu-work")
        assert str(refused.value) == (
            f"the Temporal server at {address} has no search attribute DevEnvGroup, which "
            "groups need; restart `devenv server` (the embedded server registers it) or, on "
            "a cluster of your own: temporal operator search-attribute create --name "
            "DevEnvGroup --type Keyword"
        )
        variables = {"DEVENV_TEMPORAL_ADDRESS": address, "PATH": "/usr/bin:/bin"}
        variables |= {"HOME": str(tmp_path), "DEVENV_HOME": str(tmp_path / "home")}
        result = await asyncio.to_thread(
            subprocess.run,
            [DEVENV, "ps", "--group", "gpu-work"],
            env=variables,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [f"error: {refused.value}"]
        await client.aclose()
