"""Send a policy version to every environment not ending, suspended ones too (activity
``fan_out_policy``).

Each environment gets its owner's effective bounds as the update ``apply_org_policy``,
many at a time. A retried attempt (its worker killed) lists and sends again: an
environment that has the version refuses it in its validator, which records nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from devenv.models.names import Activity
from devenv.models.policy import FanOutProgress, FanOutResult, PolicySet
from devenv.models.state import WORKFLOW_TYPE
from devenv.models.status import MEMO_KEY
from devenv.workflows.environment import DevEnvironmentWorkflow

log = logging.getLogger(__name__)

CONCURRENCY = 200
"""Updates in flight at once: each waits for one workflow task of its environment."""
UPDATE_TIMEOUT = 60.0
"""An environment that does not answer this long (no worker) fails the attempt, which is
retried: it gets the version once a worker runs it."""
BEAT_SECONDS = 5.0
RUNNING = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'


class PolicyActivities:
    """The policy workflow's activity, bound to a Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @property
    def client(self) -> Client:
        return self._client

    async def _expected(self) -> int | None:
        """How many environments the listing should find (for the progress shown); None
        if the count fails, which does not stop the fan-out."""
        try:
            return (await self._client.count_workflows(RUNNING)).count
        except RPCError as err:
            log.warning("counting the running environments failed (%s); sending anyway", err)
            return None

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def fan_out_policy(self, policies: PolicySet) -> FanOutResult:
        """Every running environment brought within ``policies``; how many moved."""
        gate = asyncio.Semaphore(CONCURRENCY)
        result = FanOutResult(version=policies.version, attempt=activity.info().attempt)
        expected = await self._expected()
        applied = 0  # took it (changed or not); with ``already``, those that answered
        unanswered: list[str] = []

        def progress() -> FanOutProgress:
            return FanOutProgress(
                version=result.version,
                expected=expected,
                environments=result.environments,
                answered=result.already + applied,
                changed=result.changed,
                attempt=result.attempt,
            )

        async def send(workflow_id: str, owner: str | None) -> None:
            nonlocal applied
            async with gate:
                handle = self._client.get_workflow_handle(workflow_id)
                try:
                    changed = await asyncio.wait_for(
                        handle.execute_update(
                            DevEnvironmentWorkflow.apply_org_policy,
                            policies.effective(owner, datetime.now(UTC)),
                        ),
                        UPDATE_TIMEOUT,
                    )
                except WorkflowUpdateFailedError:
                    result.already += 1  # refused: has it already, or is ending
                    return
                except RPCError as err:
                    if err.status == RPCStatusCode.NOT_FOUND or "already completed" in err.message:
                        result.already += 1
                        return
                    raise
                except TimeoutError:
                    unanswered.append(workflow_id)
                    return
                applied += 1
                if changed:
                    result.changed += 1

        beating = asyncio.create_task(beat_progress(progress))
        tasks: list[asyncio.Task[None]] = []
        try:
            async for execution in self._client.list_workflows(RUNNING):
                row = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
                owner = row.get("owner") if isinstance(row, dict) else None
                result.environments += 1
                tasks.append(asyncio.create_task(send(execution.id, owner)))
            await asyncio.gather(*tasks)
        finally:
            beating.cancel()
            for task in tasks:
                task.cancel()
        if unanswered:
            log.warning(
                "policy version %d: %d environment(s) did not answer within %.0f s; sending again",
                policies.version,
                len(unanswered),
                UPDATE_TIMEOUT,
            )
            raise ApplicationError(
                f"{len(unanswered)} environment(s) did not answer (first: {unanswered[0]}); "
                "sending again"
            )
        log.info(
            "policy version %d sent to %d environment(s), %d changed",
            policies.version,
            result.environments,
            result.changed,
        )
        return result


async def beat_progress(progress: Callable[[], FanOutProgress]) -> None:
    """Heartbeat how far the fan-out got: it proves the attempt alive, and ``policy set``
    and ``policy show`` read the latest one the server holds (the worker's throttle sends
    one about every 25 s)."""
    while True:
        activity.heartbeat(progress().model_dump(mode="json"))
        await asyncio.sleep(BEAT_SECONDS)


def policy_activities(acts: PolicyActivities) -> list[Callable[..., object]]:
    """What the shared queue's worker registers for the policy workflow: the fan-out and
    the idle-budget check."""
    from devenv.activities.budget_check import BudgetActivities

    return [acts.fan_out_policy, BudgetActivities(acts.client).check_idle_budgets]


__all__ = ["PolicyActivities", "policy_activities"]
