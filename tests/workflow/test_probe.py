"""Before ending an idle environment the workflow asks the instance once (the probe):
a monitor that is behind (worker crash, cut stream) must not cost a connected user
the machine. Real time on the dev server: the fake monitor holds, which freezes the
time-skipping server's clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devenv.settings import SHARED_TASK_QUEUE
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.state import Status, TerminationReason, Tuning
from tests.workflow.fakes import make_state, report, running_worker, start, wait_for

WF = DevEnvironmentWorkflow
TUNING = Tuning(keepalive_seconds=5)


QUEUES = pytest.mark.parametrize(
    "queue", [None, SHARED_TASK_QUEUE], ids=["host-queue-activity", "shared-queue-local"]
)
"""Instances on the shared queue (ssh, aws) are probed by a local activity inside the
workflow task; others (local instances, on their host's queue) by an activity."""


async def probed_how(handle: WorkflowHandle[Any, Any]) -> set[str]:
    """'activity' and/or 'local' according to the history."""
    found = set()
    async for event in handle.fetch_history_events():
        scheduled = event.activity_task_scheduled_event_attributes
        if scheduled.activity_type.name == "probe":
            found.add("activity")
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            if data["activity_type"] == "probe":
                found.add("local")
    return found


@QUEUES
async def test_probe_finding_a_user_the_monitor_missed_keeps_it_up(
    dev_server_env: WorkflowEnvironment, queue: str | None
) -> None:
    client = dev_server_env.client
    async with running_worker(client, queue) as fake:
        fake.probe_reports = [report(1, datetime.now(UTC))]
        handle = await start(client, fake, make_state(inactivity=1, tuning=TUNING))
        state = await wait_for(handle, lambda s: s.connections == 1, timeout=10)
        assert state.status == Status.RUNNING and state.deadline is None
        assert len(fake.probes) == 1
        assert any("staying up" in e.message for e in state.events)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert await probed_how(handle) == {"activity" if queue is None else "local"}


async def test_probe_seeing_a_later_disconnect_restarts_the_idle_clock(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=2, tuning=TUNING))
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert running.idle_since is not None
        later = running.idle_since + timedelta(seconds=1)
        fake.probe_reports = [report(0, later)]
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.probes) == 2, "probed at the first deadline and at the moved one"
    assert any("idle since then" in e.message for e in final.events)
    ended = next(e.at for e in final.events if "exceeded" in e.message)
    assert ended >= later + timedelta(seconds=2), "the idle clock restarted from the disconnect"


@QUEUES
async def test_probe_confirming_nobody_is_there_ends_it_at_the_deadline(
    dev_server_env: WorkflowEnvironment, queue: str | None
) -> None:
    client = dev_server_env.client
    async with running_worker(client, queue) as fake:
        handle = await start(client, fake, make_state(inactivity=1, tuning=TUNING))
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.probes) == 1 and len(fake.terminates) == 1
    assert await probed_how(handle) == {"activity" if queue is None else "local"}


async def test_probe_finding_a_user_inside_min_connection_duration_restarts_the_clock(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """A user who logged in just before the deadline is not counted yet (min duration):
    they are present all the same, so the idle clock restarts instead of cutting them off."""
    client = dev_server_env.client
    async with running_worker(client) as fake:
        fake.probe_reports = [report(0, datetime(2000, 1, 1, tzinfo=UTC), waiting=1)]
        handle = await start(client, fake, make_state(inactivity=2, tuning=TUNING))
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.probes) == 2, "probed at the first deadline and at the restarted one"
    restarted = next(e for e in final.events if "idle clock restarted" in e.message)
    assert "1 user connection opened within min_connection_duration" in restarted.message
    ended = next(e.at for e in final.events if "exceeded" in e.message)
    assert ended >= restarted.at + timedelta(seconds=2), "a whole threshold after the probe"
