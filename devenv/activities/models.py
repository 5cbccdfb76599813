"""Inputs of the activities; every field lands in workflow history, so no secrets."""

from __future__ import annotations

from pydantic import BaseModel

from devenv.workflows.state import EnvSpec, InstanceInfo

INSTANCE_LOST = "InstanceLost"
"""ApplicationError type the monitor raises when the instance is gone for good."""


class ProvisionInput(BaseModel):
    workflow_id: str
    instance_token: str
    spec: EnvSpec


class MonitorInput(BaseModel):
    workflow_id: str
    instance: InstanceInfo
    keepalive_seconds: int


class ProbeInput(BaseModel):
    """One reading of the instance's user connection count (the ``probe`` activity)."""

    workflow_id: str
    instance: InstanceInfo


class TerminateInput(BaseModel):
    workflow_id: str
    instance_token: str
    spec: EnvSpec
    instance: InstanceInfo | None = None
    """None when provisioning failed before it could report what it created."""
