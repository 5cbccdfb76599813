"""The ``owner_breaks`` activity: an owner's breaks in their other environments.

``inactivity_duration: auto`` learns from every environment of its owner over the last
two weeks, running or ended, read with the report's own data model
(``devenv.models.usage``). Bounded: at most ``MAX_ENVIRONMENTS`` environments read, at
most ``auto_threshold.MAX_BREAKS`` breaks answered. An environment that cannot be read is
skipped: the rule starts at its max, so missing history never ends a machine early.
The listing's memo names each environment's owner, so only the owner's are read.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus

from devenv.models.auto_threshold import Break, OwnerBreaks, OwnerBreaksInput, kept
from devenv.models.names import Query
from devenv.models.state import WORKFLOW_TYPE, EnvState
from devenv.models.status import MEMO_KEY
from devenv.models.usage import breaks_of

log = logging.getLogger(__name__)

MAX_ENVIRONMENTS = 200
"""The owner's environments read at most (each one query or one result)."""
MAX_LISTED = 5000
"""Rows of the listing looked at: its memo names the owner, so others are never read."""
READ_TIMEOUT = timedelta(seconds=5)
READ_CONCURRENCY = 8


async def listed_owner(execution: WorkflowExecution) -> str | None:
    """The owner the listing's memo names (``devenv.workflows.visibility``); None when the
    row has none (started before owners, or before the memo)."""
    try:
        row = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
    except Exception:  # a memo that does not decode names nobody
        return None
    owner = row.get("owner") if isinstance(row, dict) else None
    return owner if isinstance(owner, str) else None


async def owner_breaks(client: Client, request: OwnerBreaksInput) -> OwnerBreaks:
    """Every break that ended in [since, until] in the owner's other environments."""
    if request.owner is None:
        return OwnerBreaks()
    query = (
        f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus!="ContinuedAsNew" AND '
        f'(ExecutionStatus="Running" OR CloseTime>="{request.since.isoformat()}")'
    )
    listed = []
    async for execution in client.list_workflows(query, limit=MAX_LISTED):
        if execution.id != request.workflow_id and await listed_owner(execution) == request.owner:
            listed.append(execution)
        if len(listed) >= MAX_ENVIRONMENTS:
            break
    gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def read(execution_id: str, run_id: str | None, running: bool) -> EnvState | None:
        handle = client.get_workflow_handle(execution_id, run_id=run_id, result_type=EnvState)
        async with gate:
            try:
                async with asyncio.timeout(READ_TIMEOUT.total_seconds()):
                    state: EnvState
                    if running:
                        state = await handle.query(
                            Query.STATUS, result_type=EnvState, rpc_timeout=READ_TIMEOUT
                        )
                    else:
                        state = await handle.result(rpc_timeout=READ_TIMEOUT)
                    return state
            except Exception as err:  # one unreadable environment never fails the rest
                log.info("owner_breaks: skipped %s: %s", execution_id, type(err).__name__)
                return None

    reads = []
    for execution in listed:
        running = execution.status == WorkflowExecutionStatus.RUNNING
        reads.append(read(execution.id, None if running else execution.run_id, running))
    states = await asyncio.gather(*reads)
    mine = [s for s in states if s is not None and s.spec.owner == request.owner]
    found: list[Break] = [b for s in mine for b in breaks_of(s, request.since, request.until)]
    return OwnerBreaks(breaks=kept(found, request.until), environments=len(mine))
