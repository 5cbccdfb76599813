"""`devenv ps`: environments with status, presence, thresholds, deadline and cost so far."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import typer

from devenv.cli.output import JSON_OPT, err, out, run

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncClient
    from devenv.models.status import EnvironmentPage, EnvironmentStatus


def ps(
    name: Annotated[str | None, typer.Argument(help="Only this environment.")] = None,
    all_: Annotated[bool, typer.Option("--all", "-a", help="Include ended environments.")] = False,
    json_output: JSON_OPT = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Why NAME is still up: who is connected, jobs, the deadline's rule, the "
            "warning and the last events (--json: the whole state).",
        ),
    ] = False,
    group: Annotated[
        str | None, typer.Option("--group", "-g", help="Only the environments of this group.")
    ] = None,
) -> None:
    """List environments: status, activity, threshold, deadline and cost so far."""
    if verbose:
        if name is None:
            err.print("[red]error:[/] -v/--verbose shows one environment: devenv ps NAME -v")
            raise typer.Exit(2)
        from devenv.cli.detail import show

        run(show(name, json_output))
        return
    run(_ps(name, all_, json_output, group))


async def _ps(
    name: str | None, include_ended: bool, json_output: bool, group: str | None = None
) -> None:
    """Print the listing as its pages arrive: one page (up to 100 environments) as a
    table, a fleet a page at a time, each page sorted, so the first rows show at once."""
    from devenv.cli.views import JsonRows, PsLines, ps_table
    from devenv.client.async_client import AsyncClient

    client = AsyncClient()
    silent: list[str] = []
    listed = 0
    json_rows = JsonRows(sys.stdout.write) if json_output else None
    lines: PsLines | None = None
    if name is not None:
        pages = _one(await _named(client, name))
    else:
        pages = client.list_pages(all=include_ended, group=group)
    async for page in pages:
        silent += page.unanswered
        listed += len(page)
        if json_rows is not None:
            json_rows.add(page)
            sys.stdout.flush()  # a pipe shows each page as it comes, as rich's prints do
        elif lines is None and page.last:
            if page:
                out.print(ps_table(page))
        else:
            lines = lines or PsLines()
            if page:
                out.print(lines.page(page))
    if json_rows is not None:
        json_rows.close()
    if silent:
        err.print(
            f"[yellow]warning:[/] {len(silent)} environment(s) did not answer and are not "
            f"listed ({', '.join(silent[:5])}{', …' if len(silent) > 5 else ''}); "
            "is a devenv worker running? (`devenv server`)"
        )
    elif not listed and not json_output:
        err.print(
            "No environments"
            + (f" in group {group}" if group is not None else "")
            + ("." if include_ended else " running (--all shows ended ones).")
        )


async def _named(client: AsyncClient, name: str) -> EnvironmentStatus:
    """``name``'s row: asked of its workflow, or, when the workflow cannot answer (closed
    from outside devenv, or its tasks failing), read from its memo and corrected, with a
    warning saying what ends it."""
    from rich.markup import escape

    from devenv.client.trouble import inspect

    env = await client.get(name)  # an unknown name, a server down: one line
    handle = env.temporal_handle()  # the one it resolved
    if handle is None:  # remote mode: the server reads what it can
        return await env.status()
    trouble = await inspect(await client.temporal(), handle)
    if trouble.failing is not None:
        err.print(
            f"[yellow]warning:[/] {handle.id}: {escape(trouble.failing)}; it cannot act on "
            f"its deadline or a stop: `devenv stop --force {escape(name)}` ends its instance "
            "and its workflow"
        )
    if trouble.row is not None:
        return trouble.row
    return await env.status()


async def _one(status: EnvironmentStatus) -> AsyncIterator[EnvironmentPage]:
    from devenv.models.status import EnvironmentPage

    yield EnvironmentPage([status], [], last=True)
