"""The environment workflow on the time-skipping test server: hours pass in milliseconds.

Tests that need time to pass run with ``Tuning(monitor=False)`` (see fakes.py:
an outstanding activity stops the test server's clock) and play the monitor by
signalling ``record_activity``; monitor behaviour is tested where no time passes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from devenv.models.durations import MAX_SECONDS
from devenv.models.state import (
    MAX_EVENTS,
    EnvState,
    PresenceReport,
    Status,
    TerminationReason,
    Tuning,
)
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import (
    WF,
    H,
    make_state,
    messages,
    query_status,
    report,
    running_worker,
    start,
    utc,
    wait_for,
    wait_running,
)

Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]


def close_to(actual: timedelta, expected: timedelta, slack: float = 1.0) -> bool:
    """Workflow time after a timer fires is the deadline plus a few ms of server latency."""
    return expected <= actual <= expected + timedelta(seconds=slack)


async def count_events(handle: Handle, kind: EventType.ValueType) -> int:
    history = await handle.fetch_history()
    return sum(1 for event in history.events if event.event_type == kind)


# ---------------------------------------------------------------- the idle rule


async def test_idle_threshold_terminates_at_deadline(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        wall = time.monotonic()
        handle = await start(client, fake, make_state(inactivity=12 * H))
        running = await wait_running(handle)
        assert running.ready_at is not None and running.idle_since == running.ready_at
        assert running.deadline == running.ready_at + timedelta(hours=12)
        assert running.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED

        final = await handle.result()
        assert time.monotonic() - wall < 3.0
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.deadline is None and final.ended_at is not None
    exceeded = next(e for e in final.events if "exceeded" in e.message)
    assert close_to(exceeded.at - running.ready_at, timedelta(hours=12))
    assert exceeded.message.startswith("inactivity threshold 12h exceeded (idle since")
    assert final.instance_token is not None and final.created_at is not None
    assert len(fake.provisions) == 1
    assert fake.provisions[0].instance_token == final.instance_token
    assert [t.instance for t in fake.terminates] == [final.instance]
    assert messages(final)[-1] == "terminated: inactivity_duration_exceeded"


async def test_connected_user_keeps_it_alive_then_disconnect_starts_the_clock(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(
        search_attributes=False, monitor=False, keepalive_seconds=1800, keepalive_bound_seconds=H
    )
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=12 * H, tuning=tuning))
        await wait_running(handle)
        connected_at = await env.get_current_time()
        await handle.signal(WF.record_presence, report(1, connected_at))
        active = await wait_for(handle, lambda s: s.connections == 1)
        assert active.deadline is None
        assert "user connected (1 connection)" in messages(active)

        for _ in range(16):  # 16 x 50 min: well past the 12 h threshold
            await env.sleep(timedelta(minutes=50))
            await handle.signal(WF.record_presence, report(1, connected_at, keepalive=True))
        alive = await wait_for(handle, lambda s: s.last_report_at != active.last_report_at)
        assert alive.status == Status.RUNNING and alive.connections == 1
        assert alive.deadline is None
        assert utc(await env.get_current_time()) - utc(connected_at) > timedelta(hours=13)
        assert len(alive.events) == len(active.events), "keepalives add no events"
        # Keepalives never woke the timer: the only cancelled timer is the idle one at connect.
        assert await count_events(handle, EventType.EVENT_TYPE_TIMER_CANCELED) == 1

        left_at = utc(await env.get_current_time()) - timedelta(minutes=5)
        await handle.signal(WF.record_presence, report(0, left_at))
        idle = await wait_for(handle, lambda s: s.connections == 0)
        assert idle.idle_since == left_at
        assert idle.deadline == left_at + timedelta(hours=12)
        assert any(m.startswith("last user disconnected; idle since") for m in messages(idle))

        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert close_to(final.ended_at - left_at, timedelta(hours=12))


async def test_disconnect_time_is_clamped_to_ready_and_now(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H))
        running = await wait_running(handle)
        assert running.ready_at is not None
        now = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, now))
        await handle.signal(WF.record_presence, report(0, now - timedelta(days=3)))
        idle = await wait_for(handle, lambda s: s.connections == 0 and s.last_report_at is not None)
        assert idle.idle_since == running.ready_at
        await handle.signal(WF.record_presence, report(2, now))
        await handle.signal(WF.record_presence, report(0, now + timedelta(days=3)))
        later = await wait_for(handle, lambda s: s.idle_since != running.ready_at)
        assert later.idle_since is not None and later.last_report_at is not None
        assert later.idle_since <= later.last_report_at
        await handle.execute_update(WF.request_stop, "done")
        await handle.result()


async def test_silent_monitor_counts_as_idle_since_last_report(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=300)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H, tuning=tuning))
        await wait_running(handle)
        await handle.signal(WF.record_presence, report(1, await env.get_current_time()))
        active = await wait_for(handle, lambda s: s.connections == 1)
        assert active.last_report_at is not None

        await env.sleep(timedelta(minutes=10))  # no keepalive: the monitor went quiet
        silent = await wait_for(handle, lambda s: s.connections == 0)
        assert silent.idle_since == active.last_report_at
        assert silent.deadline == active.last_report_at + timedelta(hours=1)
        assert any(m.startswith("monitor silent since") for m in messages(silent))

        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert close_to(final.ended_at - active.last_report_at, timedelta(hours=1))


# ---------------------------------------------------------------- changing thresholds


async def test_set_inactivity_raises_lowers_and_disables(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H))
        running = await wait_running(handle)
        ready = running.ready_at
        assert ready is not None and running.deadline == ready + timedelta(hours=2)

        raised = await handle.execute_update(WF.set_inactivity, 12 * H)
        assert raised.status == Status.RUNNING and not raised.terminating
        assert raised.inactivity_duration == 12 * H
        assert raised.deadline == ready + timedelta(hours=12)
        assert raised.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        state = await handle.query(WF.status)
        assert state.deadline == raised.deadline and state.spec.inactivity_duration == 12 * H
        assert messages(state)[-1].startswith(
            "inactivity threshold changed from 2h to 12h; deadline"
        )

        lowered = await handle.execute_update(WF.set_inactivity, H)
        assert lowered.deadline == ready + timedelta(hours=1) and not lowered.terminating

        off = await handle.execute_update(WF.set_inactivity, None)
        assert off.inactivity_duration is None and off.deadline is None
        assert off.deadline_reason is None and not off.terminating
        zero = await handle.execute_update(WF.set_inactivity, 0)  # 0 means off, as in dev.yml
        assert zero.inactivity_duration is None and zero.deadline is None

        capped = await handle.execute_update(WF.set_max_duration, 24 * H)
        assert capped.max_duration == 24 * H and running.created_at is not None
        assert capped.deadline == running.created_at + timedelta(hours=24)
        assert capped.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED

        await env.sleep(timedelta(hours=20))  # idle rule off: nothing happens
        assert (await handle.query(WF.status)).status == Status.RUNNING
        final = await handle.result()
    assert final.termination_reason == TerminationReason.MAX_DURATION_EXCEEDED


async def test_lowered_threshold_already_exceeded_terminates_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=12 * H))
        running = await wait_running(handle)
        assert running.ready_at is not None
        await env.sleep(timedelta(hours=2))

        answer = await handle.execute_update(WF.set_inactivity, H)
        assert answer.terminating and answer.status == Status.TERMINATING
        assert answer.deadline == running.ready_at + timedelta(hours=1)
        assert answer.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED

        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert close_to(final.ended_at - running.ready_at, timedelta(hours=2))
    assert any("already exceeded, terminating" in m for m in messages(final))
    assert len(fake.terminates) == 1


async def test_signals_change_thresholds_and_ignore_invalid_values(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=12 * H))
        running = await wait_running(handle)
        assert running.ready_at is not None

        await handle.signal(WF.update_inactivity, -5)
        await handle.signal(WF.update_max_duration, MAX_SECONDS + 1)
        ignored = await wait_for(handle, lambda s: len(s.events) == len(running.events) + 2)
        assert ignored.spec.inactivity_duration == 12 * H and ignored.spec.max_duration is None
        assert ignored.deadline == running.deadline
        assert "inactivity_duration signal ignored" in messages(ignored)[-2]
        assert "max_duration signal ignored" in messages(ignored)[-1]

        await handle.signal(WF.update_inactivity, 3 * H)
        changed = await wait_for(handle, lambda s: s.spec.inactivity_duration == 3 * H)
        assert changed.deadline == running.ready_at + timedelta(hours=3)
        final = await handle.result()
    assert final.ended_at is not None
    assert close_to(final.ended_at - running.ready_at, timedelta(hours=3))


async def test_validators_reject_bad_values_and_nothing_changes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H, max_duration=48 * H))
        before = await wait_running(handle)
        for update, value in (
            (WF.set_inactivity, -1),
            (WF.set_inactivity, MAX_SECONDS + 1),
            (WF.set_max_duration, -60),
            (WF.set_max_duration, 10 * MAX_SECONDS),
        ):
            with pytest.raises(WorkflowUpdateFailedError) as caught:
                await handle.execute_update(update, value)
            assert "must be between 0 (off) and 2419200 seconds" in str(caught.value.cause)
        after = await handle.query(WF.status)
        assert after == before  # rejected updates leave no trace, not even an event
        history = await handle.fetch_history()
        assert not any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
            for e in history.events
        )
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_updates_rejected_while_terminating_and_after_the_end(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client, terminate_gate=asyncio.Event()) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H))
        await wait_running(handle)
        answer = await handle.execute_update(WF.request_stop, "end of sprint")
        assert answer.terminating and answer.status == Status.TERMINATING
        await wait_for(handle, lambda s: len(fake.terminates) == 1)

        for update, value in ((WF.set_inactivity, 60), (WF.set_max_duration, 60)):
            with pytest.raises(WorkflowUpdateFailedError) as caught:
                await handle.execute_update(update, value)
            assert "environment is terminating: stopped_by_user" in str(caught.value.cause)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(WF.request_stop, "again")
        await handle.signal(WF.stop, "again")
        await handle.signal(WF.update_inactivity, 60)
        terminating = await wait_for(handle, lambda s: "stop ignored" in s.events[-2].message)
        assert (
            terminating.status == Status.TERMINATING and terminating.spec.inactivity_duration == H
        )

        assert fake.terminate_gate is not None
        fake.terminate_gate.set()
        final = await handle.result()
        assert final.status == Status.TERMINATED
        with pytest.raises((WorkflowUpdateFailedError, RPCError)):
            await handle.execute_update(WF.set_inactivity, 60)
    assert "stop requested: end of sprint" in messages(final)


async def test_max_duration_terminates_even_with_a_user_connected(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=3 * 86_400)
    async with running_worker(env.client) as fake:
        state = make_state(inactivity=H, max_duration=24 * H, tuning=tuning)
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.signal(WF.record_presence, report(1, await env.get_current_time()))
        active = await wait_for(handle, lambda s: s.connections == 1)
        assert active.created_at is not None
        assert active.deadline == active.created_at + timedelta(hours=24)
        assert active.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED

        final = await handle.result()
    assert final.termination_reason == TerminationReason.MAX_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert close_to(final.ended_at - active.created_at, timedelta(hours=24))
    assert any(m.startswith("max duration 1d exceeded") for m in messages(final))


# ---------------------------------------------------------------- stopping


async def test_stop_signal_cancels_monitor_and_terminates_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    tuning = Tuning(search_attributes=False, keepalive_seconds=15)
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=H, tuning=tuning))
        running = await wait_running(handle)
        await wait_for(handle, lambda s: len(fake.monitors) == 1)
        monitor = fake.monitors[0]
        assert monitor.workflow_id == handle.id and monitor.instance == running.instance
        assert monitor.keepalive_seconds == 15

        await handle.signal(WF.stop, "done for today")
        final = await handle.result()
        assert await count_events(handle, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED) == 1
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert "stop requested: done for today" in messages(final)
    assert len(fake.terminates) == 1 and fake.terminates[0].instance == running.instance
    assert len(fake.monitors) == 1 and fake.monitor_cancellations == 1


async def test_request_stop_answers_synchronously(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(max_duration=H))
        await wait_running(handle)
        answer = await handle.execute_update(WF.request_stop, None)
        assert answer.terminating and answer.status == Status.TERMINATING
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert messages(final)[-2:] == ["stop requested", "terminated: stopped_by_user"]


async def test_stop_while_provisioning_terminates_what_was_provisioned(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, provision_gate=asyncio.Event()) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_for(handle, lambda s: len(fake.provisions) == 1)
        answer = await handle.execute_update(WF.request_stop, "changed my mind")
        assert answer.terminating and answer.status == Status.TERMINATING
        assert fake.provision_gate is not None
        fake.provision_gate.set()
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert final.instance is not None and final.ready_at is None
    assert [t.instance for t in fake.terminates] == [final.instance]
    assert any(m.endswith("stop pending") for m in messages(final))


async def test_stop_before_the_first_task_cleans_up_by_token(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A stop that arrives with the start is handled before run(): nothing is provisioned."""
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        state = make_state(inactivity=H)
        handle = await client.start_workflow(
            WF.run,
            state,
            id=f"devenv-{state.spec.name}",
            task_queue=fake.task_queue,
            start_signal="stop",
            start_signal_args=["oops"],
        )
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert messages(final)[:2] == [messages(final)[0], "stop requested: oops"]
    assert messages(final)[0].startswith("environment ")
    assert fake.provisions == [] and final.instance is None
    assert len(fake.terminates) == 1 and fake.terminates[0].instance is None
    assert fake.terminates[0].instance_token == final.instance_token


