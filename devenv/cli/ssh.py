"""`devenv ssh NAME [-- COMMAND]`: OpenSSH into the environment."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Annotated

import typer

from devenv.cli.output import NAME_ARG, err, run


def ssh(
    name: NAME_ARG,
    command: Annotated[
        list[str] | None, typer.Argument(help="Command to run instead of a shell (after --).")
    ] = None,
) -> None:
    """Open a shell in the environment (OpenSSH), or run COMMAND there."""
    config, host = run(_ssh_target(name))
    binary = shutil.which("ssh")
    if binary is None:
        err.print("[red]error:[/] OpenSSH client `ssh` not found on PATH; install openssh-client")
        raise typer.Exit(2)
    os.execv(binary, ["ssh", "-F", str(config), host, *(command or [])])


async def _ssh_target(ref: str) -> tuple[Path, str]:
    """The ssh config (entry refreshed from the workflow's state) and the Host to use."""
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(ref)
    env = await AsyncClient().get(ref)
    connection = await env.ssh_config()
    return connection.ssh_config, env.name
