"""`devenv signal NAME`: change a running environment's thresholds or its end, at once."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devenv.cli import interrupt
from devenv.cli.output import DURATION_HELP, JSON_OPT, NAME_ARG, out, run

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncEnvironment
    from devenv.models.state import EnvState


def signal(
    name: NAME_ARG,
    inactivity: Annotated[
        str | None, typer.Option(help=f"New inactivity threshold. {DURATION_HELP}")
    ] = None,
    max_duration: Annotated[
        str | None, typer.Option(help=f"New hard cap from start. {DURATION_HELP}")
    ] = None,
    extend: Annotated[
        str | None,
        typer.Option(
            help="Push the current deadline out by this much, once; thresholds stay. "
            f"{DURATION_HELP}"
        ),
    ] = None,
    stop_at: Annotated[
        str | None,
        typer.Option(
            "--stop-at",
            help="A fixed end whatever the activity: HH:MM (local, the next such time), "
            "an ISO-8601 date and time, or off.",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before a change that terminates it.")
    ] = False,
    json_output: JSON_OPT = False,
) -> None:
    """Change a running environment's thresholds or its end; takes effect at once.

    In a terminal, a change that would terminate it at once asks first (--yes skips).
    """
    run(_signal(name, inactivity, max_duration, extend, stop_at, yes, json_output))


async def _signal(
    name: str,
    inactivity: str | None,
    max_duration: str | None,
    extend: str | None,
    stop_at: str | None,
    yes: bool,
    json_output: bool,
) -> None:
    from devenv.cli.views import describe_deadline
    from devenv.client.async_client import AsyncClient
    from devenv.client.durations import check_duration, check_stop_at
    from devenv.client.refs import candidate_ids
    from devenv.errors import InvalidValueError
    from devenv.models.durations import format_duration
    from devenv.models.state import Status

    candidate_ids(name)
    if inactivity is None and max_duration is None and extend is None and stop_at is None:
        raise InvalidValueError(
            "nothing to change: give --inactivity, --max-duration, --extend or --stop-at"
        )
    # Checked here to name the flag; the SDK gets the words as given, so ``off`` (which
    # parses to None) reaches it as ``off`` and not as a missing value.
    changes: dict[str, Any] = {}
    seconds: dict[str, int | None] = {}
    if inactivity is not None:
        seconds["inactivity_duration"] = check_duration("--inactivity", inactivity)
        changes["inactivity_duration"] = inactivity
    if max_duration is not None:
        seconds["max_duration"] = check_duration("--max-duration", max_duration)
        changes["max_duration"] = max_duration
    if extend is not None:
        pushed = check_duration("--extend", extend)
        if not pushed:
            raise InvalidValueError(f"--extend: {extend!r} is not a positive duration")
        changes["extend"] = pushed
    if stop_at is not None:
        at = check_stop_at("--stop-at", stop_at)
        changes["stop_at"] = "off" if at is None else at
    env = await AsyncClient().get(name)
    if not yes and sys.stdin.isatty() and sys.stdout.isatty():
        ending = ends_at_once(await env.state(), seconds, datetime.now(UTC))
        if ending is not None:
            with interrupt.noting("nothing changed"):
                try:
                    go_on = typer.confirm(
                        f"{ending}: {name} would be terminated now. Go on?", default=False
                    )
                except typer.Abort:  # Ctrl-D (end of input): no answer is no
                    out.print()
                    go_on = False
            if not go_on:
                out.print("Nothing changed.")
                raise typer.Exit(1)
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
    if stop_at is not None and extend is None:
        for line in await _replaced_extension(env):
            out.print(f"  {line} (--stop-at replaces it).")


async def _replaced_extension(env: AsyncEnvironment) -> list[str]:
    """'The extension to 18:45:00Z no longer holds', when the --stop-at just set dropped
    an earlier --extend: the workflow's own words, from the event it recorded."""
    latest = next(
        (e.message for e in reversed(await env.events()) if e.message.startswith("scheduled")),
        "",
    )
    _, _, dropped = latest.rpartition("; the extension to ")
    return [f"The extension to {dropped}"] if dropped.endswith("no longer holds") else []


def ends_at_once(state: EnvState, changes: dict[str, Any], now: datetime) -> str | None:
    """Why these changes would terminate the environment at once, or None."""
    from devenv.models.durations import format_duration
    from devenv.models.state import Status

    if state.status != Status.RUNNING:
        return None
    idle = state.connections == 0 and state.jobs == 0 and state.idle_since is not None
    inactivity = changes.get("inactivity_duration")
    if inactivity and idle and state.idle_since is not None:
        if state.idle_since + timedelta(seconds=inactivity) <= now:
            return (
                f"it has been idle since {state.idle_since:%H:%M}Z, longer than "
                f"{format_duration(inactivity)}"
            )
    cap = changes.get("max_duration")
    if cap and state.created_at is not None and state.created_at + timedelta(seconds=cap) <= now:
        return f"it was created at {state.created_at:%H:%M}Z, more than {format_duration(cap)} ago"
    return None
