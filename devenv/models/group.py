"""``keep_alive: group``: presence in any of an owner's group keeps each of them alive.

Pull-based: at its idle deadline (and when its warning is due) an environment asks the
``group_presence`` activity for the group's latest presence, read from the visibility
store's memo rows, and moves its own idle clock to it when that is later. No signals
between environments, no polling: a peer in use moves the deadline a full threshold on,
and the next ask is at that deadline. Pure data and functions, no I/O, no Temporal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel

from devenv.models.state import EnvState, Status
from devenv.models.status import EnvironmentStatus

MAX_PEERS = 1000
"""Rows of the group's listing looked at: a group is a user's handful of machines."""


class GroupInput(BaseModel):
    """Who asks: its workflow id (left out of its own group's answer), owner and group."""

    workflow_id: str
    owner: str | None
    group: str


class GroupPresence(BaseModel):
    """The group's latest presence, without the asker: ``in_use`` names a peer someone
    uses now; otherwise ``peer`` went idle last, at ``idle_since``; neither: no peer."""

    in_use: str | None = None
    peer: str | None = None
    idle_since: datetime | None = None
    peers: int = 0


def presence_of(rows: Iterable[EnvironmentStatus], asker: GroupInput) -> GroupPresence:
    """What the running peers' rows say (the asker's own row, other owners' and other
    groups' are left out: the listing's filter is only a search attribute)."""
    answer = GroupPresence()
    for row in rows:
        if (
            row.workflow_id == asker.workflow_id
            or row.owner != asker.owner
            or row.group != asker.group
            or row.status != Status.RUNNING
        ):
            continue
        answer.peers += 1
        if answer.in_use is not None:
            continue
        if row.activity == "active":
            answer.in_use, answer.peer, answer.idle_since = row.name, None, None
        elif row.idle_since is not None and (
            answer.idle_since is None or row.idle_since > answer.idle_since
        ):
            answer.peer, answer.idle_since = row.name, row.idle_since
    return answer


def keeps(s: EnvState) -> bool:
    """The group may keep this environment alive: ``keep_alive: group`` in a group."""
    return s.spec.group is not None and s.spec.keep_alive == "group"


def take(
    s: EnvState, seen: GroupPresence, now: datetime, clock: Callable[[datetime], str]
) -> str | None:
    """Move the idle clock to the group's latest presence when that is later than this
    environment's own; the event to log (None: the group kept nothing)."""
    if s.idle_since is None or s.connections + s.jobs > 0:
        return None
    if seen.in_use is not None:
        s.idle_since = max(now, s.idle_since)
        return f"kept alive by group {s.spec.group}: {seen.in_use} is in use"
    if seen.idle_since is None or seen.idle_since <= s.idle_since:
        return None
    threshold = s.spec.inactivity_duration
    if threshold is not None and seen.idle_since + timedelta(seconds=threshold) <= now:
        return None  # the whole group has been idle past the threshold: nothing kept
    s.idle_since = min(seen.idle_since, now)
    until = clock(seen.idle_since)
    return f"kept alive by group {s.spec.group}: {seen.peer} was in use until {until}"