async def test_cancelling_the_workflow_still_terminates_the_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_running(handle)
        await handle.cancel()
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert len(fake.terminates) == 1 and fake.terminates[0].instance is not None


async def test_cancelling_while_provisioning_waits_for_it_then_terminates(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    gate = asyncio.Event()
    async with running_worker(client, provision_gate=gate, provision_heartbeats=False) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_for(handle, lambda s: len(fake.provisions) == 1)
        await handle.cancel()
        await asyncio.sleep(0.2)
        assert fake.terminates == [], "no cleanup while provision may still create the instance"
        assert fake.provision_gate is not None
        fake.provision_gate.set()
        final = await handle.result()
    # The fake provision does not heartbeat, so it never saw the cancel and finished.
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert final.instance is not None
    assert [t.instance for t in fake.terminates] == [final.instance]
    assert "workflow cancelled while provisioning" in messages(final)


async def test_cancelled_provisioning_is_cleaned_up_by_token(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, provision_gate=asyncio.Event()) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_for(handle, lambda s: len(fake.provisions) == 1)
        await handle.cancel()  # the heartbeating provision sees it and stops
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert final.instance is None
    assert len(fake.terminates) == 1 and fake.terminates[0].instance is None
    assert fake.terminates[0].instance_token == final.instance_token


async def test_cancelling_while_terminating_still_terminates(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, terminate_gate=asyncio.Event()) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_running(handle)
        await handle.execute_update(WF.request_stop, None)
        await wait_for(handle, lambda s: len(fake.terminates) == 1)
        await handle.cancel()
        await wait_for(handle, lambda s: s.events[-1].message.startswith("cancellation deferred"))
        assert fake.terminate_gate is not None
        fake.terminate_gate.set()
        final = await handle.result()
    assert final.status == Status.TERMINATED and len(fake.terminates) == 1


async def test_terminate_is_retried_until_it_succeeds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, terminate_flaky=3) as fake:
        handle = await start(client, fake, make_state(inactivity=60))
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert len(fake.terminates) == 4


