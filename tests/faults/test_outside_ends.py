"""Workflows ended, or broken, outside devenv: rows never lie, and nothing stays running.

An environment's row lives in its workflow's memo; a workflow closed by another Temporal
client (`temporal workflow terminate`, the Web UI's Terminate) never wrote its end there,
and one whose workflow tasks keep failing cannot write anything. Both used to be listed
alive (and `devenv ps NAME` printed a traceback).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from devenv.backends.local.proctools import is_running as alive
from devenv.worker import binaries
from tests.faults.cluster import Cluster, kill9, wait_for

pytestmark = pytest.mark.faults

BROKEN_WORKER = """
import asyncio, sys
from typing import Any
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import Worker
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.models.state import WORKFLOW_TYPE


@workflow.defn(name=WORKFLOW_TYPE, sandboxed=False)
class Broken:
    '''A bad deploy: the environment's workflow code raises in every task.'''

    @workflow.run
    async def run(self, state: dict[str, Any]) -> None:
        raise RuntimeError("a bug in this worker's workflow code")


async def main() -> None:
    client = await Client.connect(sys.argv[1])
    worker = Worker(client, task_queue=SHARED_TASK_QUEUE, workflows=[Broken])
    print("polling", flush=True)
    await worker.run()


asyncio.run(main())
"""


def temporal(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binaries.temporal_cli()), *args, "--address", f"127.0.0.1:{cluster.temporal_port}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def api_answers(cluster: Cluster, *paths: str) -> list[tuple[int, object]]:
    """What the HTTP API (the real app, in process, as the local admin) answers."""
    import asyncio

    import httpx

    from devenv.api.app import create_app
    from devenv.client.async_client import AsyncClient
    from devenv.client.tokens import UserStore

    store = UserStore(cluster.settings)
    token, _ = store.local_admin_token()

    async def ask() -> list[tuple[int, object]]:
        app = create_app(AsyncClient(settings=cluster.settings), store)
        transport = httpx.ASGITransport(app=app)
        auth = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answers = [await http.get(f"/api/v1{path}", headers=auth) for path in paths]
        return [(answer.status_code, answer.json()) for answer in answers]

    return asyncio.run(ask())


def listed(cluster: Cluster, name: str) -> dict[str, object]:
    rows = json.loads(cluster.run("ps", "--all", "--json").stdout)
    [row] = [row for row in rows if row["name"] == name]
    return dict(row)


def test_an_environment_terminated_outside_devenv_is_shown_ended_and_gc_ends_its_instance(
    cluster: Cluster,
) -> None:
    name = "outside"
    cluster.start_env(name, "--inactivity", "1h")
    [pid] = cluster.instance_pids(name)
    ended = temporal(cluster, "workflow", "terminate", "-w", f"devenv-{name}", "--reason", "web")
    assert ended.returncode == 0, ended.stderr

    row = listed(cluster, name)
    assert (row["status"], row["termination_reason"]) == ("terminated", "terminated outside devenv")
    assert row["deadline"] is None and row["activity"] is None
    plain = json.loads(cluster.run("ps", "--json").stdout)
    assert name not in [r["name"] for r in plain]
    one = cluster.run("ps", name)
    assert "terminated outside devenv" in one.stdout and "Traceback" not in one.stderr
    table = cluster.run("ps", "--all")
    # Its row, not the cluster's: other tests' environments share this server.
    statuses = [
        line.split()[1] for line in table.stdout.splitlines()[1:] if line.split()[0] == name
    ]
    assert statuses == ["terminated"], table.stdout

    stop = cluster.run("stop", name, check=False)
    assert stop.returncode == 2
    assert "is terminated (terminated outside devenv); nothing changed" in stop.stderr
    assert "terminated outside devenv: its instance may still run" in cluster.logs(name)
    verbose = cluster.run("ps", name, "-v").stdout
    assert "terminated" in verbose.splitlines()[0] and "running" not in verbose.splitlines()[0]

    # Its instance still runs: gc calls it an orphan and ends it.
    assert alive(pid)
    found = json.loads(cluster.run("gc", "--json").stdout)
    mine = [item for item in found["leftovers"] if item["workflow_id"] == f"devenv-{name}"]
    assert [item["status"] for item in mine] == ["orphan"]
    assert "terminated" in mine[0]["reason"]
    cluster.run("gc", "--yes")
    wait_for(lambda: not alive(pid), 10, "the orphan instance to end")
    assert cluster.instance_pids(name) == []


def test_a_workflow_whose_tasks_fail_is_shown_so_and_stop_force_ends_everything(
    cluster: Cluster, tmp_path: Path
) -> None:
    name = "wedged"
    cluster.start_env(name, "--inactivity", "1h")
    [pid] = cluster.instance_pids(name)
    cluster.kill_worker()
    script = tmp_path / "broken_worker.py"
    script.write_text(BROKEN_WORKER)
    log = (tmp_path / "broken.out").open("wb")
    broken = subprocess.Popen(
        [sys.executable, str(script), f"127.0.0.1:{cluster.temporal_port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: b"polling" in (tmp_path / "broken.out").read_bytes(), 30, "the worker")
        # Any signal gives the workflow a task, which the broken code fails, again and again.
        poke = temporal(
            cluster, "workflow", "signal", "-w", f"devenv-{name}", "--name", "update_inactivity"
        )
        assert poke.returncode == 0, poke.stderr
        shown = wait_for(
            lambda: (
                "workflow tasks are failing" in (r := cluster.run("ps", name, check=False)).stderr
                and r
            ),
            60,
            "ps to say its workflow tasks fail",
            every=1,
        )
        assert "a bug in this worker's workflow code" in shown.stderr
        assert f"devenv stop --force {name}" in shown.stderr
        assert name in shown.stdout and "Traceback" not in shown.stderr

        # The HTTP API answered 500 with a traceback in the server log: now one line.
        for code, body in api_answers(
            cluster, f"/environments/{name}", f"/environments/{name}/events"
        ):
            assert code == 503, body
            assert body == {
                "error": f"environment devenv-{name} cannot answer: its workflow tasks are "
                f"failing; `devenv ps {name}` says why, `devenv stop --force {name}` ends it"
            }
        logs = cluster.run("logs", name, check=False)
        assert logs.returncode == 2 and "Traceback" not in logs.stderr
        assert "its workflow tasks are failing" in logs.stderr
        plain = cluster.run("stop", name, check=False)
        assert plain.returncode == 2 and "workflow tasks are failing" in plain.stderr
        assert f"`devenv stop --force {name}`" in plain.stderr

        forced = cluster.run("stop", "--force", name)
        assert f"devenv-{name}: local" in forced.stdout and "ended outside its workflow" in (
            forced.stdout
        )
        assert f"devenv-{name}: workflow terminated" in forced.stdout
        wait_for(lambda: not alive(pid), 10, "the instance to end")
        assert cluster.instance_pids(name) == []
        row = listed(cluster, name)
        assert row["status"] == "terminated" and row["deadline"] is None
        assert row["termination_reason"] == "stopped with devenv stop --force"
        unreadable = cluster.run("logs", name, check=False)  # the broken code cannot replay
        assert "has ended (terminated)" in unreadable.stderr
    finally:
        kill9(broken)
        log.close()
        cluster.start_worker()
