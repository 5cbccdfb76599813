"""What the workflow sends its activities, and the failure types it acts on.

Every field lands in workflow history, so no secrets. Defined here, at the bottom
of the layers, so that the workflow, the activities and the backends all import
them from one place and no import cycle forms.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from devenv.workflows.state import EnvSpec, InstanceInfo

PROVISIONING_ERROR = "ProvisioningError"
"""Failure type: provisioning that retrying cannot fix; the environment FAILS after cleanup."""
INSTANCE_LOST = "InstanceLost"
"""Failure type: the instance is gone for good; the environment ends as ``instance_lost``."""


class ProvisionInput(BaseModel):
    workflow_id: str
    instance_token: str
    """Idempotency token: a retried provision returns the instance of this token."""
    spec: EnvSpec


class MonitorInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    keepalive_seconds: int


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


class FailsafePolicy(BaseModel):
    """The idle rule a machine enforces on itself once no control plane reads its stream.

    Written to the instance at provision and again whenever a threshold changes, so a
    machine whose control plane is gone still ends, and never earlier than its user
    last asked. Backends without a failsafe ignore it.
    """

    inactivity_seconds: int | None = Field(
        description="End after this long with no user connected; None: never for idleness."
    )
    max_duration_seconds: int | None = Field(
        description="End this long after started_at, even in use; None: no limit."
    )
    started_at: datetime = Field(description="When the environment became ready (UTC).")
    failsafe_after_seconds: int = Field(
        description="Act only after no control plane has read the stream for this long."
    )


class ApplyPolicyInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    policy: FailsafePolicy
