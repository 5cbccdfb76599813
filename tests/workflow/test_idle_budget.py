"""Idle budgets in the policy workflow: once a user's idle spend of the week passes their
budget, the next check makes a new version whose fan-out tightens their running
environments' idle thresholds to the floor (the event says why); a new week gives them
back; a failing check never fails the workflow."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.models.names import Activity
from devenv.models.policy import FanOutResult, IdleSpends, PolicyChange, PolicySet, PolicyStatus
from devenv.workflows.policy import BUDGET_CHECK_EVERY, PolicyWorkflow
from tests.workflow.fakes import WF, H, make_state, messages, query_status, running_env


async def until(check: Callable[[], bool]) -> None:
    for _ in range(400):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never happened")


async def test_a_spent_budget_tightens_a_running_environment_and_a_new_week_restores_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    client = env.client
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    spend = {"alice": 10.0}
    checks: list[int] = []
    sent: list[int] = []
    state = make_state(inactivity=2 * H)
    state.spec.owner = "alice"
    state.spec.notify_webhook = "team"
    async with running_env(client, state) as (fake, handle, _):

        @activity.defn(name=Activity.CHECK_IDLE_BUDGETS)
        async def check_idle_budgets(policies: PolicySet) -> IdleSpends:
            checks.append(policies.version)
            return IdleSpends(spends=dict(spend), checked_at=datetime.now(UTC))

        @activity.defn(name=Activity.FAN_OUT_POLICY)
        async def fan_out_policy(policies: PolicySet) -> FanOutResult:
            changed = await handle.execute_update(
                WF.apply_org_policy, policies.effective("alice", datetime.now(UTC))
            )
            sent.append(policies.version)
            return FanOutResult(version=policies.version, environments=1, changed=int(changed))

        async with Worker(
            client,
            task_queue=queue,
            workflows=[PolicyWorkflow],
            activities=[check_idle_budgets, fan_out_policy],
        ):
            policy = await client.start_workflow(
                PolicyWorkflow.run, PolicyStatus(), id=f"policy-{queue}", task_queue=queue
            )
            await policy.execute_update(
                PolicyWorkflow.set_policy,
                PolicyChange(keys={"idle_budget_weekly": 50.0, "floor_inactivity": 900}),
            )
            await until(lambda: sent == [1] and len(checks) == 1)  # checked at once: under
            under = await query_status(handle)

            spend["alice"] = 51.2
            await env.sleep(BUDGET_CHECK_EVERY + timedelta(seconds=5))
            await until(lambda: sent == [1, 2])
            await until(lambda: any(n.reason == "policy" for n in fake.notices))
            tightened = await query_status(handle)
            status = await policy.query(PolicyWorkflow.policy)

            spend["alice"] = 0.0  # Monday: a new week
            await env.sleep(BUDGET_CHECK_EVERY + timedelta(seconds=5))
            await until(lambda: sent == [1, 2, 3])
            restored = await query_status(handle)
            history = await policy.fetch_history()
            await policy.terminate("done")
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert under.spec.inactivity_duration == 2 * H
    assert tightened.spec.inactivity_duration == 900
    assert status.policies.over_budget == {"alice": 51.2}
    assert status.idle is not None and status.idle.spends == {"alice": 51.2}
    assert restored.spec.inactivity_duration == 2 * H
    told = messages(final)
    lowered = (
        "inactivity threshold lowered from 2h to 15m by policy (idle budget $50/week spent: $51.20)"
    )
    assert any(m.startswith(lowered) for m in told)
    assert any(m.startswith("inactivity threshold raised from 15m to 2h by policy") for m in told)
    policy_notices = [n for n in fake.notices if n.reason == "policy"]
    assert len(policy_notices) == 1  # the tightening, not the week's restoring
    assert "(idle budget $50/week spent: $51.20)" in policy_notices[0].text
    failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert failed == []


async def test_a_failing_check_is_tried_again_later_and_never_fails_the_workflow(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    client = env.client
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    checks: list[int] = []

    @activity.defn(name=Activity.CHECK_IDLE_BUDGETS)
    async def check_idle_budgets(policies: PolicySet) -> IdleSpends:
        checks.append(policies.version)
        raise RuntimeError("visibility store unreachable")

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def fan_out_policy(policies: PolicySet) -> FanOutResult:
        return FanOutResult(version=policies.version)

    async with Worker(
        client,
        task_queue=queue,
        workflows=[PolicyWorkflow],
        activities=[check_idle_budgets, fan_out_policy],
    ):
        policy = await client.start_workflow(
            PolicyWorkflow.run, PolicyStatus(), id=f"policy-{queue}", task_queue=queue
        )
        await policy.execute_update(
            PolicyWorkflow.set_policy,
            PolicyChange(keys={"idle_budget_weekly": 5.0, "floor_inactivity": 600}),
        )
        await until(lambda: len(checks) >= 3)  # three attempts, then given up for now
        await env.sleep(BUDGET_CHECK_EVERY + timedelta(minutes=1))
        await until(lambda: len(checks) >= 4)
        described = await policy.describe()
        await policy.terminate("done")
    assert described.status is not None and described.status.name == "RUNNING"
