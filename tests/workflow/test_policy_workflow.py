"""The policy workflow: a change bumps the version, is published in the memo and fanned
out; a refused or garbage change records nothing and never fails a workflow task."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.client.policy import read_policies
from devenv.models.names import Activity
from devenv.models.policy import (
    FanOutProgress,
    FanOutResult,
    PolicyChange,
    PolicySet,
    PolicyStatus,
)
from devenv.workflows.policy import POLICY_MEMO, PolicyWorkflow
from tests.workflow.fakes import policy_set

H = 3600


async def test_a_change_is_versioned_published_and_fanned_out_and_garbage_is_refused(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    sent: list[int] = []

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def fan_out_policy(policies: PolicySet) -> FanOutResult:
        sent.append(policies.version)
        return FanOutResult(version=policies.version, environments=3, changed=3)

    async with Worker(
        client, task_queue=queue, workflows=[PolicyWorkflow], activities=[fan_out_policy]
    ):
        handle = await client.start_workflow(
            PolicyWorkflow.run, PolicyStatus(), id=f"policy-{queue}", task_queue=queue
        )
        answer = await handle.execute_update(
            PolicyWorkflow.set_policy,
            PolicyChange(keys={"max_inactivity": 8 * H}, by="admin"),
        )
        garbage: list[Any] = [
            "8h",
            {"keys": {"max_inactivity": "8h"}},
            {"keys": {"max_idle": 1}},
            {"keys": {"default_inactivity": 9 * H}},
            {"user": "Not A Name", "keys": {"max_duration": H}},
            {"keys": {"max_inactivity": -1}},
        ]
        for value in garbage:
            with pytest.raises(WorkflowUpdateFailedError):
                await handle.execute_update(PolicyWorkflow.set_policy, value)
        while not sent:
            await asyncio.sleep(0.05)
        status = await handle.query(PolicyWorkflow.policy)
        memo = await (await handle.describe()).memo_value(POLICY_MEMO, type_hint=dict)
        history = await handle.fetch_history()
        await handle.terminate("done")
    assert answer.policies.version == 1 and answer.policies.changed_by == "admin"
    assert status.policies.version == 1 and status.policies.everyone.max_inactivity == 8 * H
    assert sent == [1]
    assert PolicyStatus.model_validate(memo).policies == status.policies
    failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert failed == []


@pytest.mark.parametrize("garbage", [False, True])
async def test_policy_show_reads_how_far_a_running_fan_out_got(
    time_skipping_env: WorkflowEnvironment, garbage: bool
) -> None:
    """While a version is being sent, the fan-out's heartbeat says how far it got and
    ``read_policies`` (``policy set``, ``policy show``, ``GET /policy``) carries it; a
    heartbeat that is not progress (an older worker's timestamp) shows nothing."""
    client = time_skipping_env.client
    release = asyncio.Event()
    beat = FanOutProgress(version=1, expected=10, environments=4, answered=3, changed=2)

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def slow_fan_out(policies: PolicySet) -> FanOutResult:
        activity.heartbeat("2026-12-07T10:00:00+00:00" if garbage else beat.model_dump(mode="json"))
        await release.wait()
        return FanOutResult(version=policies.version, environments=10, changed=7)

    async with policy_set(client, slow_fan_out, {"max_inactivity": 8 * H}) as handle:
        while not (await handle.describe()).raw_description.pending_activities:
            await asyncio.sleep(0.05)
        for _ in range(100):  # the heartbeat reaches the server soon after the activity starts
            during = await read_policies(client)
            if during.sending is not None:
                break
            await asyncio.sleep(0.05)
        release.set()
        after = await read_policies(client)
        while after.reached is None:
            await asyncio.sleep(0.05)
            after = await read_policies(client)
    if garbage:
        assert during.sending is None
    else:
        assert during.sending == beat
        assert during.sending.words() == "3 of 10 environments so far, 2 changed"
        assert "sending" in during.model_dump(mode="json")
    assert after.sending is None and after.reached.changed == 7
    assert "sending" not in after.model_dump(mode="json")  # the memo stays as it was