# ---------------------------------------------------------------- failures


async def test_provisioning_failure_cleans_up_by_token(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    error = "quota exceeded for instance type t3.large"
    async with running_worker(client, provision_error=error) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        final = await handle.result()
    assert final.status == Status.FAILED
    assert final.termination_reason == TerminationReason.PROVISIONING_FAILED
    assert final.error == error and final.instance is None and final.ended_at is not None
    assert len(fake.provisions) == 1, "ProvisioningError is not retried"
    assert len(fake.terminates) == 1
    cleanup = fake.terminates[0]
    assert cleanup.instance is None and cleanup.instance_token == final.instance_token
    assert cleanup.workflow_id == handle.id


async def test_provisioning_is_retried_a_few_times(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    async with running_worker(client, provision_flaky=1) as fake:
        final = await (await start(client, fake, make_state(inactivity=60))).result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert len(fake.provisions) == 2
    assert len({p.instance_token for p in fake.provisions}) == 1

    async with running_worker(client, provision_flaky=10) as fake:
        final = await (await start(client, fake, make_state(inactivity=60))).result()
    assert final.status == Status.FAILED and final.error == "cloud API timed out"
    assert len(fake.provisions) == 3 and len(fake.terminates) == 1


async def test_instance_lost_terminates(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    tuning = Tuning(search_attributes=False)
    async with running_worker(client, monitor_modes=["lost"]) as fake:
        handle = await start(client, fake, make_state(inactivity=H, tuning=tuning))
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.INSTANCE_LOST
    assert final.instance is not None
    assert f"instance lost: instance {final.instance.instance_id} is gone" in messages(final)
    assert len(fake.monitors) == 1, "InstanceLost is not retried"
    assert [t.instance for t in fake.terminates] == [final.instance]


async def test_monitor_that_ends_is_restarted_and_its_reports_count(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False)
    now = await env.get_current_time()
    reports = [report(1, now), report(1, now, keepalive=True)]
    async with running_worker(env.client, monitor_modes=["fail"], monitor_reports=reports) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H, tuning=tuning))
        active = await wait_for(handle, lambda s: s.connections == 1)
        assert len(fake.monitors) == 2
        assert "monitor failed: agent crashed; restarting" in messages(active)
        assert "user connected (1 connection)" in messages(active)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER


async def test_events_are_bounded_and_the_oldest_are_dropped_first(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=H))
        await wait_running(handle)
        for i in range(MAX_EVENTS):
            await handle.signal(WF.update_inactivity, -i - 1)
        full = await wait_for(handle, lambda s: s.events[-1].message.endswith(f"got -{MAX_EVENTS}"))
        assert len(full.events) == MAX_EVENTS
        assert not full.events[0].message.startswith("environment"), "oldest dropped first"
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert len(final.events) == MAX_EVENTS


