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

from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.state import (
    PresenceReport,
    SessionInfo,
    Status,
    TerminationReason,
    Tuning,
)
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import make_state, report, running_worker, start, wait_for, wait_running

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
        if scheduled.activity_type.name == Activity.PROBE:
            found.add("activity")
        marker = event.marker_recorded_event_attributes
        if marker.marker_name == "core_local_activity":
            data = json.loads(marker.details["data"].payloads[0].data)
            if data["activity_type"] == Activity.PROBE:
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


async def test_a_connection_inside_min_connection_duration_defers_the_deadline_until_it_counts(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """A user who logged in just before the deadline is not counted yet (min duration):
    the decision waits until that connection would count (its start + the minimum), not
    a whole threshold; one that closed by then was never a user, and it ends."""
    client = dev_server_env.client
    async with running_worker(client) as fake:
        state = make_state(inactivity=2, tuning=TUNING)
        state.spec.min_connection_duration = 3
        handle = await start(client, fake, state)
        running = await wait_running(handle)
        assert running.idle_since is not None
        login = running.idle_since + timedelta(seconds=1.5)  # 0.5 s before the deadline
        fake.probe_reports = [waiting(login)]
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.probes) == 2, "probed at the deadline and when the login would count"
    deferred = next(e for e in final.events if "would count" in e.message)
    assert "1 user connection opened within min_connection_duration (3s)" in deferred.message
    ended = next(e.at for e in final.events if "exceeded" in e.message)
    counts_at = login + timedelta(seconds=3)
    assert counts_at <= ended < counts_at + timedelta(seconds=1.5), "decided when it would count"


async def test_short_connections_in_a_loop_never_keep_it_up(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """``while :; do ssh NAME sleep 3; done`` with a minimum of 5 s: at every probe one
    connection is waiting, none ever counts. The deadline is put off once, to when the
    first would count; the next waiting one is not waited for, and it ends."""
    client = dev_server_env.client
    async with running_worker(client) as fake:
        state = make_state(inactivity=2, tuning=TUNING)
        state.spec.min_connection_duration = 3
        handle = await start(client, fake, state)
        running = await wait_running(handle)
        assert running.idle_since is not None
        first = running.idle_since + timedelta(seconds=1.5)
        fake.probe_reports = [waiting(first), waiting(first + timedelta(seconds=2.5))]
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.probes) == 2
    assert not any("idle clock restarted" in e.message for e in final.events)
    again = next(e for e in final.events if "deadline reached again" in e.message)
    assert "1 connection opened since not waited for" in again.message
    ended = next(e.at for e in final.events if "exceeded" in e.message)
    assert ended < first + timedelta(seconds=3 + 1.5), "never later than the first would count"


async def test_a_late_login_that_counts_keeps_it_up_until_it_leaves(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """The connection waited for reached the minimum: the monitor reports it, there is no
    idle deadline while it stays, and the idle clock starts when it leaves."""
    client = dev_server_env.client
    async with running_worker(client) as fake:
        state = make_state(inactivity=2, tuning=TUNING)
        state.spec.min_connection_duration = 3
        handle = await start(client, fake, state)
        running = await wait_running(handle)
        assert running.idle_since is not None
        login = running.idle_since + timedelta(seconds=1.5)
        fake.probe_reports = [waiting(login)]
        await wait_for(handle, lambda s: any("would count" in e.message for e in s.events))
        await handle.signal(WF.record_presence, report(1, datetime.now(UTC)))
        present = await wait_for(handle, lambda s: s.connections == 1)
        assert present.deadline is None and present.status == Status.RUNNING
        left = datetime.now(UTC)
        await handle.signal(WF.record_presence, report(0, left))
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    ended = next(e.at for e in final.events if "exceeded" in e.message)
    assert ended >= left + timedelta(seconds=2), "a whole threshold after the user left"


def waiting(since: datetime) -> PresenceReport:
    """A probe's answer: one connection opened at ``since``, not counted yet."""
    return PresenceReport(
        connections=0,
        waiting=1,
        last_change=datetime(2000, 1, 1, tzinfo=UTC),
        sessions=[SessionInfo(pid=4242, since=since, kind="exec")],
    )
