"""`devenv suspend NAME` and `devenv resume NAME`: keep the workspace, stop the bill."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run


def suspend(
    name: NAME_ARG,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is suspended.")] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Suspend an environment; `devenv resume` brings it back.

    Every process ends; the workspace (and a machine's disk) is kept until `devenv
    resume`, `devenv stop` or its `delete_after`."""
    run(_suspend(name, wait, json_output))


def resume(name: NAME_ARG, json_output: JSON_OPT = False) -> None:
    """Resume a suspended environment; returns once it accepts SSH, like `start`."""
    run(_resume(name, json_output))


async def _suspend(name: str, wait: bool, json_output: bool) -> None:
    from devenv.cli.views import statuses_json
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    env = await AsyncClient().get(name)
    if not wait:
        status = await env.suspend()
        if json_output:
            out.print(statuses_json([status]))
            return
        err.print(f"Suspending {env.name}; `devenv ps {env.name}` shows when it is suspended.")
        return
    with err.status(f"Suspending {env.name}…") as spinner:
        status = await env.suspend(
            wait=True, progress=lambda message, _transient: spinner.update(message)
        )
    if json_output:
        out.print(statuses_json([status]))
        return
    out.print(f"{env.name}: suspended; workspace kept. {_kept(status.deadline)}")
    out.print(f"  Resume:     devenv resume {env.name}")


async def _resume(name: str, json_output: bool) -> None:
    from devenv.cli import interrupt
    from devenv.cli.views import statuses_json
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    env = await AsyncClient().get(name)
    with (
        err.status(f"Resuming {env.name}…") as spinner,
        interrupt.noting(f"{env.name} is resuming and goes on; `devenv ps {env.name}` shows it"),
    ):
        status = await env.resume(progress=lambda message, _transient: spinner.update(message))
    if json_output:
        out.print(statuses_json([status]))
        return
    entry = env.ssh_entry
    assert entry is not None
    out.print(f"[green]✓[/] Environment [bold]{env.name}[/] is running again")
    out.print(f"  Connect:    ssh {env.name}   ·   devenv ssh {env.name}")
    if entry.folder:
        out.print(f"  Workspace:  {entry.folder}")


def _kept(delete_at: datetime | None) -> str:
    from devenv.cli.views import clock, relative

    if delete_at is not None:
        return f"Deleted at {clock(delete_at)} ({relative(delete_at)}) unless resumed."
    return "Kept until `devenv stop`."
