"""`devenv signal NAME`: change a running environment's thresholds, at once."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from devenv.cli.output import DURATION_HELP, JSON_OPT, NAME_ARG, out, run


def signal(
    name: NAME_ARG,
    inactivity: Annotated[
        str | None, typer.Option(help=f"New inactivity threshold. {DURATION_HELP}")
    ] = None,
    max_duration: Annotated[
        str | None, typer.Option(help=f"New hard cap from start. {DURATION_HELP}")
    ] = None,
    json_output: JSON_OPT = False,
) -> None:
    """Change a running environment's thresholds; takes effect at once."""
    run(_signal(name, inactivity, max_duration, json_output))


async def _signal(
    name: str, inactivity: str | None, max_duration: str | None, json_output: bool
) -> None:
    from devenv.cli.views import describe_deadline
    from devenv.client.aio import AsyncClient
    from devenv.client.durations import check_duration
    from devenv.client.lookup import candidate_ids
    from devenv.errors import InvalidValueError
    from devenv.workflows.durations import format_duration
    from devenv.workflows.state import Status

    candidate_ids(name)
    if inactivity is None and max_duration is None:
        raise InvalidValueError("nothing to change: give --inactivity and/or --max-duration")
    changes: dict[str, Any] = {}
    if inactivity is not None:
        changes["inactivity_duration"] = check_duration("--inactivity", inactivity)
    if max_duration is not None:
        changes["max_duration"] = check_duration("--max-duration", max_duration)
    env = await AsyncClient().get(name)
    status = await env.update(**changes)
    if json_output:
        out.print(status.model_dump_json(indent=2))
        return
    out.print(
        f"{env.workflow_id}: inactivity {format_duration(status.inactivity_duration)}, "
        f"max duration {format_duration(status.max_duration)}"
    )
    if status.status != Status.RUNNING:
        out.print(
            f"  Already past the new threshold: terminating now ({status.termination_reason})."
        )
    else:
        out.print(f"  Deadline: {describe_deadline(status.deadline, None)}")
