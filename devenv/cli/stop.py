"""`devenv stop NAME`: terminate an environment now (its workspace is kept)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncClient
    from devenv.client.lookup import Handle


def stop(
    name: NAME_ARG,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it is terminated.")] = False,
    purge: Annotated[
        bool, typer.Option("--purge", help="Delete the workspace too (kept by default).")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="For a workflow that cannot act (its tasks failing, its cleanup stuck): end "
            "the instance directly, then terminate the workflow; what cannot be ended is "
            "left for `devenv gc`.",
        ),
    ] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Terminate an environment now (its workspace is kept unless --purge)."""
    if force:
        if purge:
            err.print("[red]error:[/] --purge: not with --force (the workspace is kept)")
            raise typer.Exit(2)
        run(_force(name, json_output))
        return
    run(_stop(name, wait, purge, json_output))


async def _stop(name: str, wait: bool, purge: bool, json_output: bool) -> None:
    from devenv.cli.views import statuses_json
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids
    from devenv.errors import EnvironmentEndedError

    candidate_ids(name)
    client = AsyncClient()
    env = await client.get(name)
    handle = env.temporal_handle()
    if handle is not None:  # remote mode: the server answers for its workflows (503)
        await _refuse_stuck(client, handle, name)
    try:
        if not wait:
            await env.stop(purge=purge)
            err.print(f"Stopping {env.name}; `devenv ps --all` shows when it has ended.")
            return
        with err.status(f"Terminating {env.name}…"):
            status = await env.stop(wait=True, purge=purge)
    except EnvironmentEndedError as ended:
        if "is terminating" not in str(ended):
            raise
        raise EnvironmentEndedError(
            f"{ended}; if it stays terminating (its cleanup cannot reach the instance), "
            f"`devenv stop --force {name}` abandons it and leaves what remains to `devenv gc`"
        ) from None
    if json_output:
        out.print(statuses_json([status]))
    else:
        out.print(f"{env.name}: {status.status.value} ({status.termination_reason})")


async def _refuse_stuck(client: AsyncClient, handle: Handle, name: str) -> None:
    """A workflow whose tasks keep failing would never apply a stop: say so, and what
    ends it, rather than wait for an answer that cannot come."""
    from devenv.client.trouble import inspect
    from devenv.errors import UserError

    failing = (await inspect(await client.temporal(), handle)).failing
    if failing is not None:
        raise UserError(
            f"{handle.id}: {failing}; it cannot apply a stop: `devenv stop --force {name}` "
            "ends its instance and its workflow"
        )


async def _force(name: str, json_output: bool) -> None:
    """``stop --force``: the instance ended by its records outside the workflow, then the
    workflow terminated; exit 1 when something is left for ``devenv gc``."""
    from rich.markup import escape

    from devenv.client import gc as sweeper
    from devenv.client import sshconfig
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids
    from devenv.client.trouble import inspect
    from devenv.errors import UserError

    candidate_ids(name)
    client = AsyncClient()
    handle = (await client.get(name)).temporal_handle()  # an unknown name: one line
    if handle is None:
        raise UserError(
            f"--force: run `devenv stop --force {name}` on the devenv server itself (without "
            "DEVENV_SERVER_URL): it ends the instance by the server's own records"
        )
    temporal = await client.temporal()
    row = (await inspect(temporal, handle, always=True)).row
    with err.status(f"Ending {handle.id} by force…"):
        done = await sweeper.force_stop(
            temporal, client.settings, handle.id, row.backend if row is not None else None
        )
    sshconfig.remove_entry(client.settings, handle.id.removeprefix("devenv-"))
    if json_output:
        out.print(done.model_dump_json(indent=2, exclude={"removed": {"__all__": {"data"}}}))
    else:
        for item in done.removed:
            out.print(f"{handle.id}: {item.backend} {escape(item.id)} ended outside its workflow")
        if not done.removed and not done.left:
            out.print(f"{handle.id}: no instance of it was running")
        out.print(f"{handle.id}: workflow {done.workflow}")
    if done.left:
        for line in done.left:
            err.print(f"[yellow]warning:[/] {escape(line)}")
        err.print(
            f"{handle.id}: abandoned what could not be ended; `devenv gc` lists it as an "
            "orphan and `devenv gc --yes` ends it once it can be reached"
        )
        raise typer.Exit(1)
