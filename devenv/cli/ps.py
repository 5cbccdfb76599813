"""`devenv ps`: environments with status, presence, thresholds, deadline and cost so far."""

from __future__ import annotations

from typing import Annotated

import typer

from devenv.cli.output import JSON_OPT, err, out, run


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
) -> None:
    """List environments: status, activity, threshold, deadline and cost so far."""
    if verbose:
        if name is None:
            err.print("[red]error:[/] -v/--verbose shows one environment: devenv ps NAME -v")
            raise typer.Exit(2)
        from devenv.cli.detail import show

        run(show(name, json_output))
        return
    run(_ps(name, all_, json_output))


async def _ps(name: str | None, include_ended: bool, json_output: bool) -> None:
    from devenv.cli.views import ps_table, statuses_json
    from devenv.client.aio import AsyncClient
    from devenv.client.models import EnvironmentStatus

    client = AsyncClient()
    silent: list[str] = []
    rows: list[EnvironmentStatus]
    if name is not None:
        rows = [await (await client.get(name)).status()]
    else:
        listed = await client.list(all=include_ended)
        rows, silent = list(listed), listed.unanswered
    if silent:
        err.print(
            f"[yellow]warning:[/] {len(silent)} environment(s) did not answer and are not "
            f"listed ({', '.join(silent[:5])}{', …' if len(silent) > 5 else ''}); "
            "is a devenv worker running? (`devenv server`)"
        )
    if json_output:
        out.print(statuses_json(rows))
    elif not rows and not silent:
        err.print(
            "No environments" + ("." if include_ended else " running (--all shows ended ones).")
        )
    else:
        out.print(ps_table(rows))
