"""`devenv share NAME --with USER` and `devenv unshare`: let a colleague in, or out."""

from __future__ import annotations

from typing import Annotated

import typer

from devenv.cli.output import JSON_OPT, NAME_ARG, out, run

WITH_OPT = Annotated[
    list[str],
    typer.Option(
        "--with",
        metavar="USER",
        help="A devenv user (registered with `devenv users add NAME --key FILE`); repeatable.",
    ),
]


def share(name: NAME_ARG, users: WITH_OPT, json_output: JSON_OPT = False) -> None:
    """Share an environment with other users (they cannot stop it).

    The users may log in with their key, see it in `devenv ps`, extend it and change its
    thresholds, but not stop it."""
    run(_change(name, users, True, json_output))


def unshare(name: NAME_ARG, users: WITH_OPT, json_output: JSON_OPT = False) -> None:
    """Stop sharing an environment with these users: their key no longer logs in."""
    run(_change(name, users, False, json_output))


async def _change(name: str, users: list[str], adding: bool, json_output: bool) -> None:
    from devenv.cli.views import statuses_json
    from devenv.client.async_client import AsyncClient

    env = await AsyncClient().get(name)
    status = await (env.share(users) if adding else env.unshare(users))
    if json_output:
        out.print(statuses_json([status]))
        return
    members = ", ".join(status.shared_with) or "nobody"
    out.print(f"{status.workflow_id}: shared with {members}")
