"""Suspend and resume in the environment workflow, on the time-skipping test server:
idle with ``on_idle: suspend`` suspends, a suspended one waits (durably) for a resume, a
stop or ``delete_after`` (warned first), and ``max_duration`` counts running time only."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from devenv.models.state import Change, DurationSetting, Status, TerminationReason, Tuning
from tests.workflow.fakes import (
    WF,
    H,
    make_state,
    messages,
    running_worker,
    start,
    wait_for,
    wait_running,
)

D = 24 * H


async def test_idle_suspends_keeps_it_and_resume_brings_it_back_on_a_new_port(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(inactivity=H, on_idle="suspend", suspendable=True, delete_after=None)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        running = await wait_running(handle)
        assert running.instance is not None and running.ready_at is not None
        await env.sleep(timedelta(hours=1, minutes=1))
        suspended = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert suspended.termination_reason is None and fake.terminates == []
        assert [s.instance for s in fake.suspends] == [running.instance]
        assert suspended.suspended_at is not None
        assert suspended.suspended_at - running.ready_at >= timedelta(hours=1)
        assert suspended.deadline is None  # delete_after off: kept until stopped
        assert any(m.startswith("suspending: idle for 1h") for m in messages(suspended))
        assert "workspace kept, kept until stopped" in messages(suspended)[-1]

        await env.sleep(timedelta(days=20))  # nothing ends a suspended one but a request
        answer = await handle.execute_update(WF.request_resume, "back")
        assert answer.status == Status.RESUMING
        resumed = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert resumed.instance is not None
        assert resumed.instance.port == running.instance.port + 1
        assert resumed.instance.host_public_key == running.instance.host_public_key
        assert resumed.idle_since is not None and resumed.idle_since > suspended.suspended_at
        assert resumed.suspended_seconds >= 20 * D
        assert resumed.suspended_at is None
        assert any(m.startswith("resumed at dev@127.0.0.1:") for m in messages(resumed))

        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.status == Status.TERMINATED
    assert [t.instance for t in fake.terminates] == [resumed.instance]
    assert len(fake.suspends) == 1 and len(fake.resumes) == 1


async def test_delete_after_warns_then_deletes_the_suspended_instance(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(on_idle="suspend", suspendable=True, delete_after=3 * D)
    state.spec.notify_webhook = "wh-" + "3" * 24
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        answer = await handle.execute_update(WF.request_suspend, "lunch")
        assert answer.status == Status.SUSPENDING
        suspended = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert suspended.suspended_at is not None
        assert suspended.deadline == suspended.suspended_at + timedelta(days=3)
        assert suspended.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED
        assert suspended.suspend_reason == "asked: lunch"
        final = await handle.result()
    assert final.termination_reason == TerminationReason.DELETE_AFTER_EXCEEDED
    assert [t.instance for t in fake.terminates] == [suspended.instance]
    [warning] = [e for e in final.events if e.message.startswith("warning:")]
    assert " is deleted at " in warning.message
    assert warning.message.endswith(f"to keep it: devenv resume {state.spec.name}")
    # A day ahead of the deletion: time for its owner to come back.
    assert suspended.deadline - warning.at <= timedelta(days=1, seconds=1)
    assert suspended.deadline - warning.at >= timedelta(days=1) - timedelta(seconds=1)
    [notice] = fake.notices
    assert notice.reason == "delete_after_exceeded" and notice.text == warning.message
    assert final.ended_at is not None and final.ended_at >= suspended.deadline


async def test_the_warning_before_an_idle_suspension_says_it_suspends(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """``on_idle: suspend``: the warning ahead of the idle deadline (event and webhook) must
    not say it terminates: it is suspended, its files kept."""
    env = time_skipping_env
    state = make_state(inactivity=H, on_idle="suspend", suspendable=True, delete_after=None)
    state.spec.notify_webhook = "wh-" + "6" * 24
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await env.sleep(timedelta(hours=1, minutes=1))
        suspended = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.status == Status.TERMINATED
    [warning] = [m for m in messages(suspended) if m.startswith("warning:")]
    assert f"warning: {state.spec.name} is suspended (files kept) at " in warning, warning
    assert "terminates" not in warning
    [notice] = fake.notices
    assert notice.text == warning


async def test_the_deletion_warning_says_what_storage_costs_against_running(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A suspended aws instance costs its volumes: the warning (event and webhook) says so,
    and what suspension saved by then (2 days suspended at $1.006/h vs $0.011/h)."""
    env = time_skipping_env
    state = make_state(on_idle="suspend", suspendable=True, delete_after=3 * D)
    state.spec.notify_webhook = "wh-" + "3" * 24
    async with running_worker(
        env.client, price_per_hour=1.006, storage_price_per_hour=0.011
    ) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, "lunch")
        final = await handle.result()
    assert final.termination_reason == TerminationReason.DELETE_AFTER_EXCEEDED
    [warning] = [e for e in final.events if e.message.startswith("warning:")]
    assert "storage $0.011/h ($0.53 so far) vs $1.01/h running; suspension saved $47.76" in (
        warning.message
    ), warning.message
    assert warning.message.endswith(f"to keep it: devenv resume {state.spec.name}")
    [notice] = fake.notices
    assert notice.text == warning.message


