"""An admin's policy reaching a running environment (update ``apply_org_policy``):
thresholds clamped and said so in its events, the user's own lower choice kept when a
bound rises, an environment already past a lowered bound warned before it ends, the
same version applied once, garbage refused, and a user's change outside it refused."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devenv.client.policy import catch_up
from devenv.models.names import Activity
from devenv.models.policy import FanOutResult, OrgPolicy, PolicySet
from devenv.models.state import (
    Change,
    DurationSetting,
    Status,
    StopAtSetting,
    TerminationReason,
)
from devenv.models.status import POLICY_CHANGES_KEY
from devenv.worker import binaries
from devenv.workflows.visibility import memo_row
from tests.workflow.fakes import (
    WF,
    H,
    make_state,
    messages,
    policy_set,
    query_status,
    running_env,
    running_worker,
    start,
    wait_for,
    wait_running,
)


def policy(version: int, **bounds: int | bool) -> OrgPolicy:
    return OrgPolicy(version=version, scopes={key: "everyone" for key in bounds}, **bounds)  # type: ignore[arg-type]


async def test_a_lowered_bound_lowers_the_threshold_and_a_raised_one_gives_back_the_users(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=12 * H)) as (_fake, handle, _):
        assert await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        lowered = await query_status(handle)
        assert await handle.execute_update(
            WF.apply_org_policy, policy(2, max_inactivity=24 * H, max_duration=48 * H)
        )
        raised = await query_status(handle)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert lowered.spec.inactivity_duration == 8 * H
    assert (lowered.policy_changes, raised.policy_changes) == (1, 2)  # for /metrics
    assert memo_row(raised)[POLICY_CHANGES_KEY] == 2
    assert raised.spec.inactivity_duration == 12 * H  # what the user asked, not 24h
    assert raised.spec.max_duration == 48 * H  # off is not allowed under a max
    told = messages(final)
    assert "inactivity threshold lowered from 12h to 8h by policy (max-inactivity 8h)" in told
    assert any(m.startswith("inactivity threshold raised from 8h to 12h by policy") for m in told)
    assert any(m.startswith("max duration lowered from off to 2d by policy") for m in told)


async def test_raising_a_bound_never_raises_a_users_own_lower_choice(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=4 * H)) as (_fake, handle, _):
        assert not await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        await handle.execute_update(
            WF.change, Change(inactivity=DurationSetting(seconds=2 * H), by="alice")
        )
        assert not await handle.execute_update(
            WF.apply_org_policy, policy(2, max_inactivity=24 * H)
        )
        state = await query_status(handle)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert state.spec.inactivity_duration == 2 * H


async def test_an_environment_idle_past_the_new_bound_is_warned_then_ends(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_env(env.client, make_state(inactivity=12 * H)) as (_fake, handle, _):
        await env.sleep(9 * H)
        await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        warned = await query_status(handle)
        final = await handle.result()
    assert warned.status == Status.RUNNING  # not cut off without a warning
    told = messages(final)
    lowered = next(m for m in told if m.startswith("inactivity threshold lowered"))
    assert "after its warning" in lowered
    assert told.index(lowered) < next(
        i for i, m in enumerate(told) if "warning" in m.lower() and m != lowered
    )
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None and warned.deadline is not None
    assert final.ended_at >= warned.deadline


async def test_the_same_version_twice_and_garbage_are_refused_and_record_nothing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=12 * H)) as (_fake, handle, _):
        await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        before = len((await query_status(handle)).events)
        with pytest.raises(WorkflowUpdateFailedError) as again:
            await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=H))
        assert "policy version 1 already applied" in str(again.value.cause)
        for garbage in ("8h", {"version": "x"}, {"version": 3, "max_inactivity": -5}):
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(WF.apply_org_policy, garbage)  # type: ignore[arg-type]
        state = await query_status(handle)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert len(state.events) == before
    assert state.spec.inactivity_duration == 8 * H
    assert state.policy_changes == 1  # a refused or repeated version counts nothing


async def test_a_users_change_outside_the_policy_is_refused_naming_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=2 * H)) as (_fake, handle, _):
        await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                WF.change, Change(inactivity=DurationSetting(seconds=12 * H), by="alice")
            )
        state = await query_status(handle)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert str(refused.value.cause.message) == (  # type: ignore[union-attr]
        "inactivity_duration: 12h exceeds the policy's max-inactivity 8h "
        "(set by an admin for everyone; devenv policy show)"
    )
    assert state.spec.inactivity_duration == 2 * H


async def test_a_daily_stop_ends_it_after_its_warning_and_a_later_stop_at_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_env(env.client, make_state(inactivity=None)) as (_fake, handle, state):
        now = state.ready_at
        assert now is not None
        stop = now + timedelta(hours=3)
        daily = policy(1).model_copy(
            update={"stop_at_daily": "20:00", "tz": "Europe/Berlin", "next_stop": stop}
        )
        await handle.execute_update(WF.apply_org_policy, daily)
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(
                WF.change, Change(stop_at=StopAtSetting(at=stop + timedelta(hours=1)))
            )
        final = await handle.result()
    assert "is after the policy's stop-at-daily 20:00" in str(refused.value.cause)
    told = messages(final)
    assert any(
        m.startswith("scheduled stop at ") and m.endswith("(stop-at-daily 20:00 Europe/Berlin)")
        for m in told
    )
    assert any(m.startswith("warning:") for m in told)
    assert final.termination_reason == TerminationReason.SCHEDULED_STOP
    assert final.ended_at is not None and final.ended_at >= stop


async def test_the_older_single_field_update_and_signal_cannot_go_around_the_policy(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=2 * H)) as (_fake, handle, _):
        await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=8 * H))
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.set_inactivity, None)
        await handle.signal(WF.update_inactivity, 12 * H)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert "off is refused by the policy's max-inactivity 8h" in str(refused.value.cause)
    assert final.spec.inactivity_duration == 2 * H
    assert any(
        m.startswith("inactivity_duration signal ignored: inactivity_duration: 12h exceeds")
        for m in messages(final)
    )


async def test_a_suspended_environment_takes_the_version_and_resumes_within_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A version set while an environment suspends or sleeps reaches it then (the fan-out
    sends every running workflow): after the resume its idle threshold is the bound's."""
    env = time_skipping_env
    gate = asyncio.Event()
    state = make_state(inactivity=12 * H, on_idle="suspend", suspendable=True, delete_after=None)
    async with running_worker(env.client, suspend_gate=gate) as fake:
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        await handle.execute_update(WF.request_suspend, "lunch")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDING and bool(fake.suspends))
        assert await handle.execute_update(WF.apply_org_policy, policy(1, max_inactivity=10 * H))
        gate.set()
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert await handle.execute_update(WF.apply_org_policy, policy(2, max_inactivity=8 * H))
        asleep = await query_status(handle)
        await handle.execute_update(WF.request_resume, "back")
        resumed = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=8, minutes=1))
        again = await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert asleep.status == Status.SUSPENDED and asleep.spec.inactivity_duration == 8 * H
    assert memo_row(asleep)["inactivity_duration"] == 8 * H  # what `devenv ps` lists
    assert asleep.org_policy is not None and asleep.org_policy.version == 2
    assert resumed.idle_since is not None and again.suspended_at is not None
    assert timedelta(hours=8) <= again.suspended_at - resumed.idle_since < timedelta(hours=9)
    told = messages(final)
    assert "inactivity threshold lowered from 12h to 10h by policy (max-inactivity 10h)" in told
    assert "inactivity threshold lowered from 10h to 8h by policy (max-inactivity 8h)" in told
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER


async def test_a_start_that_raced_a_policy_change_takes_the_version_it_missed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """A start read version 0, and the fan-out of version 1 listed the environments before
    this one existed: the start itself sends it version 1 (``catch_up``), once."""
    client = time_skipping_env.client

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def listed_before_it_existed(policies: PolicySet) -> FanOutResult:
        return FanOutResult(version=policies.version)

    async with policy_set(client, listed_before_it_existed, {"max_inactivity": 8 * H}):
        async with running_env(client, make_state(inactivity=12 * H)) as (_fake, handle, _):
            assert await catch_up(client, handle, 0, None)
            caught = await query_status(handle)
            assert not await catch_up(client, handle, 0, None)  # has it: refused, unrecorded
            assert not await catch_up(client, handle, 1, None)  # read the newest: nothing sent
            after = await query_status(handle)
            await handle.execute_update(WF.request_stop, None)
            await handle.result()
    assert caught.spec.inactivity_duration == 8 * H
    assert caught.org_policy is not None and caught.org_policy.version == 1
    assert len(after.events) == len(caught.events)
    assert "inactivity threshold lowered from 12h to 8h by policy (max-inactivity 8h)" in (
        messages(after)
    )


async def test_a_catch_up_that_cannot_reach_the_server_never_fails_the_start(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The environment exists once its workflow started: a server gone before the start
    reads the policy again is a warning, not an error that would say nothing was created."""
    gone = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binaries.test_server()),
    )
    client = gone.client
    await gone.shutdown()
    began = time.monotonic()
    assert not await catch_up(client, client.get_workflow_handle("devenv-gone"), 0, None)
    assert time.monotonic() - began < 60
    assert "devenv-gone: the policy could not be checked again after the start" in caplog.text
