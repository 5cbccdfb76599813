"""`devenv run NAME [--detach] -- CMD...`: a command in the environment, as a job.

While a job runs the environment is in use; its idle clock starts when the last job
and the last connection have ended. The job's output is logged in the workspace
(`devenv logs NAME --job ID`); without --detach it is also shown here, and the exit
code is the command's.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from devenv.cli.output import NAME_ARG, err, out, run


def run_job(
    name: NAME_ARG,
    command: Annotated[
        list[str] | None,
        typer.Argument(help="The command (after --); one quoted string runs with sh -c."),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option("--detach", "-d", help="Start it in the background and print its id."),
    ] = False,
    job_id: Annotated[
        str | None, typer.Option("--id", help="The job's id (default: generated).")
    ] = None,
) -> None:
    """Run COMMAND in the environment as a job: it stays in use while the job runs."""
    if detach:
        started = run(_start(name, command or [], job_id))
        out.print(started, markup=False)
        err.print(f"[dim]job {started} started; `devenv logs {name} --job {started}` shows it[/]")
        return
    argv, started = run(_foreground(name, command or [], job_id))
    err.print(f"[dim]job {started} (its log: `devenv logs {name} --job {started}`)[/]")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], ["ssh", *argv[1:]])


async def _start(name: str, command: list[str], job_id: str | None) -> str:
    from devenv.client.async_client import AsyncClient
    from devenv.client.jobs import command_argv
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    command_argv(command)  # refused before anything is asked
    env = await AsyncClient().get(name)
    return await env.run(command, job_id=job_id)


async def _foreground(name: str, command: list[str], job_id: str | None) -> tuple[list[str], str]:
    from devenv.client.async_client import AsyncClient
    from devenv.client.jobs import check_job_id, keepalive_command, new_job_id, ssh_argv
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    job = check_job_id(job_id) if job_id is not None else new_job_id()
    remote = keepalive_command(job, command, detach=False)
    env = await AsyncClient().get(name)
    tty = sys.stdin.isatty() and sys.stdout.isatty()
    return await ssh_argv(env, remote, tty=tty), job
