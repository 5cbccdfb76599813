"""Each command imports only what it needs: `devenv ps` and `devenv signal` run without
the SSH stack (asyncssh, cryptography), YAML or HTTP, listing without Temporal's client
or workflow code, and `--help` without Temporal.

Whole processes, as users run them: the commands really list and change an environment
on the session's dev server (its workflow run by a worker in this process), and the
modules they loaded are read after they finished.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devenv.models.state import Status, Tuning
from tests.workflow.fakes import make_state, running_worker, start, wait_for

HEAVY = ("asyncssh", "cryptography", "yaml", "httpx", "devenv.config.loader")
"""Never needed to list environments or change one's thresholds."""
LISTING_ONLY = ("temporalio.client", "temporalio.workflow", "devenv.workflows.visibility")
"""Not needed by a listing either: it reads the visibility store over the bare connection."""
PROBE = """
import json, os, sys
from devenv.cli.app import run
code = run(sys.argv[1:])
loaded = [name for name in json.loads(os.environ["PROBE_MODULES"]) if name in sys.modules]
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump({"code": code, "loaded": loaded}, out)
sys.stdout.flush()
os._exit(0)  # as devenv.cli.app.main does: no finalisation under Temporal's threads
"""


def probe_env(tmp_path: Path, address: str, watched: tuple[str, ...]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DEVENV_")}
    env.update(
        DEVENV_HOME=str(tmp_path / "home"),
        HOME=str(tmp_path / "user"),
        DEVENV_TEMPORAL_ADDRESS=address,
        PROBE_OUT=str(tmp_path / "probe.json"),
        PROBE_MODULES=json.dumps(watched),
        COLUMNS="200",
    )
    return env


async def run_probe(
    tmp_path: Path, address: str, *args: str, watched: tuple[str, ...] = HEAVY
) -> tuple[int, list[str], str]:
    """(exit code, the watched modules it loaded, stdout) of one CLI command."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        PROBE,
        *args,
        env=probe_env(tmp_path, address, watched),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    result = json.loads((tmp_path / "probe.json").read_text())
    assert result["code"] == 0, f"devenv {' '.join(args)}: {stderr.decode()}"
    return result["code"], result["loaded"], stdout.decode()


async def test_ps_and_signal_load_neither_ssh_nor_yaml_nor_http(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_server_env.client
    address = client.service_client.config.target_host
    initial = make_state(tuning=Tuning(monitor=False))
    name = initial.spec.name
    async with running_worker(client) as fake:
        handle = await start(client, fake, initial)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)

        watched = (*HEAVY, *LISTING_ONLY)
        _, loaded, listed = await run_probe(tmp_path, address, "ps", watched=watched)
        assert name in listed and loaded == []
        _, loaded, listed = await run_probe(tmp_path, address, "ps", "--json", watched=watched)
        assert name in {row["name"] for row in json.loads(listed)} and loaded == []
        _, loaded, listed = await run_probe(tmp_path, address, "ps", name)
        assert name in listed and loaded == []

        _, loaded, changed = await run_probe(
            tmp_path, address, "signal", name, "--inactivity", "3h"
        )
        assert "inactivity 3h" in changed and loaded == []
        assert (await wait_for(handle, lambda s: True)).spec.inactivity_duration == 3 * 3600
        await handle.terminate()


def test_help_loads_no_temporal_nor_models(tmp_path: Path) -> None:
    watched = (*HEAVY, "temporalio", "devenv.client.async_client", "devenv.models.status")
    for args in (["--help"], ["ps", "--help"], ["signal", "--help"]):
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *args],
            env=probe_env(tmp_path, "127.0.0.1:1", watched),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads((tmp_path / "probe.json").read_text())
        assert result == {"code": 0, "loaded": []}, args
        assert "Usage: " in done.stdout
