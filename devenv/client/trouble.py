"""An environment whose workflow cannot speak for itself: closed from outside devenv
(terminated, failed, timed out), or running with workflow tasks that keep failing.

Neither answers a query (``devenv ps NAME`` printed a traceback), so its row comes from
the memo it last published, corrected by the server's own execution status, and a line
says what is wrong and what ends it.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from devenv.client.closed import CLOSED_OUTSIDE, as_closed, terminate_reason
from devenv.client.lookup import QUERY_TIMEOUT, Handle
from devenv.models.status import MEMO_KEY, EnvironmentStatus

FAILURE_SHOWN = 200
"""Characters of a workflow task's failure message shown."""
RECENT_EVENTS = 50
"""History events read, newest first, to find the last workflow task failure."""


@dataclass(frozen=True)
class Trouble:
    """What ``devenv ps NAME`` shows for a workflow that cannot answer for itself."""

    row: EnvironmentStatus | None
    """Its row from the memo (None: no memo, or nothing wrong)."""
    failing: str | None
    """Why its workflow tasks keep failing, while they do."""


async def inspect(client: Client, handle: Handle, *, always: bool = False) -> Trouble:
    """Whether ``handle``'s workflow was closed from outside or cannot run its tasks
    (``always``: its memo row in any case)."""
    description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    raw = description.raw_description
    failing: str | None = None
    attempt = raw.pending_workflow_task.attempt if raw.HasField("pending_workflow_task") else 0
    if description.status == WorkflowExecutionStatus.RUNNING and attempt > 1:
        last = await _last_task_failure(client, handle.id)
        failing = f"its workflow tasks are failing (attempt {attempt})" + (
            f": {last}" if last else ""
        )
    closed = description.status is not None and int(description.status) in CLOSED_OUTSIDE
    if not closed and failing is None and not always:
        return Trouble(None, None)
    memo = await description.memo_value(MEMO_KEY, None, type_hint=dict)
    if memo is None:
        return Trouble(None, failing)
    row = EnvironmentStatus.model_validate(memo).costed()
    if closed and description.status is not None:
        reason = None
        if description.status == WorkflowExecutionStatus.TERMINATED:
            execution = WorkflowExecution(workflow_id=handle.id, run_id=description.run_id)
            reason = await terminate_reason(client.workflow_service, client.namespace, execution)
        row = as_closed(row, int(description.status), reason)
    return Trouble(row, failing)


async def _last_task_failure(client: Client, workflow_id: str) -> str | None:
    """The message of the newest WorkflowTaskFailed event, on one line, cut short."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id),
        maximum_page_size=RECENT_EVENTS,
    )
    try:
        response = await client.workflow_service.get_workflow_execution_history_reverse(
            request, timeout=QUERY_TIMEOUT
        )
    except RPCError:
        return None
    for event in response.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            message = " ".join(event.workflow_task_failed_event_attributes.failure.message.split())
            if len(message) > FAILURE_SHOWN:
                message = message[: FAILURE_SHOWN - 1] + "…"
            return message or None
    return None