# ---------------------------------------------------------------- reports outside RUNNING


def without_events(state: EnvState) -> dict[str, object]:
    return state.model_dump(exclude={"events"})


async def test_a_report_while_provisioning_changes_nothing_and_is_logged(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A monitor of an earlier run, or one that is early, must not count users before the
    instance exists: no connections, no idle clock, the max_duration deadline as it was."""
    env = time_skipping_env
    async with running_worker(env.client, provision_gate=asyncio.Event()) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H, max_duration=24 * H))
        provisioning = await wait_for(handle, lambda s: len(fake.provisions) == 1)
        assert provisioning.status == Status.PROVISIONING and provisioning.created_at is not None
        assert provisioning.deadline == provisioning.created_at + timedelta(hours=24)

        now = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(2, now))
        await handle.signal(WF.record_presence, report(0, now))
        ignored = await wait_for(handle, lambda s: len(s.events) == len(provisioning.events) + 2)
        assert messages(ignored)[-2:] == [
            "activity report ignored while provisioning (2 connections)",
            "activity report ignored while provisioning (0 connections)",
        ]
        assert without_events(ignored) == without_events(provisioning)
        assert ignored.status == Status.PROVISIONING and ignored.connections == 0
        assert ignored.idle_since is None and ignored.last_report_at is None
        assert ignored.deadline == provisioning.deadline
        assert ignored.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED

        assert fake.provision_gate is not None
        fake.provision_gate.set()
        running = await wait_running(handle)
        # Had the report of 2 counted, there would be no idle deadline now.
        assert running.connections == 0 and running.last_report_at is None
        assert running.ready_at is not None and running.idle_since == running.ready_at
        assert running.deadline == running.ready_at + timedelta(hours=1)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert not any(m.startswith("user connected") for m in messages(final))


async def test_a_report_while_terminating_changes_nothing_and_is_logged(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The user leaves (and a keepalive comes) while the instance is being deleted: the
    ending environment keeps its last count, idle clock and report time."""
    env = time_skipping_env
    async with running_worker(env.client, terminate_gate=asyncio.Event()) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H))
        running = await wait_running(handle)
        connected_at = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, connected_at))
        active = await wait_for(handle, lambda s: s.connections == 1)
        await handle.execute_update(WF.request_stop, "end of day")
        terminating = await wait_for(handle, lambda s: len(fake.terminates) == 1)
        assert terminating.status == Status.TERMINATING
        assert terminating.connections == 1 and terminating.deadline is None

        left_at = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(0, left_at))
        await handle.signal(WF.record_presence, report(1, connected_at, keepalive=True))
        ignored = await wait_for(handle, lambda s: len(s.events) == len(terminating.events) + 2)
        assert messages(ignored)[-2:] == [
            "activity report ignored while terminating (0 connections)",
            "activity report ignored while terminating (1 connection)",
        ]
        assert without_events(ignored) == without_events(terminating)
        assert ignored.connections == 1, "the disconnect was not applied"
        assert ignored.idle_since == running.ready_at, "no idle clock started"
        assert ignored.last_report_at == active.last_report_at, "the keepalive was not counted"
        assert ignored.deadline is None and ignored.deadline_reason is None

        assert fake.terminate_gate is not None
        fake.terminate_gate.set()
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert messages(final)[-1] == "terminated: stopped_by_user"
    assert not any(m.startswith("last user disconnected") for m in messages(final))
    assert len(fake.terminates) == 1


