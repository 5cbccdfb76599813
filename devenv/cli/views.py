"""How environments look to people (rich tables) and to scripts (--json)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from devenv.models.durations import format_duration
from devenv.models.state import Status
from devenv.models.status import EnvironmentStatus, statuses_json
from devenv.models.suspension_cost import money

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.table import Table
    from rich.text import Text

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


def cost_cell(row: EnvironmentStatus) -> str:
    """``$4.02``; while suspended with a storage price: ``$4.02 + $0.05 storage`` (running
    cost, then what the kept volumes cost so far)."""
    if row.suspended_now and row.storage_price_per_hour is not None:
        return f"{money(row.cost)} + {money(row.storage_cost)} storage"
    return money(row.cost)


STATUS_STYLE = {
    Status.PROVISIONING: "yellow",
    Status.RUNNING: "green",
    Status.SUSPENDING: "cyan",
    Status.SUSPENDED: "cyan",
    Status.RESUMING: "cyan",
    Status.TERMINATING: "yellow",
    Status.TERMINATED: "dim",
    Status.FAILED: "red",
}


PS_COLUMNS = ("NAME", "STATUS", "ACTIVITY", "INACTIVITY", "MAX", "DEADLINE", "COST", "REASON")


def ps_cells(row: EnvironmentStatus) -> tuple[list[str], str]:
    """One row of ``devenv ps`` as plain text, and the style of its STATUS cell."""
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
    shown, style = row.status.value, STATUS_STYLE[row.status]
    if row.status == Status.SUSPENDED:
        shown = suspended_words(row)
        if row.warned:
            style = "bold yellow"
    elif row.warned and row.deadline is not None:
        left = relative(row.deadline)
        shown, style = f"terminating {'now' if left == 'now' else left}", "bold yellow"
    cells = [
        row.name,
        shown,
        activity,
        ("auto " if row.inactivity_auto else "") + format_duration(row.inactivity_duration),
        format_duration(row.max_duration),
        relative(row.deadline),
        cost_cell(row),
        row.termination_reason or row.suspend_reason or "-",
    ]
    return cells, style


def suspended_words(row: EnvironmentStatus) -> str:
    """``suspended, deleted in 6d23h`` (``delete_after``), or ``suspended, kept``."""
    if row.deadline is None:
        return "suspended, kept"
    left = relative(row.deadline)
    return f"suspended, deleted {'now' if left == 'now' else left}"


def ps_table(rows: list[EnvironmentStatus]) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold")
    for column in PS_COLUMNS:
        table.add_column(column, justify="right" if column == "COST" else "left")
    for row in rows:
        cells, style = ps_cells(row)
        table.add_row(*cells[:1], Text(cells[1], style=style), *cells[2:])
    return table


class PsLines:
    """The ``ps`` table a page at a time, for listings too long to wait for (and too long
    for rich's Table, ~0.7 ms a row): laid out as ``ps_table`` is, with the widths of the
    first page, each column widened when a later row needs it."""

    def __init__(self) -> None:
        self.widths = [len(column) for column in PS_COLUMNS]
        self.started = False

    def page(self, rows: list[EnvironmentStatus]) -> Text:
        from rich.text import Text

        laid_out = [ps_cells(row) for row in rows]
        for cells, _ in laid_out:
            self.widths = [max(w, len(c)) for w, c in zip(self.widths, cells, strict=True)]
        text = Text()
        if not self.started:
            self.started = True
            text.append(self._line(list(PS_COLUMNS)), style="bold")
            text.append("\n")
        for cells, style in laid_out:
            line = self._line(cells)
            at = 1 + self.widths[0] + 2
            text.append(line[:at])
            text.append(line[at : at + self.widths[1]], style=style)
            text.append(line[at + self.widths[1] :])
            text.append("\n")
        text.rstrip()
        return text

    def _line(self, cells: list[str]) -> str:
        padded = [
            cell.rjust(width) if column == "COST" else cell.ljust(width)
            for column, cell, width in zip(PS_COLUMNS, cells, self.widths, strict=True)
        ]
        return (" " + "  ".join(padded)).rstrip()


class JsonRows:
    """``ps --json`` written as the pages come: the same text as ``statuses_json`` of all
    the rows, without holding them (or rendering them through rich)."""

    def __init__(self, write: Callable[[str], object]) -> None:
        self.write = write
        self.count = 0

    def add(self, rows: list[EnvironmentStatus]) -> None:
        for row in rows:
            item = row.model_dump_json(indent=2).replace("\n", "\n  ")
            self.write(("[\n  " if self.count == 0 else ",\n  ") + item)
            self.count += 1

    def close(self) -> None:
        self.write("[]\n" if self.count == 0 else "\n]\n")


def describe_deadline(deadline: datetime | None, reason: str | None) -> str:
    if deadline is None:
        return "no deadline (a user is connected, or every rule is off)"
    why = f" ({reason})" if reason else ""
    return f"{clock(deadline)}, {relative(deadline)}{why}"
