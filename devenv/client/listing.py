"""Listing environments from the server's visibility store, page by page.

Over the bare gRPC connection (``temporalio.service``): each workflow keeps its row in
its memo, so a listing needs no worker, no query and not ``temporalio.client``, whose
import alone would cost ``devenv ps`` ~100 ms. Only an environment started before the
memo existed is asked for its state, through the full client, fetched then.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from devenv.client.closed import as_closed, terminate_reason
from devenv.models.state import WORKFLOW_TYPE, EnvState
from devenv.models.status import MEMO_KEY, EnvironmentPage, EnvironmentStatus

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.service import ServiceClient

LIST_PAGE_SIZE = 1000
FIRST_PAGE_SIZE = 100
"""What `devenv ps` asks for first: a screenful, however large the fleet."""
LIST_TIMEOUT = timedelta(seconds=30)
"""Per page: a page of 1,000 from a busy server takes well under a second."""


@dataclass(frozen=True)
class Visibility:
    """Where a listing comes from: the bare connection, and how to get the full client
    for the rare environment without a memo."""

    service: ServiceClient
    namespace: str
    client: Callable[[], Awaitable[Client]]

    @classmethod
    def of(cls, client: Client) -> Visibility:
        """The listing source of a connected client."""

        async def same() -> Client:
            return client

        return cls(client.service_client, client.namespace, same)


async def list_statuses(
    source: Visibility, include_ended: bool, group: str | None = None
) -> tuple[list[EnvironmentStatus], list[str]]:
    """Every environment (one row per environment, not per continue-as-new run; ``group``:
    only that group's), sorted, and the workflow ids of those that did not answer."""
    rows: list[EnvironmentStatus] = []
    silent: list[str] = []
    now = datetime.now(UTC)  # one moment for every row's cost
    async for page in status_pages(source, include_ended, LIST_PAGE_SIZE, now, group=group):
        rows += page
        silent += page.unanswered
    return sort_statuses(rows), silent


async def status_pages(
    source: Visibility,
    include_ended: bool,
    first_page_size: int,
    now: datetime | None = None,
    page_size: int = LIST_PAGE_SIZE,
    group: str | None = None,
) -> AsyncIterator[EnvironmentPage]:
    """The listing a page at a time (the first of ``first_page_size`` rows, then
    ``page_size``), each page sorted, so a fleet of thousands shows its first rows
    as soon as the server sends them."""
    query = f'WorkflowType="{WORKFLOW_TYPE}"'
    query += (
        ' AND ExecutionStatus!="ContinuedAsNew"'
        if include_ended
        else ' AND ExecutionStatus="Running"'
    )
    if group is not None:  # a checked name (``checks.checked_group``): safe to quote
        query += f' AND DevEnvGroup="{group}"'
    token = b""
    size = first_page_size
    while True:
        response = await source.service.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=source.namespace, page_size=size, next_page_token=token, query=query
            ),
            retry=True,
            timeout=LIST_TIMEOUT,
        )
        size = page_size
        token = response.next_page_token
        rows, silent = await _statuses(source, response.executions, now)
        last = not token
        yield EnvironmentPage(sort_statuses(rows), silent, last)
        if last:
            return


async def _statuses(
    source: Visibility, executions: Iterable[WorkflowExecutionInfo], now: datetime | None
) -> tuple[list[EnvironmentStatus], list[str]]:
    """The rows of one page, and the ids of those without a memo that did not answer."""
    now = now or datetime.now(UTC)
    rows: list[EnvironmentStatus] = []
    unlisted: list[WorkflowExecutionInfo] = []
    for execution in executions:
        memo = memo_dict(execution.memo.fields.get(MEMO_KEY))
        if memo is not None:
            row = EnvironmentStatus.model_validate(memo).costed(now)
            reason = None
            terminated = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
            # rare: one short read of its history says who terminated it
            if execution.status == terminated and not row.status.ended:
                reason = await terminate_reason(
                    source.service.workflow_service, source.namespace, execution.execution
                )
            rows.append(as_closed(row, execution.status, reason))
        else:
            unlisted.append(execution)
    if not unlisted:
        return rows, []
    from devenv.client.lookup import fetch_state

    client = await source.client()
    handles = [
        client.get_workflow_handle(
            e.execution.workflow_id,
            run_id=None
            if e.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
            else e.execution.run_id,
            result_type=EnvState,
        )
        for e in unlisted
    ]
    results = await asyncio.gather(*(fetch_state(h) for h in handles), return_exceptions=True)
    rows += [EnvironmentStatus.from_state(r, now) for r in results if isinstance(r, EnvState)]
    silent = [h.id for h, r in zip(handles, results, strict=True) if not isinstance(r, EnvState)]
    return rows, silent


def memo_dict(payload: Payload | None) -> dict[str, Any] | None:
    """A memo field the workflow wrote (JSON, as every devenv data converter writes a
    dict), or None when there is none."""
    if payload is None or payload.metadata.get("encoding") != b"json/plain":
        return None
    value = json.loads(payload.data)
    return value if isinstance(value, dict) else None


STATUS_ORDER = {
    status: index for index, status in enumerate(("provisioning", "running", "terminating"))
}


def sort_statuses(rows: list[EnvironmentStatus]) -> list[EnvironmentStatus]:
    """Provisioning, running, terminating, then ended ones; by name within each."""
    return sorted(rows, key=lambda row: (STATUS_ORDER.get(row.status.value, 9), row.name))