async def test_a_report_while_cleaning_up_a_failed_provision_changes_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(
        env.client, provision_error="no capacity", terminate_gate=asyncio.Event()
    ) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H, max_duration=24 * H))
        cleaning = await wait_for(handle, lambda s: len(fake.terminates) == 1)
        assert cleaning.status == Status.TERMINATING
        assert cleaning.termination_reason == TerminationReason.PROVISIONING_FAILED

        await handle.signal(WF.record_presence, report(3, utc(await env.get_current_time())))
        ignored = await wait_for(handle, lambda s: len(s.events) == len(cleaning.events) + 1)
        assert messages(ignored)[-1] == "activity report ignored while terminating (3 connections)"
        assert without_events(ignored) == without_events(cleaning)
        assert ignored.connections == 0 and ignored.idle_since is None
        assert ignored.last_report_at is None and ignored.deadline is None

        assert fake.terminate_gate is not None
        fake.terminate_gate.set()
        final = await handle.result()
    assert final.status == Status.FAILED and final.error == "no capacity"
    assert final.connections == 0 and final.ready_at is None and final.idle_since is None


async def test_a_report_after_the_end_is_refused_and_changes_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An ended environment's workflow closes in the task that ended it, so a late report
    never reaches it: the server refuses the signal and the recorded end stays as it was."""
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=H))
        await wait_running(handle)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
        with pytest.raises(RPCError) as refused:
            await handle.signal(WF.record_presence, report(1, utc(await env.get_current_time())))
        assert refused.value.status == RPCStatusCode.NOT_FOUND
        assert "completed" in str(refused.value).lower()
        after = await handle.query(WF.status)
    assert after == final
    assert after.status == Status.TERMINATED and after.connections == 0
    assert after.idle_since == final.idle_since and after.deadline is None


# ---------------------------------------------------------------- continue-as-new


async def test_continue_as_new_keeps_the_whole_state(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Low ``max_history_events``; history grows through updates, which wait for their answer.

    Two Java test server bugs shape this test: a query or signal that races a
    continue-as-new can leave run 1 without its closing event (its result then
    never comes) and hold the server's clock locked for every later test; and a
    monitor cancelled with TRY_CANCEL is still outstanding when the run closes,
    which also locks the clock. So: monitor off, no query or signal while a
    continue-as-new may happen (``describe`` shows the new run), and the
    dev-server test covers the server's suggestion and the monitor restart.
    """
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, max_history_events=40)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H, tuning=tuning))
        first = await wait_running(handle)
        left_at = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, left_at))
        await handle.signal(WF.record_presence, report(0, left_at))
        idle = await wait_for(handle, lambda s: s.last_report_at is not None)
        assert idle.idle_since == left_at and idle.runs == 1

        latest = env.client.get_workflow_handle_for(WF.run, handle.id)
        for hours in (12, 13, 12, 13, 12, 13, 12, 13):
            await handle.execute_update(WF.set_inactivity, hours * H)
            if (await latest.describe()).run_id != handle.result_run_id:
                break
        second = await wait_for(latest, lambda s: s.runs == 2)
        assert second.spec.inactivity_duration == hours * H
        assert second.instance == first.instance and second.instance_token == first.instance_token
        assert second.created_at == first.created_at and second.ready_at == first.ready_at
        assert second.idle_since == left_at and second.connections == 0
        assert second.deadline == left_at + timedelta(hours=hours)
        assert messages(second)[: len(idle.events)] == messages(idle)
        assert any("continuing as new (run 2)" in m for m in messages(second))
        assert len(fake.provisions) == 1, "the new run does not provision again"

        await latest.execute_update(WF.request_stop, None)
        final = await latest.result()
    assert final.runs == 2 and final.status == Status.TERMINATED
    assert len(fake.terminates) == 1 and fake.terminates[0].instance == first.instance


