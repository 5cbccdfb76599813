"""What only the real dev server does: search attributes, the continue-as-new suggestion
(lowered to 60 events in conftest). Time is real here, so nothing waits for
a deadline; the fake monitor holds as the real one does."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from devenv.models.state import EnvState, Status, TerminationReason, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import make_state, report, running_worker, start, utc, wait_for

WF = DevEnvironmentWorkflow
STATUS = SearchAttributeKey.for_keyword("DevEnvStatus")
BACKEND = SearchAttributeKey.for_keyword("DevEnvBackend")
NAME = SearchAttributeKey.for_keyword("DevEnvName")
DEADLINE = SearchAttributeKey.for_datetime("DevEnvDeadline")
TUNING = Tuning(keepalive_seconds=5)


async def details(handle: WorkflowHandle[DevEnvironmentWorkflow, EnvState]) -> str:
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    return str(metadata.current_details)


async def test_search_attributes_and_current_details(dev_server_env: WorkflowEnvironment) -> None:
    client = dev_server_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=3600, tuning=TUNING))
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        attrs = (await handle.describe()).typed_search_attributes
        assert attrs.get(STATUS) == "running"
        assert attrs.get(BACKEND) == "local"
        assert attrs.get(NAME) == running.spec.name
        assert attrs.get(DEADLINE) == running.deadline
        text = await details(handle)
        assert text.startswith("**running**") and "idle since" in text and "deadline" in text

        now = utc(running.ready_at or running.events[-1].at)
        await handle.signal(WF.record_presence, report(1, now))
        await wait_for(handle, lambda s: s.connections == 1)
        attrs = (await handle.describe()).typed_search_attributes
        assert attrs.get(DEADLINE) is None, "no idle deadline while a user is connected"
        assert "active: 1 connection" in await details(handle)

        await handle.execute_update(WF.request_stop, "end of day")
        final = await handle.result()
        attrs = (await handle.describe()).typed_search_attributes
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert attrs.get(STATUS) == "terminated"
    history = await handle.fetch_history()
    upserts = [
        e
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]
    # Each workflow.patched() first taken also upserts TemporalChangeVersion (the SDK's).
    assert 3 <= len(upserts) <= 7, "upserted only when a value changes"


async def test_continue_as_new_suggested_by_the_server_keeps_state(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=7200, tuning=TUNING))
        first = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.set_inactivity, 12 * 3600)
        latest = client.get_workflow_handle_for(WF.run, handle.id)
        left_at = first.ready_at
        for _ in range(30):
            left_at = utc((await latest.query(WF.status)).events[-1].at)
            await latest.signal(WF.record_presence, report(1, left_at))
            await latest.signal(WF.record_presence, report(0, left_at))
            if (await latest.describe()).run_id != handle.result_run_id:
                break
        second = await wait_for(latest, lambda s: s.runs == 2 and len(fake.monitors) == 2)
        assert second.spec.inactivity_duration == 12 * 3600
        assert second.instance == first.instance and second.instance_token == first.instance_token
        assert second.idle_since is not None and left_at is not None
        assert second.idle_since >= left_at - timedelta(seconds=5)
        continued = next(m for m in (e.message for e in second.events) if "continuing" in m)
        events = int(continued.split()[2])
        assert events < first.tuning.max_history_events, "the server suggested it, not our cap"
        assert len(fake.provisions) == 1
        attrs = (await latest.describe()).typed_search_attributes
        assert attrs.get(STATUS) == "running" and attrs.get(NAME) == first.spec.name

        await latest.execute_update(WF.request_stop, None)
        final = await latest.result()
    assert final.runs == 2 and final.status == Status.TERMINATED
    assert [t.instance for t in fake.terminates] == [first.instance]
