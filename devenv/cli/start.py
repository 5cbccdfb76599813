"""`devenv start FILE`: start an environment and say how to connect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from devenv.cli import interrupt
from devenv.cli.output import DURATION_HELP, JSON_OPT, err, out, run

IDE_LABELS = {"vscode": "VS Code", "cursor": "Cursor"}


def start(
    file: Annotated[
        Path, typer.Argument(help="The environment's YAML file (see examples/dev.yml).")
    ],
    name: Annotated[str | None, typer.Option(help="Name (overrides the file's name).")] = None,
    inactivity: Annotated[
        str | None,
        typer.Option(
            help=f"Inactivity threshold (overrides the file). {DURATION_HELP} "
            "`auto`: learned from your breaks (docs: Adaptive idleness)."
        ),
    ] = None,
    max_duration: Annotated[
        str | None, typer.Option(help=f"Hard cap from start (overrides the file). {DURATION_HELP}")
    ] = None,
    detach: Annotated[
        bool, typer.Option("--detach", help="Return once started; do not wait for SSH.")
    ] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Start an environment and wait until it accepts SSH."""
    run(_start(file, name, inactivity, max_duration, detach, json_output))


async def _start(
    file: Path,
    name: str | None,
    inactivity: str | None,
    max_duration: str | None,
    detach: bool,
    json_output: bool,
) -> None:
    from devenv.cli.views import statuses_json
    from devenv.client.async_client import AsyncClient
    from devenv.client.durations import check_duration
    from devenv.models.durations import format_duration

    overrides: dict[str, Any] = {}
    if inactivity is not None and inactivity.strip().lower() == "auto":
        overrides["inactivity_duration"] = "auto"
    elif inactivity is not None:
        overrides["inactivity_duration"] = check_duration("--inactivity", inactivity)
    if max_duration is not None:
        overrides["max_duration"] = check_duration("--max-duration", max_duration)
    client = AsyncClient()
    with err.status("Starting…") as spinner:

        def progress(message: str, transient: bool) -> None:
            if transient:
                spinner.update(message)
            else:
                err.print(f"[dim]{message}[/]")

        env = await client.start(
            file, name=_checked_name(name), wait=False, progress=progress, **overrides
        )
        if not detach:
            with interrupt.noting(
                f"{env.name} was started and goes on; `devenv stop {env.name}` ends it"
            ):
                spinner.update(f"Started {env.name}; waiting for its instance…")
                await env.wait_ready(progress=progress)
    settings = client.settings
    ui_link = f"{settings.ui_url}/namespaces/{settings.namespace}/workflows/{env.workflow_id}"
    if detach:
        if json_output:
            out.print_json(
                data={"name": env.name, "workflow_id": env.workflow_id, "web_ui": ui_link}
            )
        else:
            err.print(f"Started {env.name}; follow it with `devenv ps {env.name}` or {ui_link}")
        return
    status = await env.status()
    if json_output:
        out.print(statuses_json([status]))
        return
    connection = env.ssh_entry
    assert connection is not None
    name = status.name
    config = connection.ssh_config
    ssh_line = f"ssh {name}" + ("" if connection.included else f"   (or: ssh -F {config} {name})")
    out.print(f"[green]✓[/] Environment [bold]{name}[/] is running")
    out.print(f"  Connect:    {ssh_line}")
    out.print(f"              ssh -F {config} {name}   ·   devenv ssh {name}")
    folder = connection.folder
    if connection.ide in IDE_LABELS:
        out.print(
            f"  {IDE_LABELS[connection.ide] + ':':11} "
            f"{connection.ide}://vscode-remote/ssh-remote+{name}{folder or ''}"
        )
    if folder:
        out.print(f"  Workspace:  {folder}")
    inactivity_s = status.inactivity_duration
    ends = "suspended" if status.on_idle == "suspend" else "terminated"
    rule = (
        f"{ends} after {format_duration(inactivity_s)} with nobody connected"
        if inactivity_s
        else "no inactivity rule (inactivity_duration is off)"
    )
    out.print(f"  Idle rule:  {rule}")
    if status.max_duration:
        out.print(f"  Max life:   {format_duration(status.max_duration)} from start")
    out.print(f"  Web UI:     {connection.web_ui}")
    if connection.included_now:
        out.print(f"  [dim](added `Include {config}` to ~/.ssh/config)[/]")


def _checked_name(name: str | None) -> str | None:
    """--name is checked here so the error names the flag."""
    from devenv.errors import InvalidValueError
    from devenv.models.config import validate_name
    from devenv.models.problems import shorten

    if name is None:
        return None
    try:
        return validate_name(name)
    except ValueError as problem:
        raise InvalidValueError(f"--name: {shorten(str(problem), name)}") from None
