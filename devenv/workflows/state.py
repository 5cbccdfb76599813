"""The whole state of one environment.

It is the workflow's input, so continue-as-new carries it across runs, and the
``status`` query returns it as is: one model for history, CLI and Web UI.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from devenv.workflows.config import Resources

WORKFLOW_TYPE = "DevEnvironment"
WORKFLOW_ID_PREFIX = "devenv-"
MAX_EVENTS = 200


def workflow_id_for(name: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{name}"


class Status(StrEnum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (Status.TERMINATED, Status.FAILED)


class TerminationReason(StrEnum):
    INACTIVITY_DURATION_EXCEEDED = "inactivity_duration_exceeded"
    MAX_DURATION_EXCEEDED = "max_duration_exceeded"
    STOPPED_BY_USER = "stopped_by_user"
    INSTANCE_LOST = "instance_lost"
    PROVISIONING_FAILED = "provisioning_failed"


class EnvSpec(BaseModel):
    """What the user asked for, resolved by the CLI (name chosen, key read)."""

    name: str
    backend: str = "local"
    ide: str = "none"
    inactivity_duration: int | None = None
    max_duration: int | None = None
    min_connection_duration: int = 0
    resources: Resources = Resources()
    user_public_key: str
    """OpenSSH public key line; the only key the instance accepts from users."""
    host_task_queue: str | None = None
    """Queue of the worker that owns a local instance; None: the shared queue."""


class Tuning(BaseModel):
    """Knobs of the workflow itself; tests lower them, users normally never see them."""

    keepalive_seconds: int = 60
    """How often the monitor re-reports while users are connected."""
    keepalive_bound_seconds: int = 300
    """A monitor silent this long while users are connected counts as idle since its last report."""
    max_history_events: int = 10_000
    """Continue-as-new past this many events even if the server has not suggested it."""
    search_attributes: bool = True
    """Off on the time-skipping test server, which does not support them."""
    monitor: bool = True
    """Off only in time-skipping tests: the test server stops its clock while any activity
    is outstanding, so those tests play the monitor by signalling ``record_activity``."""


class InstanceInfo(BaseModel):
    """Where the instance is and how to reach it; no secrets, it lands in history."""

    instance_id: str
    backend: str
    host: str
    port: int
    username: str
    host_public_key: str
    """Pinned in known_hosts; never trust on first use."""
    task_queue: str
    """Queue whose worker can monitor and terminate this instance."""
    workspace: str | None = None
    pid: int | None = None


class ActivityReport(BaseModel):
    """One line of the ``devenv-activity`` stream, as the monitor forwards it."""

    connections: int = Field(ge=0)
    last_change: datetime
    keepalive: bool = False


class EnvEvent(BaseModel):
    """One line of ``devenv logs``."""

    at: datetime
    message: str


class EnvState(BaseModel):
    spec: EnvSpec
    tuning: Tuning = Tuning()
    status: Status = Status.PROVISIONING
    instance_token: str | None = None
    """Idempotency token for provision/terminate, fixed at the first run."""
    instance: InstanceInfo | None = None
    created_at: datetime | None = None
    ready_at: datetime | None = None
    ended_at: datetime | None = None
    connections: int = 0
    idle_since: datetime | None = None
    last_report_at: datetime | None = None
    deadline: datetime | None = None
    deadline_reason: TerminationReason | None = None
    termination_reason: TerminationReason | None = None
    error: str | None = None
    runs: int = 1
    events: list[EnvEvent] = Field(default_factory=list)

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.spec.name)


class DeadlineAnswer(BaseModel):
    """What ``set_inactivity`` / ``set_max_duration`` answer to the CLI."""

    status: Status
    inactivity_duration: int | None
    max_duration: int | None
    deadline: datetime | None
    deadline_reason: TerminationReason | None
    terminating: bool
