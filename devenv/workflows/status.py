"""One environment as every client sees it: the keys of ``devenv ps --json`` exactly.

Defined beside the workflow's state (pure data, no I/O) because the workflow itself
publishes it in its memo, so that listing reads the server's visibility store and
asks no workflow anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter

from devenv.workflows.state import EnvState, Status, workflow_id_for


class EnvironmentStatus(BaseModel):
    """One environment as ``devenv ps --json``, ``devenv.list()`` and ``env.status()`` show it."""

    name: str = Field(description="The environment's name.")
    workflow_id: str = Field(description="Its Temporal workflow id, `devenv-NAME`.")
    backend: str = Field(description="Where it runs: local, ssh, aws...")
    status: Status = Field(description="provisioning, running, terminating, terminated, failed.")
    activity: Literal["active", "idle"] | None = Field(
        description="While running: active (someone is connected) or idle; null otherwise."
    )
    connections: int = Field(description="User connections counted now.")
    inactivity_duration: int | None = Field(description="Idle threshold in seconds; null: off.")
    max_duration: int | None = Field(description="Hard cap from start in seconds; null: off.")
    idle_since: datetime | None = Field(description="While idle: since when (UTC).")
    deadline: datetime | None = Field(
        description="When it will be terminated (UTC), if nothing changes."
    )
    termination_reason: str | None = Field(description="Why it ended, once it is ending.")
    owner: str | None = Field(
        default=None,
        description="Who started it (an HTTP API user, or the local OS user); absent for "
        "environments started before owners were recorded.",
        # Absent rather than null: the memo row of an environment started before owners
        # existed stays byte-identical, so its workflow never upserts a memo its
        # recorded history lacks (replay stays deterministic).
        exclude_if=lambda owner: owner is None,
    )

    @classmethod
    def from_state(cls, state: EnvState) -> EnvironmentStatus:
        running = state.status == Status.RUNNING
        return cls(
            name=state.spec.name,
            workflow_id=workflow_id_for(state.spec.name),
            backend=state.spec.backend,
            status=state.status,
            activity=("active" if state.connections else "idle") if running else None,
            connections=state.connections,
            inactivity_duration=state.spec.inactivity_duration,
            max_duration=state.spec.max_duration,
            idle_since=state.idle_since if running and not state.connections else None,
            deadline=state.deadline if not state.status.ended else None,
            termination_reason=state.termination_reason,
            owner=state.spec.owner,
        )


class EnvironmentList(list[EnvironmentStatus]):
    """``devenv.list()``: the environments that answered, and the ids of those that did not
    (no worker running, for instance), so a script can tell 'none' from 'not known'."""

    def __init__(self, items: list[EnvironmentStatus], unanswered: list[str]) -> None:
        super().__init__(items)
        self.unanswered = unanswered


STATUS_LIST = TypeAdapter(list[EnvironmentStatus])


def statuses_json(rows: list[EnvironmentStatus]) -> str:
    return STATUS_LIST.dump_json(rows, indent=2).decode()
