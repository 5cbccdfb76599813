"""The monitor activity on a watch queue: no heartbeats, so nothing from the server
tells it that it is no longer wanted. It stops by itself when the run it reports to
has ended (a run that continued as new) and when a newer monitor of the same
environment starts in its process. The real activity, the toy backend's presence and
a stand-in workflow on the dev server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from devenv.activities.activities import EnvironmentActivities
from devenv.models.messages import MonitorInput
from devenv.models.names import Signal
from devenv.models.state import InstanceInfo, PresenceReport
from devenv.settings import Settings
from tests.local_backend.toy_backend import ToyBackend


@workflow.defn(name="MonitoredStandIn", sandboxed=False)  # its module imports I/O code
class MonitoredStandIn:
    """Continues as new once (when told ``first``), then collects what it is told."""

    def __init__(self) -> None:
        self.reports: list[int] = []

    @workflow.run
    async def run(self, first: bool) -> None:
        if first:
            workflow.continue_as_new(False)
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=Signal.RECORD_PRESENCE)
    def record(self, report: PresenceReport) -> None:
        self.reports.append(report.connections)

    @workflow.query
    def seen(self) -> list[int]:
        return self.reports


@pytest.fixture
async def stand_in(
    dev_server_env: WorkflowEnvironment,
) -> AsyncIterator[tuple[Client, WorkflowHandle[MonitoredStandIn, None]]]:
    client = dev_server_env.client
    queue = f"stand-in-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[MonitoredStandIn]):
        handle = await client.start_workflow(
            MonitoredStandIn.run, True, id=f"stand-in-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        latest = client.get_workflow_handle(handle.id)
        for _ in range(200):
            if (await latest.describe()).run_id != handle.first_execution_run_id:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the stand-in never continued as new")
        try:
            yield client, handle
        finally:
            with contextlib.suppress(RPCError):  # a test may have ended it
                await client.get_workflow_handle(handle.id).terminate()


@contextlib.asynccontextmanager
async def monitoring(
    acts: EnvironmentActivities, request: MonitorInput
) -> AsyncIterator[asyncio.Task[None]]:
    """The real monitor activity running (no heartbeat timeout), cancelled after."""
    running = asyncio.create_task(ActivityEnvironment().run(acts.monitor, request))
    try:
        yield running
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)


@dataclass
class Watched:
    """A test's stand-in workflow, a fresh toy instance, and the real activities."""

    client: Client
    handle: WorkflowHandle[MonitoredStandIn, None]
    instance: InstanceInfo
    acts: EnvironmentActivities


@pytest.fixture
def watched(
    stand_in: tuple[Client, WorkflowHandle[MonitoredStandIn, None]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Watched:
    client, handle = stand_in
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "home"))
    settings = Settings.load()
    acts = EnvironmentActivities(client, settings, {"toy": ToyBackend(settings)})
    return Watched(client, handle, ToyBackend.create(uuid.uuid4().hex), acts)


async def until_seen(client: Client, workflow_id: str, wanted: list[int]) -> None:
    """Poll the stand-in's latest run until it has seen exactly ``wanted``."""
    latest = client.get_workflow_handle(workflow_id)
    for _ in range(200):
        if await latest.query(MonitoredStandIn.seen) == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"saw {await latest.query(MonitoredStandIn.seen)}, never {wanted}")


async def test_a_monitor_of_a_run_that_continued_as_new_stops_at_its_first_report(
    watched: Watched,
) -> None:
    client, handle, instance, acts = watched.client, watched.handle, watched.instance, watched.acts
    old_run = handle.first_execution_run_id
    assert old_run is not None

    stale = MonitorInput(
        workflow_id=handle.id, instance=instance, keepalive_seconds=60, run_id=old_run
    )
    # Its first report (who is there now) finds the run gone: it returns.
    await asyncio.wait_for(ActivityEnvironment().run(acts.monitor, stale), 10)
    assert await client.get_workflow_handle(handle.id).query(MonitoredStandIn.seen) == []
    # The same monitor for the current run reports to it, and keeps going.
    current_run = stale.model_copy(update={"run_id": None})
    async with monitoring(acts, current_run) as running:
        await until_seen(client, handle.id, [0])
        assert not running.done()


async def test_a_newer_monitor_of_the_same_environment_replaces_the_older(
    watched: Watched,
) -> None:
    client, handle, instance, acts = watched.client, watched.handle, watched.instance, watched.acts
    request = MonitorInput(workflow_id=handle.id, instance=instance, keepalive_seconds=60)

    async with monitoring(acts, request) as older:
        await until_seen(client, handle.id, [0])
        async with monitoring(acts, request) as newer:
            await asyncio.wait_for(older, 10)  # returned: replaced
            assert not newer.done()
            ToyBackend.instances[instance.instance_id].set(2)
            # The newer one's first report, then the change.
            await until_seen(client, handle.id, [0, 0, 2])


async def test_a_monitor_that_loses_its_stream_after_the_workflow_ended_stops(
    watched: Watched,
) -> None:
    """Without heartbeats no cancel reaches it: a lost stream is when it asks."""
    client, handle, instance, acts = watched.client, watched.handle, watched.instance, watched.acts
    latest = client.get_workflow_handle(handle.id)
    run_id = (await latest.describe()).run_id
    request = MonitorInput(
        workflow_id=handle.id, instance=instance, keepalive_seconds=60, run_id=run_id
    )
    async with monitoring(acts, request) as running:
        await until_seen(client, handle.id, [0])
        ToyBackend.instances[instance.instance_id].drop()  # a blip while it runs: reconnects
        await asyncio.sleep(1.5)  # past the 1 s reconnect delay
        assert not running.done()
        await latest.terminate()
        ToyBackend.instances[instance.instance_id].drop()  # the next blip finds it ended
        await asyncio.wait_for(asyncio.shield(running), 10)
