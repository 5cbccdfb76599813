"""Workflows closed from outside devenv (``temporal workflow terminate``, the Web UI,
a failure): how their rows and states read once closed, so none is shown alive.

Shared by listing (rows from the visibility store) and lookup (one state), which
import it; it imports neither.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest

from devenv.models.state import EnvState, Status
from devenv.models.status import EnvironmentStatus

HISTORY_TIMEOUT = timedelta(seconds=30)
"""One short read of a closed workflow's history (its last event)."""

_CLOSED = WorkflowExecutionStatus
CLOSED_OUTSIDE: dict[int, tuple[Status, str]] = {
    _CLOSED.WORKFLOW_EXECUTION_STATUS_TERMINATED: (Status.TERMINATED, "terminated outside devenv"),
    _CLOSED.WORKFLOW_EXECUTION_STATUS_FAILED: (Status.FAILED, "workflow failed"),
    _CLOSED.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: (Status.FAILED, "workflow timed out"),
    _CLOSED.WORKFLOW_EXECUTION_STATUS_CANCELED: (Status.TERMINATED, "workflow canceled"),
}
"""How a workflow closed without finishing its own end (``temporal workflow terminate``,
the Web UI's Terminate, a failure): its memo still shows the last state it published."""
FORCE_REASON = "devenv stop --force: the instance was ended outside the workflow"
"""The reason ``devenv stop --force`` terminates a workflow with, so that rows say so."""
FORCED_WORDS = "stopped with devenv stop --force"


def _closed(execution_status: int, terminated_for: str | None) -> tuple[Status, str] | None:
    closed = CLOSED_OUTSIDE.get(execution_status)
    if closed is not None and terminated_for == FORCE_REASON:
        return Status.TERMINATED, FORCED_WORDS
    return closed


async def terminate_reason(
    service: Any, namespace: str, execution: WorkflowExecution
) -> str | None:
    """The reason a terminated workflow was terminated with (its last history event);
    None when it cannot be read. ``service``: a ``WorkflowService``."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=namespace, execution=execution, maximum_page_size=1
    )
    try:
        response = await service.get_workflow_execution_history_reverse(
            request, timeout=HISTORY_TIMEOUT
        )
    except Exception:  # a row is still listed; only its words are less precise
        return None
    for event in response.history.events:
        if event.HasField("workflow_execution_terminated_event_attributes"):
            return str(event.workflow_execution_terminated_event_attributes.reason)
    return None


def as_closed(
    row: EnvironmentStatus, execution_status: int, terminated_for: str | None = None
) -> EnvironmentStatus:
    """``row`` as it is: a workflow that was closed from outside is never shown alive.

    Its instance may still run; ``devenv gc`` lists it as an orphan and ends it.
    ``terminated_for``: the reason it was terminated with, if known."""
    closed = _closed(execution_status, terminated_for)
    if closed is None or row.status.ended:
        return row
    status, words = closed
    reason = f"{row.termination_reason}; then {words}" if row.termination_reason else words
    return row.model_copy(
        update={
            "status": status,
            "activity": None,
            "connections": 0,
            "jobs": 0,
            "idle_since": None,
            "deadline": None,
            "warned": False,
            "termination_reason": reason,
        }
    )


def state_as_closed(
    state: EnvState,
    execution_status: int,
    closed_at: datetime | None,
    terminated_for: str | None = None,
) -> EnvState:
    """``state`` (the last its workflow held) as it is once the workflow was closed from
    outside: ended at the close, with an event saying how; its instance may still run."""
    closed = _closed(execution_status, terminated_for)
    if closed is None or state.status.ended:
        return state
    from devenv.models.state import EnvEvent

    status, words = closed
    fixed = state.model_copy(deep=True)
    fixed.status = status
    fixed.error = fixed.error or words
    fixed.ended_at = closed_at
    fixed.deadline = fixed.deadline_reason = None
    fixed.connections = fixed.jobs = 0
    fixed.sessions = []
    if closed_at is not None:
        after = "" if words == FORCED_WORDS else ": its instance may still run; `devenv gc` ends it"
        fixed.events.append(EnvEvent(at=closed_at, message=f"{words}{after}"))
    return fixed
