"""The admins' policies, held by one workflow: durable as every environment is.

A singleton (``POLICY_WORKFLOW_ID``) that lives for ever (continue-as-new carries it).
``set_policy`` (an update: validated, then applied at once) bumps the version and puts
the whole set in the memo, which starts and ``policy show`` read without a worker; the
run loop then has ``fan_out_policy`` send each running environment its owner's
effective bounds. An activity killed with its worker is retried from the listing;
environments that already have the version refuse it without recording anything, so
nothing is lost and nothing applied twice. A newer version while one fans out is sent
right after it (environments skip to the newest).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from devenv.models.idle_spend import over_budget
    from devenv.models.names import Activity, PolicyQuery, PolicyUpdate
    from devenv.models.policy import (
        FanOutResult,
        IdleSpends,
        PolicyChange,
        PolicyRefusal,
        PolicyStatus,
    )
    from devenv.workflows import inputs, patches

POLICY_WORKFLOW_TYPE = "DevenvPolicy"
POLICY_WORKFLOW_ID = "devenv-policy:org"
"""``:`` keeps it apart from every environment's id (``devenv-NAME``)."""
POLICY_MEMO = "devenv-policy"
FAN_OUT_TIMEOUT = timedelta(hours=1)
FAN_OUT_HEARTBEAT = timedelta(seconds=30)
FAN_OUT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
MAX_HISTORY = 2_000
BUDGET_CHECK_EVERY = timedelta(minutes=5)
"""How often the idle spends are checked while a budget is set (and right after each
change): two visibility listings each time, whatever the fleet's size."""
BUDGET_CHECK_TIMEOUT = timedelta(minutes=2)
BUDGET_CHECK_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30), maximum_attempts=3)


@workflow.defn(name=POLICY_WORKFLOW_TYPE)
class PolicyWorkflow:
    """Keep the policies; after each change, bring every running environment within it."""

    @workflow.init
    def __init__(self, status: PolicyStatus) -> None:
        self._status = status
        self._check_due = True

    @workflow.run
    async def run(self, status: PolicyStatus) -> None:
        self._publish()
        while True:
            budgets = self._status.policies.has_budget() and workflow.patched(
                patches.IDLE_BUDGET_PATCH
            )
            try:
                await workflow.wait_condition(
                    lambda: self._pending() or self._too_long() or self._budget_due(),
                    timeout=BUDGET_CHECK_EVERY if budgets else None,
                )
            except TimeoutError:
                self._check_due = True
            if self._pending():
                target = self._status.policies.model_copy(deep=True)
                reached: FanOutResult = await workflow.execute_activity(
                    Activity.FAN_OUT_POLICY,
                    target,
                    result_type=FanOutResult,
                    start_to_close_timeout=FAN_OUT_TIMEOUT,
                    heartbeat_timeout=FAN_OUT_HEARTBEAT,
                    retry_policy=FAN_OUT_RETRY,
                    summary=f"policy version {target.version} to every running environment",
                )
                self._status.reached = reached
                self._publish()
            if budgets and self._check_due and not self._pending():
                await self._check_budgets()
            if self._too_long():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(self._status)

    async def _check_budgets(self) -> None:
        """The idle spends of the week; a user passing their budget (or back under it, a
        new week) makes a new version, which the fan-out sends with the tightened bound."""
        self._check_due = False
        target = self._status.policies.model_copy(deep=True)
        try:
            idle: IdleSpends = await workflow.execute_activity(
                Activity.CHECK_IDLE_BUDGETS,
                target,
                result_type=IdleSpends,
                start_to_close_timeout=BUDGET_CHECK_TIMEOUT,
                retry_policy=BUDGET_CHECK_RETRY,
                summary="idle spends of the week",
            )
        except ActivityError:
            workflow.logger.warning("idle spends not read; checking again in a while")
            return
        self._status.idle = idle
        policies = self._status.policies
        budgets = {
            user: budget
            for user in idle.spends
            if (budget := policies.effective(user).idle_budget_weekly) is not None
        }
        over = over_budget(idle.spends, budgets, policies.over_budget)
        if set(over) != set(policies.over_budget):
            policies.over_budget = over
            policies.version += 1
            policies.changed_at = workflow.now()
            policies.changed_by = "idle budget"
        self._publish()

    def _budget_due(self) -> bool:
        """A check asked for (a change), while a budget is set; patched where it is."""
        return self._check_due and self._status.policies.has_budget()

    def _pending(self) -> bool:
        reached = self._status.reached
        version = self._status.policies.version
        return version > 0 and (reached is None or reached.version < version)

    def _too_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_HISTORY
        )

    @workflow.update(name=PolicyUpdate.SET_POLICY)
    def set_policy(self, *args: Any) -> PolicyStatus:
        """One scope's keys set, or the scope cleared; the new version, not yet reached."""
        change = inputs.lenient_model(PolicyChange, args)
        try:
            policies = change.applied_to(self._status.policies)
        except PolicyRefusal as refusal:  # the validator refused it already; never a task failure
            raise ApplicationError(str(refusal), non_retryable=True) from None
        policies.version = self._status.policies.version + 1
        policies.changed_at = workflow.now()
        policies.changed_by = change.by
        self._status.policies = policies
        self._check_due = True
        self._publish()
        return self._status

    @set_policy.validator
    def _validate_set_policy(self, *args: Any) -> None:
        change = inputs.strict_model(PolicyChange, args, "set_policy")
        change.applied_to(self._status.policies)  # PolicyRefusal: refused, nothing recorded

    @workflow.query(name=PolicyQuery.POLICY)
    def policy(self, *args: Any) -> PolicyStatus:
        """The policies and how far the latest version reached (inputs ignored)."""
        return self._status

    def _publish(self) -> None:
        """The memo: read by starts and ``policy show`` with no worker involved."""
        workflow.upsert_memo({POLICY_MEMO: self._status.model_dump(mode="json")})
