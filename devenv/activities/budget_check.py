"""Each user's idle spend of the week (activity ``check_idle_budgets``).

Two listings of the visibility store, whatever the number of environments: the
running workflows (their memo rows) and those closed since the earliest week start
among the users with a budget. No environment is asked anything. The policy workflow
runs it every few minutes while a budget is set, and right after each change.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from pydantic import ValidationError
from temporalio import activity
from temporalio.client import Client

from devenv.models.idle_spend import SpendRow, idle_usd, week_start
from devenv.models.names import Activity
from devenv.models.policy import IdleSpends, PolicySet
from devenv.models.state import WORKFLOW_TYPE
from devenv.models.status import MEMO_KEY

RUNNING = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
CLOSED = (
    f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus!="Running" '
    'AND ExecutionStatus!="ContinuedAsNew"'
)


class BudgetActivities:
    """The policy workflow's budget check, bound to a Temporal client."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=Activity.CHECK_IDLE_BUDGETS)
    async def check_idle_budgets(self, policies: PolicySet) -> IdleSpends:
        """The idle spend of the week of every owner whose effective policy has a budget."""
        now = datetime.now(UTC)
        starts: dict[str | None, datetime] = {}

        def start_of(owner: str) -> datetime | None:
            if owner not in starts:
                policy = policies.effective(owner)
                starts[owner] = week_start(now, policy.tz) if policy.idle_budget_weekly else now
            begins = starts[owner]
            return None if begins >= now else begins

        earliest = min(week_start(now, tz) for tz in _zones(policies))
        spends: dict[str, float] = defaultdict(float)
        query = f'{CLOSED} AND CloseTime>="{earliest.astimezone(UTC).isoformat()}"'
        for listing in (RUNNING, query):
            async for execution in self._client.list_workflows(listing):
                raw = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
                try:
                    row = SpendRow.model_validate(raw)
                except ValidationError:
                    continue  # no row (or one this version cannot read): nothing counted
                if row.owner is None or (since := start_of(row.owner)) is None:
                    continue
                spends[row.owner] += idle_usd(row, since, now)
        return IdleSpends(
            spends={owner: round(usd, 2) for owner, usd in sorted(spends.items())},
            week_starts={o: s for o, s in starts.items() if o is not None and s < now},
            checked_at=now,
        )


def _zones(policies: PolicySet) -> set[str | None]:
    """The time zones the weeks of the scopes with a budget start in."""
    scopes = [policies.everyone, *policies.users.values()]
    zones = {scope.tz or policies.everyone.tz for scope in scopes}
    return zones | {None}


__all__ = ["BudgetActivities"]
