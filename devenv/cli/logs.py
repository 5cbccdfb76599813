"""`devenv logs NAME [--job ID]`: what happened to an environment, in plain words; or
what one of its jobs wrote."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run


def logs(
    name: NAME_ARG,
    json_output: JSON_OPT = False,
    job: Annotated[
        str | None,
        typer.Option("--job", help="Print what this job wrote instead (see `devenv jobs`)."),
    ] = None,
    init: Annotated[
        bool,
        typer.Option("--init", help="Print what the `init` commands of its first start wrote."),
    ] = False,
) -> None:
    """The environment's history of events, in plain words.

    --job shows a job's output instead, --init the output of its init commands."""
    if init:
        data = run(_init_log(name))
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    if job is not None:
        data = run(_job_log(name, job))
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    run(_logs(name, json_output))


async def _job_log(name: str, job: str) -> bytes:
    from devenv.client.async_client import AsyncClient
    from devenv.client.jobs import check_job_id, job_log
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    check_job_id(job)
    return await job_log(await AsyncClient().get(name), job)


async def _init_log(name: str) -> bytes:
    from devenv.client.async_client import AsyncClient
    from devenv.client.init_log import init_log
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    return await init_log(await AsyncClient().get(name))


async def _logs(name: str, json_output: bool) -> None:
    from rich.markup import escape

    from devenv.cli.views import clock
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    events = await (await AsyncClient().get(name)).events()
    if json_output:
        out.print_json(data=[event.model_dump(mode="json") for event in events])
        return
    for event in events:
        out.print(f"[dim]{clock(event.at)}[/]  {escape(event.message)}")
    if not events:
        err.print("No events yet.")