async def test_the_clock_still_skips_after_all_of_the_above(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Guard: a test that leaves an activity outstanding freezes the shared server's clock."""
    client = time_skipping_env.client
    wall = time.monotonic()
    async with running_worker(client) as fake:
        final = await (await start(client, fake, make_state(inactivity=12 * H))).result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert time.monotonic() - wall < 3.0


# ---------------------------------------------------------------- the machine's failsafe


@pytest.mark.parametrize("failsafe", [True, False])
async def test_a_failsafe_machine_is_told_every_threshold_change_and_others_never(
    time_skipping_env: WorkflowEnvironment, failsafe: bool
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        fake.failsafe = failsafe
        handle = await start(client, fake, make_state(inactivity=2 * H))
        running = await wait_running(handle)
        if failsafe:
            await wait_for(handle, lambda s: s.failsafe_policy is not None)
        await handle.execute_update(WF.set_inactivity, 12 * H)
        await handle.execute_update(WF.set_max_duration, 48 * H)
        if failsafe:
            final_policy = await wait_for(
                handle,
                lambda s: (
                    s.failsafe_policy is not None
                    and s.failsafe_policy.max_duration_seconds == 48 * H
                ),
            )
            assert final_policy.failsafe_policy is not None
            assert final_policy.failsafe_policy.inactivity_seconds == 12 * H
            # The machine waits the longer of an hour and the threshold without a control plane.
            assert final_policy.failsafe_policy.failsafe_after_seconds == 12 * H
            assert final_policy.failsafe_policy.started_at == running.ready_at
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    if not failsafe:
        assert fake.policies == []
    else:
        sent = [(p.policy.inactivity_seconds, p.policy.max_duration_seconds) for p in fake.policies]
        assert sent[0] == (2 * H, None) and sent[-1] == (12 * H, 48 * H)
        assert all(p.instance.failsafe for p in fake.policies)


# ---------------------------------------------------------------- jobs


async def test_a_running_job_keeps_it_up_and_the_idle_clock_starts_when_the_last_ends(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        # The test plays the monitor (without keepalives: the silence bound is set long).
        quiet = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=10 * H)
        handle = await start(client, fake, make_state(inactivity=2 * H, tuning=quiet))
        await wait_running(handle)
        now = utc(await time_skipping_env.get_current_time())
        job = PresenceReport(connections=0, jobs=1, last_change=now)
        await handle.signal(WF.record_presence, job)
        busy = await wait_for(handle, lambda s: s.jobs == 1)
        assert busy.deadline is None and busy.connections == 0
        await time_skipping_env.sleep(timedelta(hours=5))
        assert (await query_status(handle)).status == Status.RUNNING
        ended = utc(await time_skipping_env.get_current_time())
        done = PresenceReport(connections=0, jobs=0, last_change=ended)
        await handle.signal(WF.record_presence, done)
        idle = await wait_for(handle, lambda s: s.jobs == 0 and s.deadline is not None)
        assert idle.idle_since is not None and close_to(idle.idle_since - ended, timedelta(0))
        assert idle.deadline == idle.idle_since + timedelta(hours=2)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    said = messages(final)
    assert "in use: 0 connections, 1 job (jobs 0 -> 1)" in said
    assert any(m.startswith("last job ended; idle since ") for m in said)


# ---------------------------------------------------------------- never surprised


async def test_a_2h_threshold_warns_10m_ahead_once_with_the_webhook_notice(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        state = make_state(inactivity=2 * H)
        state.spec.notify_webhook = "wh-" + "0" * 24
        handle = await start(client, fake, state)
        running = await wait_running(handle)
        final = await handle.result()
    assert running.ready_at is not None
    warning = next(e for e in final.events if e.message.startswith("warning:"))
    assert close_to(warning.at - running.ready_at, timedelta(hours=1, minutes=50))
    assert "(in 10m; idle for 2h)" in warning.message
    assert warning.message.endswith(f"to keep it: devenv signal {state.spec.name} --extend 1h")
    assert sum(m.startswith("warning:") for m in messages(final)) == 1
    [notice] = fake.notices
    assert notice.webhook == state.spec.notify_webhook
    assert notice.reason == "inactivity_duration_exceeded" and notice.text == warning.message
    assert notice.extend_command == f"devenv signal {state.spec.name} --extend 1h"
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert close_to(final.ended_at - running.ready_at, timedelta(hours=2))


async def test_a_user_connecting_in_the_warning_window_cancels_the_termination(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=10 * H)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H, tuning=tuning))
        await wait_running(handle)
        await env.sleep(timedelta(hours=1, minutes=55))
        warned = await wait_for(handle, lambda s: s.warned_for is not None)
        await handle.signal(WF.record_presence, report(1, utc(await env.get_current_time())))
        kept = await wait_for(handle, lambda s: s.connections == 1 and s.warned_for is None)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()  # no workflow may outlive its worker on the test server
    assert kept.status == Status.RUNNING and kept.deadline is None
    assert warned.warned_for is not None
    expected = (
        f"pending termination at {warned.warned_for:%H:%M:%S}Z cancelled: someone is using it"
    )
    assert expected in messages(kept)


async def test_extend_pushes_the_current_deadline_once_and_keeps_the_threshold(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H))
        running = await wait_running(handle)
        assert running.deadline is not None
        answer = await handle.execute_update(WF.extend, 2 * H)
        assert answer.deadline == running.deadline + timedelta(hours=2)
        assert answer.inactivity_duration == 2 * H
        final = await handle.result()
    assert final.ended_at is not None and running.ready_at is not None
    assert close_to(final.ended_at - running.ready_at, timedelta(hours=4))
    assert final.spec.inactivity_duration == 2 * H
    ended = next(m for m in messages(final) if "exceeded" in m)
    assert "extended to" in ended and "the instance confirmed 0 connections" not in ended


