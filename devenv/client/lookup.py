"""Finding environments on the server and reading their state."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from devenv.client.refs import candidate_ids as candidate_ids  # its old home
from devenv.errors import (
    EnvironmentNotFoundError,
    NotAnsweringError,
    NoWorkerError,
    UserError,
)
from devenv.workflows.state import WORKFLOW_TYPE, EnvState
from devenv.workflows.status import EnvironmentPage, EnvironmentStatus
from devenv.workflows.visibility import MEMO_KEY

QUERY_TIMEOUT = timedelta(seconds=10)
UPDATE_TIMEOUT = timedelta(seconds=20)
"""How long `signal` and `stop` wait for the workflow to answer a change."""
Handle = WorkflowHandle[Any, EnvState]
LIST_PAGE_SIZE = 1000
FIRST_PAGE_SIZE = 100
"""What `devenv ps` asks for first: a screenful, however large the fleet."""


async def resolve(client: Client, ref: str) -> Handle:
    """The environment called ``ref`` (a name, or a workflow id ``devenv-NAME``)."""
    for workflow_id in candidate_ids(ref):
        handle: Handle = client.get_workflow_handle(workflow_id, result_type=EnvState)
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND and "amespace" not in err.message:
                continue
            raise  # a missing namespace is not a missing environment
        if description.workflow_type != WORKFLOW_TYPE:
            raise UserError(
                f"{ref!r} is a workflow of type {description.workflow_type!r}, "
                "not a devenv environment"
            )
        return handle
    raise EnvironmentNotFoundError(f"no environment named {ref!r} (see `devenv ps --all`)")


async def require_worker(client: Client, handle: Handle) -> None:
    """Refuse a change to a running environment that no worker could apply now.

    An Update nobody picks up waits forever, and could apply much later when a worker
    returns; better to say so at once and change nothing.
    """
    description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    if description.status != WorkflowExecutionStatus.RUNNING:
        return  # ended: the update itself answers "already completed"
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=description.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=QUERY_TIMEOUT,
    )
    if not response.pollers:
        raise NoWorkerError(
            f"{handle.id}: no devenv worker is running, so nothing can apply the change; "
            "start one with `devenv server` (nothing was changed)"
        )


async def fetch_state(handle: Handle) -> EnvState:
    """Running: the `status` query. Ended: the workflow's result (the final state)."""
    description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    silent = NotAnsweringError(
        f"environment {handle.id} did not answer within "
        f"{QUERY_TIMEOUT.seconds}s; is a devenv worker running? (`devenv server`)"
    )
    try:
        # A hard bound too: the client retries some failures, each with a fresh rpc_timeout.
        async with asyncio.timeout(QUERY_TIMEOUT.total_seconds() + 1):
            if description.status == WorkflowExecutionStatus.COMPLETED:
                return await handle.result(rpc_timeout=QUERY_TIMEOUT)
            return await _query(handle)
    except TimeoutError:
        raise silent from None
    except RPCError as err:
        # RESOURCE_EXHAUSTED: queries pile up in the server while no worker answers them.
        if err.status in (
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.CANCELLED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
        ):
            raise silent from None
        raise


async def _query(handle: Handle) -> EnvState:
    state = await handle.query("status", result_type=EnvState, rpc_timeout=QUERY_TIMEOUT)
    return cast(EnvState, state)


async def list_statuses(
    client: Client, include_ended: bool
) -> tuple[list[EnvironmentStatus], list[str]]:
    """Every environment (one row per environment, not per continue-as-new run), sorted,
    and the workflow ids of those that did not answer."""
    rows: list[EnvironmentStatus] = []
    silent: list[str] = []
    now = datetime.now(UTC)  # one moment for every row's cost
    async for page in status_pages(client, include_ended, LIST_PAGE_SIZE, now):
        rows += page
        silent += page.unanswered
    return sort_statuses(rows), silent


async def status_pages(
    client: Client,
    include_ended: bool,
    first_page_size: int,
    now: datetime | None = None,
    page_size: int = LIST_PAGE_SIZE,
) -> AsyncIterator[EnvironmentPage]:
    """The listing a page at a time (the first of ``first_page_size`` rows, then
    ``page_size``), each page sorted, so a fleet of thousands shows its first rows
    as soon as the server sends them.

    Pages of the server's visibility store: each workflow keeps its status in its memo,
    so no workflow is queried and no worker is needed. Only environments started before
    the memo existed are queried (and may not answer).
    """
    query = f'WorkflowType="{WORKFLOW_TYPE}"'
    query += (
        ' AND ExecutionStatus!="ContinuedAsNew"'
        if include_ended
        else ' AND ExecutionStatus="Running"'
    )
    listing = client.list_workflows(query, page_size=page_size)
    size = first_page_size
    while True:
        await listing.fetch_next_page(page_size=size)
        size = page_size
        rows, silent = await _statuses(client, listing.current_page or [], now)
        last = listing.next_page_token is None
        yield EnvironmentPage(sort_statuses(rows), silent, last)
        if last:
            return


async def _statuses(
    client: Client, executions: Sequence[WorkflowExecution], now: datetime | None
) -> tuple[list[EnvironmentStatus], list[str]]:
    """The rows of one page, and the ids of those without a memo that did not answer."""
    now = now or datetime.now(UTC)
    rows: list[EnvironmentStatus] = []
    unlisted: list[Handle] = []
    for execution in executions:
        memo = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
        if memo is not None:
            rows.append(EnvironmentStatus.model_validate(memo).costed(now))
            continue
        running = execution.status == WorkflowExecutionStatus.RUNNING
        run_id = None if running else execution.run_id
        unlisted.append(
            client.get_workflow_handle(execution.id, run_id=run_id, result_type=EnvState)
        )
    results = await asyncio.gather(*(fetch_state(h) for h in unlisted), return_exceptions=True)
    rows += [EnvironmentStatus.from_state(r, now) for r in results if isinstance(r, EnvState)]
    silent = [h.id for h, r in zip(unlisted, results, strict=True) if not isinstance(r, EnvState)]
    return rows, silent


STATUS_ORDER = {
    status: index for index, status in enumerate(("provisioning", "running", "terminating"))
}


def sort_statuses(rows: list[EnvironmentStatus]) -> list[EnvironmentStatus]:
    """Provisioning, running, terminating, then ended ones; by name within each."""
    return sorted(rows, key=lambda row: (STATUS_ORDER.get(row.status.value, 9), row.name))
