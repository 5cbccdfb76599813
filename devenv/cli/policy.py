"""`devenv policy set|show|clear`: an admin's bounds and defaults for every environment.

Presentation over ``AsyncClient.set_policy / policies / clear_policy``; the bounds bind
new starts at once and every running environment right after (``show`` says how far
the latest version has reached).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated, Any

import typer

from devenv.cli.output import JSON_OPT, err, note, out, run
from devenv.cli.policy_spend import spend_lines

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncClient
    from devenv.models.policy import PolicyStatus

policy_app = typer.Typer(
    help="An admin's bounds and defaults for everyone's (or one user's) environments.",
    no_args_is_help=True,
)

REACH_TIMEOUT = 120.0
"""How long `set` and `clear` wait for every running environment to have the change."""
REACH_POLL = 0.5
USER_OPT = Annotated[
    str | None,
    typer.Option("--user", metavar="NAME", help="That user's scope (default: everyone's)."),
]
DURATION = "a duration (8h, 1d, 90m) or off to remove the key"
WAIT_OPT = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="Wait until every running environment has it (at most 2 minutes).",
    ),
]


@policy_app.command("set")
def set_policy(
    user: USER_OPT = None,
    default_inactivity: Annotated[
        str | None,
        typer.Option(metavar="D", help=f"inactivity_duration of a start without one: {DURATION}."),
    ] = None,
    max_inactivity: Annotated[
        str | None,
        typer.Option(metavar="D", help=f"The longest inactivity_duration allowed: {DURATION}."),
    ] = None,
    max_duration: Annotated[
        str | None,
        typer.Option(metavar="D", help=f"The longest max_duration allowed: {DURATION}."),
    ] = None,
    no_off: Annotated[
        bool | None,
        typer.Option(
            "--no-off/--allow-off", help="Refuse (or allow again) inactivity_duration: off."
        ),
    ] = None,
    delete_after: Annotated[
        str | None,
        typer.Option(
            metavar="D", help=f"Default and longest delete_after of suspended ones: {DURATION}."
        ),
    ] = None,
    stop_at_daily: Annotated[
        str | None,
        typer.Option(metavar="HH:MM", help="A fixed end every day at this time (off removes it)."),
    ] = None,
    tz: Annotated[
        str | None,
        typer.Option(metavar="ZONE", help="Its time zone, e.g. Europe/Berlin (default UTC)."),
    ] = None,
    days: Annotated[
        str | None,
        typer.Option(metavar="DAYS", help="Its days, e.g. Mon-Fri (default every day)."),
    ] = None,
    idle_budget_weekly: Annotated[
        str | None,
        typer.Option(
            metavar="USD",
            help="Idle spend per user and week (50 or $50; off removes it): past it, idle "
            "thresholds tighten to --floor-inactivity until Monday.",
        ),
    ] = None,
    floor_inactivity: Annotated[
        str | None,
        typer.Option(metavar="D", help=f"The idle threshold once the budget is spent: {DURATION}."),
    ] = None,
    wait: WAIT_OPT = True,
    json_output: JSON_OPT = False,
) -> None:
    """Set keys of a scope's policy (the others stay); running environments follow at once."""
    given: dict[str, Any] = {
        key: value
        for key, value in (
            ("default_inactivity", default_inactivity),
            ("max_inactivity", max_inactivity),
            ("max_duration", max_duration),
            ("no_off", no_off),
            ("delete_after", delete_after),
            ("stop_at_daily", stop_at_daily),
            ("tz", tz),
            ("days", days),
            ("idle_budget_weekly", idle_budget_weekly),
            ("floor_inactivity", floor_inactivity),
        )
        if value is not None
    }
    run(_change(user, given, False, wait, json_output))


@policy_app.command("clear")
def clear_policy(
    user: USER_OPT = None, wait: WAIT_OPT = True, json_output: JSON_OPT = False
) -> None:
    """Remove every key of a scope's policy; running environments get their own values back."""
    run(_change(user, {}, True, wait, json_output))


@policy_app.command("show")
def show_policy(json_output: JSON_OPT = False) -> None:
    """The policies of every scope, and how far the latest change has reached."""
    run(_show(json_output))


async def _change(
    user: str | None, keys: dict[str, Any], clear: bool, wait: bool, json_output: bool
) -> None:
    from devenv.client.async_client import AsyncClient

    client = AsyncClient()
    if clear:
        status = await client.clear_policy(user=user)
    else:
        status = await client.set_policy(user=user, **keys)
    if wait:
        status = await _reached(client, status)
    if json_output:
        out.print_json(status.model_dump_json())
        return
    scope = "everyone" if user is None else f"user {user}"
    policies = status.policies
    words = policies.everyone if user is None else policies.users.get(user)
    shown = "none" if words is None else words.words()
    out.print(f"policy for {scope}: {shown} (version {policies.version})", markup=False)
    out.print(_reach_line(status), markup=False)


async def _reached(client: AsyncClient, status: PolicyStatus) -> PolicyStatus:
    """Poll until the fan-out of ``status``'s version finished, or REACH_TIMEOUT."""
    version = status.policies.version
    told = False
    shown: str | None = None
    loop = asyncio.get_running_loop()
    give_up = loop.time() + REACH_TIMEOUT
    while status.reached is None or status.reached.version < version:
        if loop.time() > give_up:
            note("still sending it to running environments; `devenv policy show` says when done")
            return status
        if err.is_terminal:  # progress for people, not for scripts
            if not told:
                note(f"sending version {version} to the running environments…")
                told = True
            if status.sending is not None and status.sending.words() != shown:
                shown = status.sending.words()  # a new heartbeat: about every 25 s
                note(f"  {shown}")
        await asyncio.sleep(REACH_POLL)
        status = await client.policies()
    return status


async def _show(json_output: bool) -> None:
    from devenv.client.async_client import AsyncClient

    status = await AsyncClient().policies()
    if json_output:
        out.print_json(status.model_dump_json())
        return
    policies = status.policies
    out.print(f"everyone: {policies.everyone.words()}", markup=False)
    for name, scope in sorted(policies.users.items()):
        out.print(f"user {name}: {scope.words()}", markup=False)
    if policies.version:
        when = policies.changed_at.strftime("%Y-%m-%d %H:%M UTC") if policies.changed_at else "?"
        by = f" by {policies.changed_by}" if policies.changed_by else ""
        out.print(f"version {policies.version}, changed {when}{by}", markup=False)
        out.print(_reach_line(status), markup=False)
    for line in spend_lines(status):
        out.print(line, markup=False)


def _reach_line(status: PolicyStatus) -> str:
    reached = status.reached
    version = status.policies.version
    if version == 0:
        return "no policy set"
    if reached is None or reached.version < version:
        so_far = f" ({status.sending.words()})" if status.sending is not None else ""
        return f"version {version}: being sent to the running environments{so_far}"
    return (
        f"version {version} reached all {reached.environments} running environment(s); "
        f"{reached.changed} changed"
    )
