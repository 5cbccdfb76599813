"""Finding environments on the server and reading their state."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from devenv.client.refs import candidate_ids as candidate_ids  # its old home
from devenv.errors import (
    EnvironmentNotFoundError,
    NotAnsweringError,
    NoWorkerError,
    UserError,
)
from devenv.models.names import Query
from devenv.models.state import WORKFLOW_TYPE, EnvState

QUERY_TIMEOUT = timedelta(seconds=10)
UPDATE_TIMEOUT = timedelta(seconds=20)
"""How long `signal` and `stop` wait for the workflow to answer a change."""
WORKER_GRACE = 5.0
"""Seconds a change waits for a worker to poll before it is refused as having none."""
Handle = WorkflowHandle[Any, EnvState]


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
    returns; better to say so and change nothing. Only after ``WORKER_GRACE``: a worker
    whose Temporal server just restarted polls again within seconds, and until it does
    the server lists no poller.
    """
    description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    if description.status != WorkflowExecutionStatus.RUNNING:
        return  # ended: the update itself answers "already completed"
    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=description.task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    loop = asyncio.get_running_loop()
    give_up = loop.time() + WORKER_GRACE
    while True:
        response = await client.workflow_service.describe_task_queue(request, timeout=QUERY_TIMEOUT)
        if response.pollers:
            return
        if loop.time() >= give_up:
            raise NoWorkerError(
                f"{handle.id}: no devenv worker is running, so nothing can apply the change; "
                "start one with `devenv server` (nothing was changed)"
            )
        await asyncio.sleep(0.25)


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
            state = await _query(handle)
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
        if "failed state" in err.message:  # "Workflow Task in failed state"
            name = handle.id.removeprefix("devenv-")
            if description.status != WorkflowExecutionStatus.RUNNING:
                ended = description.status.name.lower() if description.status else "closed"
                raise NotAnsweringError(
                    f"environment {handle.id} has ended ({ended}), and the worker's code "
                    "cannot read its state from its history; `devenv ps --all` lists it"
                ) from None
            raise NotAnsweringError(
                f"environment {handle.id} cannot answer: its workflow tasks are failing; "
                f"`devenv ps {name}` says why, `devenv stop --force {name}` ends it"
            ) from None
        raise
    if description.status is None:
        return state
    from devenv.client.closed import CLOSED_OUTSIDE, state_as_closed, terminate_reason

    if int(description.status) not in CLOSED_OUTSIDE or state.status.ended:
        return state
    # Closed from outside devenv (temporal workflow terminate...): never shown alive.
    from temporalio.api.common.v1 import WorkflowExecution

    reason = None
    if description.status == WorkflowExecutionStatus.TERMINATED:
        execution = WorkflowExecution(workflow_id=handle.id, run_id=description.run_id)
        client = handle._client  # the SDK's handle keeps its client
        reason = await terminate_reason(client.workflow_service, client.namespace, execution)
    return state_as_closed(state, int(description.status), description.close_time, reason)


async def _query(handle: Handle) -> EnvState:
    state = await handle.query(Query.STATUS, result_type=EnvState, rpc_timeout=QUERY_TIMEOUT)
    return cast(EnvState, state)
