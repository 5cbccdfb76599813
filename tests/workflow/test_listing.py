"""Listing reads the status each workflow keeps in its memo: no query, no worker needed."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.client.listing import Visibility, list_statuses
from devenv.models.state import Status, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import (
    listed_row,
    make_state,
    report,
    running_worker,
    start,
    utc,
    wait_for,
)

WF = DevEnvironmentWorkflow


async def test_the_listing_is_current_and_needs_no_worker(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    state = make_state(inactivity=3600, tuning=Tuning(monitor=False))
    name = state.spec.name
    async with running_worker(client, may_leave_running=True) as fake:
        handle = await start(client, fake, state)
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.signal(WF.record_presence, report(1, utc(running.events[-1].at)))
        await wait_for(handle, lambda s: s.connections == 1)
        await handle.execute_update(WF.set_max_duration, 7200)
    # The worker is gone: a query would hang; the listing answers from the memo.
    row, silent = await listed_row(
        client, name, lambda r: r is not None and r.max_duration == 7200, include_ended=False
    )
    assert row is not None and silent == []
    assert (row.status, row.activity, row.connections) == ("running", "active", 1)
    assert (row.inactivity_duration, row.max_duration) == (3600, 7200)
    assert row.deadline is not None and row.idle_since is None

    async with Worker(
        client, task_queue=fake.task_queue, workflows=[WF], activities=fake.activities()
    ):
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.status == Status.TERMINATED
    ended, _ = await listed_row(
        client, name, lambda r: r is not None and r.status == "terminated", include_ended=True
    )
    assert ended is not None
    assert (ended.status, ended.termination_reason) == ("terminated", "stopped_by_user")
    assert ended.deadline is None
    rows, _ = await list_statuses(Visibility.of(client), include_ended=False)
    assert name not in [r.name for r in rows]


async def test_an_environment_without_a_memo_is_asked_and_listed(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """Environments started before the memo existed keep none: the listing asks them."""
    client = dev_server_env.client
    state = make_state(inactivity=3600, tuning=Tuning(monitor=False, search_attributes=False))
    name = state.spec.name
    async with running_worker(client) as fake:
        handle = await start(client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert "devenv" not in await (await handle.describe()).memo()
        row, silent = await listed_row(client, name, lambda r: r is not None, include_ended=False)
        assert row is not None and handle.id not in silent
        assert (row.status, row.inactivity_duration) == ("running", 3600)
        await handle.terminate()
