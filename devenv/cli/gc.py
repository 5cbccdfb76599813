"""`devenv gc [--yes] [--json]`: the leak sweeper."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from devenv.cli.output import err, out, run

if TYPE_CHECKING:
    from rich.table import Table

    from devenv.client.gc import GcItem, GcReport

STATUS_STYLE = {"orphan": "red", "live": "green"}


def gc(
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Terminate the orphans listed (each re-checked just before); never a live one.",
        ),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option(
            "--json", help='Print JSON for scripts: {"leftovers", "removed", "warnings"}.'
        ),
    ] = False,
) -> None:
    """List what devenv created that no running environment owns (--yes: terminate it).

    Searches local instance processes, accounts on the ssh hosts devenv used, tagged instances.

    Never touches what a running environment owns, nor anything without devenv's records.
    """
    run(_gc(yes, json_output))


async def _gc(yes: bool, json_output: bool) -> None:
    from devenv.client.async_client import AsyncClient

    client = AsyncClient()
    if json_output:
        report = await client.gc(remove=yes)
        _warn(report)
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    with err.status("Searching for leftovers…"):
        report = await client.gc()
    _warn(report)
    if report.leftovers:
        out.print(_table(report.leftovers))
    out.print(_summary(report))
    orphans = len(report.orphans)
    if not orphans:
        return
    if not yes:
        out.print(f"run `devenv gc --yes` to terminate {_count(orphans, 'orphan')}")
        return
    done = await client.gc(remove=True, report=report, on_removed=_removed_line)
    _warn(done, skip=len(report.warnings))
    out.print(f"Terminated {len(done.removed)} of {_count(orphans, 'orphan')}.")


def _warn(report: GcReport, skip: int = 0) -> None:
    for line in report.warnings[skip:]:
        err.print(f"[yellow]warning:[/] {escape(line)}")


def _removed_line(item: GcItem) -> None:
    out.print(f"terminated {escape(_who(item))}")


def _who(item: GcItem) -> str:
    return f"{item.backend} {item.id} on {item.where} ({item.name or item.workflow_id or '?'})"


def _table(items: list[GcItem]) -> Table:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("BACKEND", "ID", "WHERE", "NAME", "STATUS", "DETAIL"):
        table.add_column(column)
    for item in items:
        detail = f"{item.detail}; {item.reason}" if item.detail else item.reason
        table.add_row(
            escape(item.backend),
            escape(item.id),
            escape(item.where),
            escape(item.name or "-"),
            f"[{STATUS_STYLE.get(item.status, 'default')}]{item.status}[/]",
            escape(detail),
        )
    return table


def _summary(report: GcReport) -> str:
    """What was found, in words that call only orphans leftovers: the backends list every
    instance they created, and those of running environments are not left over."""
    searched = " (some backends could not be searched)" if report.warnings else ""
    live = len(report.live)
    owned = f"{_count(live, 'instance')} of running environments"
    if not report.leftovers:
        return f"No leftovers: nothing devenv created outlives its environment{searched}."
    orphans = len(report.orphans)
    if not orphans:
        return f"No leftovers{searched}: only {owned}, kept; nothing to terminate."
    kept = f"; {owned}, kept" if live else ""
    return f"{_count(orphans, 'orphan')} (owned by no running environment){kept}."


def _count(number: int, word: str) -> str:
    return f"{number} {word}{'' if number == 1 else 's'}"
