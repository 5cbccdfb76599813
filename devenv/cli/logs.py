"""`devenv logs NAME`: what happened to an environment, in plain words."""

from __future__ import annotations

from devenv.cli.output import JSON_OPT, NAME_ARG, err, out, run


def logs(name: NAME_ARG, json_output: JSON_OPT = False) -> None:
    """The environment's history of events, in plain words."""
    run(_logs(name, json_output))


async def _logs(name: str, json_output: bool) -> None:
    from devenv.cli.views import clock
    from devenv.client.aio import AsyncClient
    from devenv.client.lookup import candidate_ids

    candidate_ids(name)
    events = await (await AsyncClient().get(name)).events()
    if json_output:
        out.print_json(data=[event.model_dump(mode="json") for event in events])
        return
    for event in events:
        out.print(f"[dim]{clock(event.at)}[/]  {event.message}")
    if not events:
        err.print("No events yet.")
