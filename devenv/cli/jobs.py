"""`devenv jobs NAME`: the jobs of an environment (`devenv run`, `devenv-keepalive`)."""

from __future__ import annotations

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run


def jobs(name: NAME_ARG, json_output: JSON_OPT = False) -> None:
    """List the environment's jobs: running ones keep it in use."""
    run(_jobs(name, json_output))


async def _jobs(name: str, json_output: bool) -> None:
    import shlex

    from rich.table import Table

    from devenv.cli.views import clock
    from devenv.client.async_client import AsyncClient
    from devenv.client.refs import candidate_ids

    candidate_ids(name)
    found = await (await AsyncClient().get(name)).jobs()
    if json_output:
        out.print_json(data=[job.model_dump(mode="json") for job in found])
        return
    if not found:
        err.print(f"No jobs in {name} (start one with `devenv run {name} -- COMMAND`).")
        return
    table = Table(box=None, header_style="bold")
    for column in ("ID", "STATE", "STARTED", "ENDED", "COMMAND"):
        table.add_column(column)
    for job in found:
        state: str = job.state
        if job.state == "exited":
            state = f"exited ({job.exit_code})"
        style = {"running": "green", "lost": "yellow"}.get(job.state, "dim")
        table.add_row(
            job.id,
            f"[{style}]{state}[/]",
            clock(job.started),
            clock(job.ended),
            shlex.join(job.command).replace("[", r"\["),
        )
    out.print(table)
