"""Replay every recorded history against the current workflow code.

A change that alters the commands an existing history expects (a new activity,
timer or upsert on an old path, a different order) fails here, before it can
break environments that are running in production. Regenerate the histories
with ``python -m tests.workflow.record_histories`` only for a deliberate,
versioned change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.lease import WorkerLeaseWorkflow
from devenv.workflows.policy import PolicyWorkflow

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
EXPECTED = {
    "idle_timeout",
    "user_activity_and_updates",
    "silent_monitor",
    "max_duration",
    "lowered_threshold",
    "stop",
    "stop_signal",
    "workflow_cancelled",
    "stopped_while_provisioning",
    "cancelled_while_provisioning",
    "provisioning_failure",
    "instance_lost",
    "continue_as_new_run1",
    "continue_as_new_run2",
    "web_ui_run1",
    "web_ui_run2",
    "probe_idle",
    "probe_local",
    "failsafe_policy",
    "warning_extend",
    "extend_capped",
    "scheduled_stop",
    "login_messages",
    "shared_change",
    "watch_moved",
    "worker_lease",
    "coerced_signals",
    "garbage_signals",
    "auto_threshold",
    "idle_budget",
    "suspend_idle_resume",
    "suspend_delete_after",
    "suspend_storage_cost",
    "suspend_idle_warning",
    "suspended_stop",
    "suspend_memo",
    "suspended_continue_as_new_run1",
    "suspended_continue_as_new_run2",
    "org_policy",
    "policy_workflow",
    "group_keep_alive",
    "org_policy_memo",
    "suspend_free_machine",
    "org_policy_suspended",
}


RECORDED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("*.json"))}


def test_every_path_has_a_recorded_history() -> None:
    assert set(RECORDED) >= EXPECTED


@pytest.mark.parametrize("stem", sorted(RECORDED))
async def test_replay(stem: str) -> None:
    history = WorkflowHistory.from_json(f"devenv-replay-{stem}", RECORDED[stem])
    replayer = Replayer(
        workflows=[DevEnvironmentWorkflow, WorkerLeaseWorkflow, PolicyWorkflow],
        data_converter=pydantic_data_converter,
    )
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