async def test_max_duration_counts_running_time_only(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(max_duration=3 * H, suspendable=True, delete_after=None)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        running = await wait_running(handle)
        assert running.created_at is not None
        await env.sleep(timedelta(hours=1))
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await env.sleep(timedelta(hours=5))
        await handle.execute_update(WF.request_resume, None)
        resumed = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert resumed.deadline is not None
        assert resumed.deadline - running.created_at >= timedelta(hours=8)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.MAX_DURATION_EXCEEDED
    assert final.ended_at is not None
    ran = final.ended_at - running.created_at - timedelta(seconds=final.suspended_seconds)
    assert timedelta(hours=3) <= ran <= timedelta(hours=3, seconds=2)
    assert len(fake.terminates) == 1


async def test_requests_that_cannot_apply_are_refused_in_one_line(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        plain = make_state()
        handle = await start(env.client, fake, plain)
        await wait_running(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.request_suspend, None)
        assert f"{plain.spec.name} cannot be suspended: backend local cannot suspend" in str(
            refused.value.cause
        )
        await handle.execute_update(WF.request_stop, None)
        await handle.result()

        state = make_state(suspendable=True)
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.request_resume, None)
        assert f"{state.spec.name} is running, not suspended: nothing to resume" in str(
            refused.value.cause
        )
        for garbage in (42, {"x": 1}, "r" * 5000):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(WF.request_suspend, garbage)  # type: ignore[arg-type]
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.request_suspend, None)
        assert f"{state.spec.name} is already suspended" in str(refused.value.cause)
        # A stop ends a suspended environment for good, on the suspended instance.
        await handle.execute_update(WF.request_stop, "done")
        final = await handle.result()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert fake.terminates[-1].instance == final.instance
    assert final.instance is not None and final.instance.data == {"suspended": True}


async def test_a_failed_resume_leaves_it_suspended_and_says_why(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(suspendable=True, delete_after=None)
    async with running_worker(env.client, resume_failure="no capacity in eu-west-1a") as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_resume, None)
        back = await wait_for(handle, lambda s: s.error is not None)
        assert back.error is not None and "no capacity in eu-west-1a" in back.error
        assert messages(back)[-1].endswith("; still suspended")
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert len(fake.resumes) == 1


async def test_a_resume_while_suspending_resumes_once_suspended(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    gate = asyncio.Event()
    state = make_state(suspendable=True)
    async with running_worker(env.client, suspend_gate=gate) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDING and bool(fake.suspends))
        answer = await handle.execute_update(WF.request_resume, None)
        assert answer.status == Status.SUSPENDING
        gate.set()
        resumed = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert len(fake.resumes) == 1
        assert resumed.suspended_seconds >= 0 and resumed.suspended_at is None
        assert "resuming (resume asked while suspending)" in messages(resumed)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_the_machines_failsafe_is_told_to_suspend_and_told_again_after_a_resume(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(inactivity=2 * H, on_idle="suspend", suspendable=True, delete_after=None)
    async with running_worker(env.client, failsafe=True) as fake:
        handle = await start(env.client, fake, state)
        told = await wait_for(handle, lambda s: s.failsafe_policy is not None)
        assert told.failsafe_policy is not None and told.failsafe_policy.on_idle == "suspend"
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert len(fake.policies) == 1, "a suspended machine is told nothing"
        await env.sleep(timedelta(hours=1))
        await handle.execute_update(WF.request_resume, None)
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.policies) == 2)
        again = fake.policies[-1].policy
        assert again.on_idle == "suspend"
        # max_duration's start moves by the time suspended (running time only).
        assert told.ready_at is not None
        assert again.started_at - told.ready_at >= timedelta(hours=1)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_a_suspended_environment_continues_as_new_and_keeps_its_deletion_time(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    tuning = Tuning(search_attributes=False, monitor=False, max_history_events=40)
    state = make_state(suspendable=True, delete_after=3 * D, tuning=tuning)
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, None)
        suspended = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        for minutes in range(12):  # changes grow the history past the cap while suspended
            threshold = DurationSetting(seconds=3600 + 60 * minutes)
            await handle.execute_update(WF.change, Change(inactivity=threshold))
        moved = await wait_for(handle, lambda s: s.runs > suspended.runs)
        assert moved.status == Status.SUSPENDED
        assert moved.suspended_at == suspended.suspended_at
        assert moved.instance == suspended.instance
        assert moved.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED
        latest = env.client.get_workflow_handle_for(WF.run, handle.id)
        await latest.execute_update(WF.request_resume, None)
        await wait_for(latest, lambda s: s.status == Status.RUNNING)
        await latest.execute_update(WF.request_stop, None)
        final = await latest.result()
    assert final.status == Status.TERMINATED
    assert len(fake.suspends) == 1 and len(fake.resumes) == 1


async def test_a_spent_idle_budget_suspends_with_on_idle_suspend(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """``idle_budget`` is an idle rule too: with ``on_idle: suspend`` it suspends (issue 24:
    "ends (or suspends)"), and the event says which rule did it."""
    env = time_skipping_env
    state = make_state(inactivity=None, on_idle="suspend", suspendable=True, delete_after=None)
    state.spec.price_per_hour = 30.0
    state.spec.idle_budget = 2.0
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await env.sleep(timedelta(minutes=5))
        suspended = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert suspended.termination_reason is None and fake.terminates == []
        assert any(
            m.startswith("suspending: idle budget $2 at $30/h") and m.endswith("(on_idle: suspend)")
            for m in messages(suspended)
        ), messages(suspended)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_the_deletion_warning_of_a_free_machine_says_no_cost_words(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """local costs $0/h: its deletion warning has no "no storage price known vs $0.00/h
    running; suspension saved $0.00" (seen by hand), only when and how to keep it."""
    env = time_skipping_env
    state = make_state(on_idle="suspend", suspendable=True, delete_after=3 * D)
    async with running_worker(env.client, price_per_hour=0.0) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, "lunch")
        final = await handle.result()
    assert final.termination_reason == TerminationReason.DELETE_AFTER_EXCEEDED
    [warning] = [e.message for e in final.events if e.message.startswith("warning:")]
    assert "(in 1d; suspended for delete_after 3d); to keep it: devenv resume" in warning, warning
    assert "storage" not in warning and "saved" not in warning
