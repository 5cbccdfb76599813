"""What the workflow sends its activities, and the failure types it acts on.

Every field lands in workflow history, so no secrets. Defined here, at the bottom
of the layers, so that the workflow, the activities and the backends all import
them from one place and no import cycle forms.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from devenv.models.state import EnvSpec, InstanceInfo, LoginSettings
from devenv.models.state import FailsafePolicy as FailsafePolicy

PROVISIONING_ERROR = "ProvisioningError"
"""Failure type: provisioning that retrying cannot fix; the environment FAILS after cleanup."""
INSTANCE_LOST = "InstanceLost"
"""Failure type: the instance is gone for good; the environment ends as ``instance_lost``."""
NOT_SUSPENDABLE = "NotSuspendable"
"""Failure type: the backend cannot suspend; the environment stays as it was."""


class ProvisionInput(BaseModel):
    workflow_id: str
    instance_token: str
    """Idempotency token: a retried provision returns the instance of this token."""
    spec: EnvSpec


class MonitorInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    keepalive_seconds: int
    run_id: str | None = None
    """The run it reports to (None in histories recorded before): a monitor left behind
    by a run that continued as new stops at its next report instead of doubling."""


class LeaseInput(BaseModel):
    """A worker process's lease on its own watch queue (``WorkerLeaseWorkflow``)."""

    queue: str
    """The queue only that process polls; its environments' monitors run there."""


class WatcherGone(BaseModel):
    """To an environment: the worker polling ``queue`` lost its lease (died); if the
    monitor runs there, start it again elsewhere."""

    queue: str


class ProbeInput(BaseModel):
    """One reading of who is present on the instance (the ``probe`` activity)."""

    workflow_id: str
    instance: InstanceInfo


class TerminateInput(BaseModel):
    workflow_id: str
    instance_token: str
    spec: EnvSpec
    instance: InstanceInfo | None = None
    """None when provisioning failed before it could report what it created."""
    purge_workspace: bool = False
    """Delete the workspace too (``devenv stop --purge``); kept by default."""


class SuspendInput(BaseModel):
    """Suspend (or resume) the instance of ``instance_token``: keep its disk, end (or
    restart) everything that runs or bills by the hour."""

    workflow_id: str
    instance_token: str
    spec: EnvSpec
    instance: InstanceInfo


ResumeInput = SuspendInput


class ApplyPolicyInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    policy: FailsafePolicy


class ApplyLoginInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    login: LoginSettings


class TellInput(BaseModel):
    """A message for every terminal open on the instance (like ``wall``)."""

    workflow_id: str
    instance: InstanceInfo
    text: str


class Notice(BaseModel):
    """A warning for the webhook; ``webhook`` names the URL kept by the worker (not the URL)."""

    workflow_id: str
    webhook: str
    environment: str
    owner: str | None
    reason: str
    """Why: the rule of the coming termination, ``changed`` (a change by a member), or
    ``policy`` (an idle budget spent tightened the thresholds)."""
    deadline: datetime | None
    extend_command: str
    text: str
    by: str | None = None
    """Who made the change (``changed`` notices of shared environments)."""
