"""How environments look to people (rich) and to scripts (--json)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, TypeAdapter
from rich.table import Table

from devenv.workflows.durations import format_duration
from devenv.workflows.state import EnvState, Status, workflow_id_for


class EnvRow(BaseModel):
    """One environment in `devenv ps --json`; the keys scripts may rely on."""

    name: str
    workflow_id: str
    backend: str
    status: Status
    activity: Literal["active", "idle"] | None
    connections: int
    inactivity_duration: int | None
    max_duration: int | None
    idle_since: datetime | None
    deadline: datetime | None
    termination_reason: str | None

    @classmethod
    def from_state(cls, state: EnvState) -> EnvRow:
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
        )


ROWS = TypeAdapter(list[EnvRow])


def rows_json(rows: list[EnvRow]) -> str:
    return ROWS.dump_json(rows, indent=2).decode()


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """'in 1h59m' / '3m ago' / '-'."""
    if moment is None:
        return "-"
    now = now or datetime.now(UTC)
    seconds = (moment - now).total_seconds()
    if abs(seconds) < 1:
        return "now"
    text = format_duration(abs(seconds))
    return f"in {text}" if seconds > 0 else f"{text} ago"


def clock(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


STATUS_STYLE = {
    Status.PROVISIONING: "yellow",
    Status.RUNNING: "green",
    Status.TERMINATING: "yellow",
    Status.TERMINATED: "dim",
    Status.FAILED: "red",
}


def ps_table(rows: list[EnvRow]) -> Table:
    table = Table(box=None, header_style="bold")
    for column in ("NAME", "STATUS", "ACTIVITY", "INACTIVITY", "MAX", "DEADLINE", "REASON"):
        table.add_column(column)
    for row in rows:
        if row.activity == "active":
            activity = f"active ({row.connections} connection{'s' if row.connections != 1 else ''})"
        elif row.activity == "idle":
            activity = f"idle since {relative(row.idle_since).removesuffix(' ago')}"
        else:
            activity = "-"
        table.add_row(
            row.name,
            f"[{STATUS_STYLE[row.status]}]{row.status.value}[/]",
            activity,
            format_duration(row.inactivity_duration),
            format_duration(row.max_duration),
            relative(row.deadline),
            row.termination_reason or "-",
        )
    return table


def describe_deadline(deadline: datetime | None, reason: str | None) -> str:
    if deadline is None:
        return "no deadline (a user is connected, or every rule is off)"
    why = f" ({reason})" if reason else ""
    return f"{clock(deadline)}, {relative(deadline)}{why}"
