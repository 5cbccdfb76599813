"""Monitors of instances any worker can reach (ssh, aws; here the toy backend) run on
the watch queue of one worker process and send no heartbeats of their own: that
process's lease stands for them. When the process goes, its lease ends and every
environment it watched starts its monitor again on a live worker. Two worker
processes (each with its own queues and lease) in this process, on the dev server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import devenv
from devenv.backends import registry
from devenv.models.names import Activity
from devenv.models.status import EnvironmentStatus
from devenv.settings import Settings
from devenv.worker.worker import running_workers
from devenv.workflows.lease import lease_workflow_id
from devenv.workflows.visibility import WATCHER_MEMO
from tests.local_backend import toy_backend
from tests.local_backend.test_toy_backend import TOY, until
from tests.local_backend.toy_backend import ToyBackend


@pytest.fixture
async def toy_settings(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Settings]:
    registry.register(toy_backend.ENTRY)
    client = dev_server_env.client
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    try:
        yield Settings.load()
    finally:
        registry.unregister("toy")


async def watcher(client: Client, workflow_id: str) -> str | None:
    description = await client.get_workflow_handle(workflow_id).describe()
    return await description.memo_value(WATCHER_MEMO, None, type_hint=str)


async def test_a_stopped_workers_monitors_move_to_a_live_worker(
    dev_server_env: WorkflowEnvironment, toy_settings: Settings
) -> None:
    client = dev_server_env.client
    queues = [f"watch-test-{name}-{uuid.uuid4().hex[:8]}" for name in ("a", "b")]
    stacks = [contextlib.AsyncExitStack() for _ in queues]
    target = client.service_client.config.target_host
    try:
        for stack, queue in zip(stacks, queues, strict=True):
            # One client per "process": the SDK refuses two workers of a queue on one.
            own = await Client.connect(target, data_converter=client.data_converter)
            await stack.enter_async_context(running_workers(own, toy_settings, queue))
        env = await devenv.AsyncClient().start(TOY, name="toy-lease", inactivity_duration="1h")
        state = await env.state()
        assert state.instance is not None
        workflow_id = state.workflow_id

        async def watched_from() -> str | None:
            return await watcher(client, workflow_id)

        first = await until(watched_from, "the monitor to start on a watch queue")
        assert first in queues, "monitored from the watch queue of the worker that ran it"
        history = [e async for e in client.get_workflow_handle(workflow_id).fetch_history_events()]
        scheduled = [
            e.activity_task_scheduled_event_attributes
            for e in history
            if e.activity_task_scheduled_event_attributes.activity_type.name == Activity.MONITOR
        ]
        assert [s.task_queue.name for s in scheduled] == [first]
        assert not scheduled[0].heartbeat_timeout.ToTimedelta(), "no heartbeat of its own"

        gone = queues.index(first)
        other = queues[1 - gone]
        await stacks[gone].aclose()  # that worker process stops

        async def moved() -> str | None:
            now = await watched_from()
            return now if now == other else None

        await until(moved, "the monitor to move to the live worker", timeout=30)
        status = await env.status()
        assert status.status == "running", "a lost watcher never ends an environment"

        ToyBackend.instances[state.instance.instance_id].set(1)

        async def active() -> EnvironmentStatus | None:
            now = await env.status()
            return now if now.activity == "active" else None

        await until(active, "the moved monitor to report the user")
        events = [e.message for e in (await env.state()).events]
        assert f"the worker watching from {first} is gone; monitor restarting" in events
        await env.stop()
    finally:
        for stack in stacks:
            await stack.aclose()
        for queue in queues:  # no worker of this test is left to finish them
            with contextlib.suppress(RPCError):
                await client.get_workflow_handle(lease_workflow_id(queue)).terminate()
