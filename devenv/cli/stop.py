"""`devenv stop NAME`: terminate an environment now (its workspace is kept)."""

from __future__ import annotations

from typing import Annotated

import typer

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run


def stop(
    name: NAME_ARG,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is terminated.")] = False,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete the workspace too (kept by default).")
    ] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Terminate an environment now (its workspace is kept unless --purge)."""
    run(_stop(name, wait, purge, json_output))


async def _stop(name: str, wait: bool, purge: bool, json_output: bool) -> None:
    from devenv.cli.views import statuses_json
    from devenv.client.aio import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    env = await AsyncClient().get(name)
    if not wait:
        await env.stop(purge=purge)
        err.print(f"Stopping {env.workflow_id}; `devenv ps --all` shows when it has ended.")
        return
    with err.status(f"Terminating {env.workflow_id}…"):
        status = await env.stop(wait=True, purge=purge)
    if json_output:
        out.print(statuses_json([status]))
    else:
        out.print(f"{env.workflow_id}: {status.status.value} ({status.termination_reason})")
