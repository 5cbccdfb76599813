"""`devenv server` (the embedded Temporal dev server and the worker) and `server stop`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devenv.cli import interrupt
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
    api_host: Annotated[
        str,
        typer.Option(help="Address of the HTTP API; off loopback it needs --tls-cert/--tls-key."),
    ] = "127.0.0.1",
    api_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the HTTP API (default DEVENV_API_PORT or 8234); 0 disables it.",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="Serve the API over HTTPS with this PEM certificate."),
    ] = None,
    tls_key: Annotated[
        Path | None, typer.Option(metavar="FILE", help="The certificate's PEM private key.")
    ] = None,
    insecure_http: Annotated[
        bool,
        typer.Option(
            "--insecure-http",
            help="Plain HTTP on a non-loopback --api-host (only behind a TLS proxy).",
        ),
    ] = False,
) -> None:
    """Run the embedded Temporal dev server, the worker and the HTTP API in the foreground.

    Off loopback the API needs --tls-cert/--tls-key (or --insecure-http): its bearer
    tokens must not cross a network in clear."""
    if ctx.invoked_subcommand is not None:
        return
    from devenv.api.transport import check_transport

    try:
        tls = check_transport(api_host, tls_cert, tls_key, insecure_http)
    except DevenvError as problem:
        raise fail(problem) from None
    interrupt.default()  # Ctrl-C stops the worker and the Temporal server it runs, in order
    run(_server(temporal_port, ui_port, worker_only, api_host, api_port, tls))


async def _server(
    temporal_port: int | None,
    ui_port: int | None,
    worker_only: bool,
    api_host: str,
    api_port: int | None,
    tls: tuple[Path, Path] | None,
) -> None:
    from contextlib import AbstractAsyncContextManager

    from devenv.settings import Settings
    from devenv.worker.serve import serve

    settings = Settings.load()
    if temporal_port is not None:
        settings = settings.model_copy(update={"address": f"{settings.host}:{temporal_port}"})
    port = settings.api_port if api_port is None else api_port
    explicit = api_port is not None or settings.api_port_override is not None

    def api() -> AbstractAsyncContextManager[str | None]:
        # Imported here: FastAPI and uvicorn load only in the server.
        from devenv.api.listener import api_running

        return api_running(
            settings, api_host, port, explicit=explicit, say=lambda line: err.print(line), tls=tls
        )

    await serve(settings, settings.ui_port if ui_port is None else ui_port, worker_only, err, api)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the background devenv server (environments keep their state and timers)."""
    from devenv.client.autostart import stop_background
    from devenv.settings import Settings

    try:
        pid = stop_background(Settings.load())
    except DevenvError as problem:
        raise fail(problem) from None
    err.print(
        "No devenv server was running." if pid is None else f"Stopped devenv server (pid {pid})."
    )
