"""How environments look to people (rich tables) and to scripts (--json)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from devenv.client.models import EnvironmentStatus, statuses_json
from devenv.workflows.durations import format_duration
from devenv.workflows.state import Status

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["describe_deadline", "money", "ps_table", "statuses_json"]


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


def money(usd: float | None) -> str:
    """'$12.41' / '$0.00' / '-' (price unknown)."""
    return "-" if usd is None else f"${usd:,.2f}"


STATUS_STYLE = {
    Status.PROVISIONING: "yellow",
    Status.RUNNING: "green",
    Status.TERMINATING: "yellow",
    Status.TERMINATED: "dim",
    Status.FAILED: "red",
}


def ps_table(rows: list[EnvironmentStatus]) -> Table:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("NAME", "STATUS", "ACTIVITY", "INACTIVITY", "MAX", "DEADLINE", "COST", "REASON"):
        table.add_column(column, justify="right" if column == "COST" else "left")
    for row in rows:
        if row.activity == "active":
            present = []
            if row.connections or not row.jobs:
                present.append(f"{row.connections} connection{'s' if row.connections != 1 else ''}")
            if row.jobs:
                present.append(f"jobs: {row.jobs}")
            activity = f"active ({', '.join(present)})"
        elif row.activity == "idle":
            activity = f"idle since {relative(row.idle_since).removesuffix(' ago')}"
        else:
            activity = "-"
        shown = row.status.value
        if row.warned and row.deadline is not None:
            left = relative(row.deadline)
            shown = f"[bold yellow]terminating {'now' if left == 'now' else left}[/]"
        else:
            shown = f"[{STATUS_STYLE[row.status]}]{shown}[/]"
        table.add_row(
            row.name,
            shown,
            activity,
            format_duration(row.inactivity_duration),
            format_duration(row.max_duration),
            relative(row.deadline),
            money(row.cost),
            row.termination_reason or "-",
        )
    return table


def describe_deadline(deadline: datetime | None, reason: str | None) -> str:
    if deadline is None:
        return "no deadline (a user is connected, or every rule is off)"
    why = f" ({reason})" if reason else ""
    return f"{clock(deadline)}, {relative(deadline)}{why}"