async def test_extend_is_refused_without_a_deadline(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state())
        await wait_running(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.extend, H)
        assert "nothing to extend" in str(refused.value.cause)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()  # no workflow may outlive its worker on the test server


async def test_stop_at_across_midnight_ends_it_then_whatever_the_activity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=100 * H)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(max_duration=7 * 24 * H, tuning=tuning))
        await wait_running(handle)
        now = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, now))  # in use all along
        # 23:30 today (or tomorrow, if that has passed): then a stop at 00:30, after midnight.
        evening = now.replace(hour=23, minute=30, second=0, microsecond=0)
        if evening <= now:
            evening += timedelta(days=1)
        await env.sleep(evening - now)
        at = evening + timedelta(hours=1)
        answer = await handle.execute_update(WF.set_stop_at, at)
        assert answer.deadline == at and answer.deadline_reason == TerminationReason.SCHEDULED_STOP
        assert at.date() != evening.date()
        final = await handle.result()
    assert final.termination_reason == TerminationReason.SCHEDULED_STOP
    assert final.ended_at is not None and close_to(final.ended_at - at, timedelta(0))
    assert f"scheduled stop at {at:%H:%M:%S}Z reached; terminating" in messages(final)
    assert any(m.startswith("warning:") and "the scheduled stop" in m for m in messages(final))


async def test_stop_at_in_the_past_is_refused_and_nothing_changes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client) as fake:
        handle = await start(client, fake, make_state(inactivity=2 * H))
        running = await wait_running(handle)
        assert running.ready_at is not None
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.set_stop_at, running.ready_at - timedelta(hours=1))
        assert "not in the future" in str(refused.value.cause)
        assert (await query_status(handle)).stop_at is None
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
