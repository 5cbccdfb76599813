"""`devenv server` (the embedded Temporal dev server and the worker) and `server stop`."""

from __future__ import annotations

from typing import Annotated

import typer

from devenv.cli.output import err, fail, run
from devenv.errors import DevenvError

server_app = typer.Typer(help="Run the embedded Temporal server and the devenv worker.")


@server_app.callback(invoke_without_command=True)
def server(
    ctx: typer.Context,
    temporal_port: Annotated[
        int | None,
        typer.Option(
            min=1, max=65535, help="gRPC port of the embedded Temporal server (default 7233)."
        ),
    ] = None,
    ui_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Web UI port (default: Temporal port + 1000); 0 disables it."
        ),
    ] = None,
    worker_only: Annotated[
        bool,
        typer.Option(
            "--worker-only",
            help="Only the worker, against DEVENV_TEMPORAL_ADDRESS (a cluster or another server).",
        ),
    ] = False,
) -> None:
    """Run the embedded Temporal dev server and the worker in the foreground."""
    if ctx.invoked_subcommand is not None:
        return
    run(_server(temporal_port, ui_port, worker_only))


async def _server(temporal_port: int | None, ui_port: int | None, worker_only: bool) -> None:
    from devenv.settings import Settings
    from devenv.worker.serve import serve

    settings = Settings.load()
    if temporal_port is not None:
        settings = settings.model_copy(update={"address": f"{settings.host}:{temporal_port}"})
    await serve(settings, settings.ui_port if ui_port is None else ui_port, worker_only, err)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the background devenv server (environments keep their state and timers)."""
    from devenv.client.server import stop_background
    from devenv.settings import Settings

    try:
        pid = stop_background(Settings.load())
    except DevenvError as problem:
        raise fail(problem) from None
    err.print(
        "No devenv server was running." if pid is None else f"Stopped devenv server (pid {pid})."
    )
