"""Who may do what to an environment through the HTTP API: one table, consulted by every
route, and printed in the README (``devenv.api.authority.markdown()``; a test keeps the
two equal).

A user is, towards one environment, its owner, a member (it is shared with them), an
admin, or anyone else. Anyone else learns nothing: every call is the 404 of a name that
does not exist. A member may use it, not end it: stop and share are 403, and so is a
change of its thresholds that would end it within ``MEMBER_NOTICE`` (that is a stop).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from devenv.errors import EnvironmentNotFoundError, NotAllowedError

if TYPE_CHECKING:
    from devenv.client.tokens import User
    from devenv.models.state import EnvState
    from devenv.models.status import EnvironmentStatus

MEMBER_NOTICE = timedelta(minutes=5)
"""A member's change may not bring the environment's end closer than this from now."""


class Role(StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    ADMIN = "admin"
    ANYONE = "anyone else"


class Action(StrEnum):
    START = "start"
    LIST = "list"
    SEE = "see (status, events)"
    CHANGE = "change thresholds"
    EXTEND = "extend"
    STOP = "stop"
    SUSPEND = "suspend"
    RESUME = "resume"
    SHARE = "share"
    CONNECT = "connect"
    SEE_POLICY = "see policies (`devenv policy show`)"
    SET_POLICY = "set or clear policies"


class Rule(StrEnum):
    """One cell of the table; its value is what the README says."""

    YES = "yes"
    NOT_LOCAL = "yes; `backend: local` only if added with `--local-backend` (else 403)"
    ANY_BACKEND = "yes, any backend"
    OWN = "their own"
    SHARED = "those shared with them"
    ALL = "all"
    UNLISTED = "not listed"
    UNLESS_ENDING = "yes, unless it would end within 5 minutes (403)"
    FORBIDDEN = "no (403)"
    HIDDEN = "no (404: as if it did not exist)"
    OWN_KEY = "yes, with their own registered key"
    DETAILS = "its connection details; a login needs a key it accepts"
    BINDING = "those that bind them (everyone's, their own)"
    NONE = "-"


Y, H, F = Rule.YES, Rule.HIDDEN, Rule.FORBIDDEN
TABLE: dict[Action, dict[Role, Rule]] = {
    # Starting makes its caller the owner: "anyone else" is any user of the API.
    Action.START: {
        Role.OWNER: Rule.NONE,
        Role.MEMBER: Rule.NONE,
        Role.ADMIN: Rule.ANY_BACKEND,
        Role.ANYONE: Rule.NOT_LOCAL,
    },
    Action.LIST: {
        Role.OWNER: Rule.OWN,
        Role.MEMBER: Rule.SHARED,
        Role.ADMIN: Rule.ALL,
        Role.ANYONE: Rule.UNLISTED,
    },
    Action.SEE: {Role.OWNER: Y, Role.MEMBER: Y, Role.ADMIN: Y, Role.ANYONE: H},
    Action.CHANGE: {Role.OWNER: Y, Role.MEMBER: Rule.UNLESS_ENDING, Role.ADMIN: Y, Role.ANYONE: H},
    Action.EXTEND: {Role.OWNER: Y, Role.MEMBER: Y, Role.ADMIN: Y, Role.ANYONE: H},
    Action.STOP: {Role.OWNER: Y, Role.MEMBER: F, Role.ADMIN: Y, Role.ANYONE: H},
    # Suspending ends every process in it (a member's too), as a stop does; resuming only
    # brings it back to use, as connecting does.
    Action.SUSPEND: {Role.OWNER: Y, Role.MEMBER: F, Role.ADMIN: Y, Role.ANYONE: H},
    Action.RESUME: {Role.OWNER: Y, Role.MEMBER: Y, Role.ADMIN: Y, Role.ANYONE: H},
    Action.SHARE: {Role.OWNER: Y, Role.MEMBER: F, Role.ADMIN: Y, Role.ANYONE: H},
    Action.CONNECT: {
        Role.OWNER: Rule.OWN_KEY,
        Role.MEMBER: Rule.OWN_KEY,
        Role.ADMIN: Rule.DETAILS,
        Role.ANYONE: H,
    },
    # Policies bind users, not one environment: a user is an admin or anyone else.
    Action.SEE_POLICY: {
        Role.OWNER: Rule.NONE,
        Role.MEMBER: Rule.NONE,
        Role.ADMIN: Rule.ALL,
        Role.ANYONE: Rule.BINDING,
    },
    Action.SET_POLICY: {
        Role.OWNER: Rule.NONE,
        Role.MEMBER: Rule.NONE,
        Role.ADMIN: Y,
        Role.ANYONE: F,
    },
}
CHANGES: dict[str, Action] = {
    "inactivity_duration": Action.CHANGE,
    "max_duration": Action.CHANGE,
    "stop_at": Action.CHANGE,
    "extend": Action.EXTEND,
    "shared_with": Action.SHARE,
}
"""The keys of a PATCH and the action each one is."""


def role(user: User, row: EnvironmentStatus) -> Role:
    """What ``user`` is towards the environment of ``row`` (its owner first: an admin who
    owns one is its owner)."""
    if row.owner is not None and row.owner == user.name:
        return Role.OWNER
    if user.admin:
        return Role.ADMIN
    if user.name in row.shared_with:
        return Role.MEMBER
    return Role.ANYONE


def may_see(user: User, row: EnvironmentStatus) -> bool:
    """Whether ``row`` is in ``user``'s listing."""
    return TABLE[Action.SEE][role(user, row)] is Rule.YES


