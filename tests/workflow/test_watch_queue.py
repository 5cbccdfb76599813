"""Where the monitor runs. An instance any worker can reach (ssh, aws: the shared
queue) is watched from the watch queue of the worker process that ran the workflow
task, without heartbeats of its own, and the memo names that queue so a lapsed lease
finds it; a local instance is watched from its host's queue, heartbeating. Real
time on the dev server (the fake monitor holds)."""

from __future__ import annotations

from typing import Any

from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devenv.models.messages import WatcherGone
from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.state import Status, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.policies import MONITOR_HEARTBEAT
from devenv.workflows.visibility import WATCHER_MEMO
from tests.workflow.fakes import make_state, running_worker, start, wait_for

WF = DevEnvironmentWorkflow
H = 3600


async def monitors_scheduled(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [
        event
        async for event in handle.fetch_history_events()
        if event.activity_task_scheduled_event_attributes.activity_type.name == Activity.MONITOR
    ]


async def first_monitor(handle: WorkflowHandle[Any, Any]) -> Any:
    """How the first monitor was scheduled (queue, heartbeat timeout)."""
    return (await monitors_scheduled(handle))[0].activity_task_scheduled_event_attributes


async def watcher(client: Client, handle: WorkflowHandle[Any, Any]) -> str | None:
    description = await client.get_workflow_handle(handle.id).describe()
    return await description.memo_value(WATCHER_MEMO, None, type_hint=str)


async def test_a_shared_queue_instance_is_watched_from_the_workers_watch_queue(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    async with running_worker(client, SHARED_TASK_QUEUE) as fake:
        handle = await start(client, fake, make_state(inactivity=2 * H, tuning=Tuning()))
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 1)
        first = await first_monitor(handle)
        assert first.task_queue.name == fake.watch_queue
        assert not first.heartbeat_timeout.ToTimedelta(), "the lease stands for it"
        assert fake.monitors[0].run_id == (await handle.describe()).run_id
        assert await watcher(client, handle) == fake.watch_queue

        # A notice about another worker's queue is stale: nothing moves.
        await handle.signal(WF.watcher_gone, WatcherGone(queue="watch-of-another-worker"))
        # The worker of its own queue died: the monitor starts again.
        await handle.signal(WF.watcher_gone, WatcherGone(queue=fake.watch_queue))
        # The workflow does not wait for the old one (TRY_CANCEL): it learns of its
        # cancellation at its next heartbeat, around when the new one starts.
        state = await wait_for(
            handle, lambda s: len(fake.monitors) == 2 and fake.monitor_cancellations >= 1
        )
        assert state.status == Status.RUNNING
        assert fake.monitor_cancellations == 1, "the old one was cancelled, once"
        assert len(await monitors_scheduled(handle)) == 2
        gone = f"the worker watching from {fake.watch_queue} is gone; monitor restarting"
        assert [e.message for e in state.events].count(gone) == 1
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_a_worker_without_a_watch_queue_keeps_the_heartbeating_monitor(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    async with running_worker(client, SHARED_TASK_QUEUE, watch_queue="") as fake:
        handle = await start(client, fake, make_state(inactivity=2 * H, tuning=Tuning()))
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 1)
        first = await first_monitor(handle)
        assert first.task_queue.name == SHARED_TASK_QUEUE
        assert first.heartbeat_timeout.ToTimedelta() == MONITOR_HEARTBEAT
        assert fake.monitors[0].run_id is None
        assert await watcher(client, handle) is None
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_a_host_queue_instance_is_watched_from_its_host_heartbeating(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=2 * H, tuning=Tuning()))
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 1)
        first = await first_monitor(handle)
        assert first.task_queue.name == fake.task_queue
        assert first.heartbeat_timeout.ToTimedelta() == MONITOR_HEARTBEAT
        assert await watcher(client, handle) is None
        # Its host's worker cannot be replaced: a notice about it changes nothing.
        await handle.signal(WF.watcher_gone, WatcherGone(queue=fake.task_queue))
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
        assert len(fake.monitors) == 1
        assert not any("is gone" in e.message for e in final.events)
