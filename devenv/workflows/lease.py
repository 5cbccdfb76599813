"""A worker process's lease on its watch queue: how a dead worker's monitors move.

The monitors of ssh and aws environments run on the watch queue of one worker process
and send no periodic heartbeat (10,000 of them cost the server half a core in
heartbeats alone). What proves that process alive is one activity per process: this
lease, heartbeating on the process's own queue. When it lapses (the process died) or
fails (it shut down), the ``rehome`` activity tells every environment watched from
that queue to start its monitor again, on whichever live worker runs its next task.
Deadlines never depend on this: the timer fires and the probe asks the instance.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from devenv.models.messages import LeaseInput
    from devenv.models.names import Activity
    from devenv.workflows.display import failure_message
    from devenv.workflows.policies import (
        LEASE_HEARTBEAT,
        LEASE_RETRY,
        LEASE_TERM,
        REHOME_RETRY,
        REHOME_TIMEOUT,
    )

LEASE_WORKFLOW_TYPE = "DevenvWorkerLease"


def lease_workflow_id(queue: str) -> str:
    """One lease per watch queue; ``:`` keeps it apart from every environment's id."""
    return f"devenv-lease:{queue}"


@workflow.defn(name=LEASE_WORKFLOW_TYPE)
class WorkerLeaseWorkflow:
    """Hold the lease while the worker lives; when it ends, re-home the monitors."""

    @workflow.run
    async def run(self, lease: LeaseInput) -> str:
        try:
            await workflow.execute_activity(
                Activity.HOLD_LEASE,
                lease,
                task_queue=lease.queue,
                start_to_close_timeout=LEASE_TERM + LEASE_HEARTBEAT,
                schedule_to_start_timeout=LEASE_HEARTBEAT,
                heartbeat_timeout=LEASE_HEARTBEAT,
                retry_policy=LEASE_RETRY,
                summary=f"lease of {lease.queue}",
            )
        except ActivityError as err:
            workflow.logger.info("lease of %s ended: %s", lease.queue, failure_message(err))
            moved: int = await workflow.execute_activity(
                Activity.REHOME,
                lease,
                result_type=int,
                start_to_close_timeout=REHOME_TIMEOUT,
                heartbeat_timeout=LEASE_HEARTBEAT,
                retry_policy=REHOME_RETRY,
                summary=f"re-home the monitors of {lease.queue}",
            )
            return f"worker of {lease.queue} gone; {moved} monitor(s) re-homed"
        workflow.continue_as_new(lease)