def require(user: User, row: EnvironmentStatus, action: Action, asked: str | None = None) -> Role:
    """``user``'s role if the table lets them do ``action``; else the 404 of a name that
    does not exist (anyone else: ``asked`` is the name as they gave it) or a one-line 403
    (a member)."""
    who = role(user, row)
    rule = TABLE[action][who]
    if rule is Rule.HIDDEN:
        shown = row.name if asked is None else asked
        raise EnvironmentNotFoundError(f"no environment named {shown!r} (see `devenv ps --all`)")
    if rule is Rule.FORBIDDEN:
        raise NotAllowedError(
            f"{row.name} is shared with you by {row.owner}: you may extend it and change "
            f"its thresholds, but only {row.owner} or an admin can {action.value} it"
        )
    return who


def require_change(
    user: User, row: EnvironmentStatus, keys: Mapping[str, Any], asked: str | None = None
) -> Role:
    """The checks of every key of a PATCH; the strictest answer wins (404, then 403)."""
    actions = sorted({CHANGES[key] for key in keys if key in CHANGES}, key=_strictness)
    who = role(user, row)
    for action in actions or [Action.SEE]:
        who = require(user, row, action, asked)
    return who


def _strictness(action: Action) -> int:
    return [Action.SHARE, Action.STOP, Action.CHANGE, Action.EXTEND].index(action)


def require_policy_change(user: User) -> None:
    """Policies are the admins' (the table's SET_POLICY row): a one-line 403 for others."""
    if TABLE[Action.SET_POLICY][Role.ADMIN if user.admin else Role.ANYONE] is not Rule.YES:
        raise NotAllowedError(
            f"{user.name} is not an admin: only an admin can set or clear policies "
            "(`devenv policy show` shows those that bind you)"
        )


def require_start(user: User, config: Mapping[str, Any]) -> None:
    """A local environment is a shell as the server's own OS user (it could read the
    server's keys, tokens and process environment): admins, and users an admin trusts
    as much (``devenv users add NAME --local-backend``), only."""
    if user.admin or user.local_backend:
        return
    if config.get("backend", "local") == "local":
        raise NotAllowedError(
            "backend: local is for admins only (a local environment is a shell as the "
            "devenv server's own OS user); use an ssh host pool registered by an admin "
            "(`devenv hosts`)"
        )


def require_not_ending(
    row: EnvironmentStatus, state: EnvState, keys: Mapping[str, Any], now: datetime
) -> None:
    """403 for a member's change that would end the environment within MEMBER_NOTICE
    (a threshold already or nearly exceeded, a stop-at in the next minutes): that is a
    stop. Computed as the workflow computes its deadline, on a copy of its state with
    the change applied; a change that does not bring the end closer always passes."""
    ends = ending_after(state, keys, now)
    if ends is None:
        return
    from devenv.models import deadline

    before, _ = deadline.compute(state)
    if ends > now + MEMBER_NOTICE or (before is not None and ends >= before):
        return
    when = ends.astimezone(UTC).strftime("%H:%M:%S UTC")
    raise NotAllowedError(
        f"{row.name} is shared with you by {row.owner}: this change would end it at {when} "
        f"(within {int(MEMBER_NOTICE.total_seconds() // 60)} minutes), which is a stop; "
        f"only {row.owner} or an admin can stop it"
    )


def ending_after(state: EnvState, keys: Mapping[str, Any], now: datetime) -> datetime | None:
    """The deadline the workflow would compute once ``keys`` are applied, in its order:
    thresholds and stop-at first (already exceeded, it ends there and then: an extend in
    the same change comes too late), then extend. Bad values raise InvalidValueError,
    as the SDK would."""
    from devenv.client.durations import check_duration, check_stop_at
    from devenv.models import deadline

    s = state.model_copy(deep=True)
    for field in ("inactivity_duration", "max_duration"):
        if field in keys:
            setattr(s.spec, field, check_duration(field, keys[field]) or None)
            s.deadline_floor = None
    if "stop_at" in keys:
        s.stop_at = check_stop_at("stop_at", keys["stop_at"])
        s.deadline_floor = None
    due, _ = deadline.compute(s)
    if due is not None and due <= now:
        return due
    if "extend" in keys:
        pushed = check_duration("extend", keys["extend"])
        if pushed and due is not None:
            s.deadline_floor = due + timedelta(seconds=pushed)
    return deadline.compute(s)[0]


def markdown() -> str:
    """The table as the README shows it."""
    roles = list(Role)
    lines = [
        "| | " + " | ".join(r.value for r in roles) + " |",
        "|---" * (len(roles) + 1) + "|",
    ]
    for action, cells in TABLE.items():
        lines.append(f"| {action.value} | " + " | ".join(cells[r].value for r in roles) + " |")
    return "\n".join(lines) + "\n"
