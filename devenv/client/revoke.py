"""What removing a user does to the environments: their key is refused everywhere.

Every environment shared with them stops being shared with them, and returns once its
instance confirmed the new member keys (the same push as ``devenv unshare``: the local
instance's shared keys, an ssh host's authorized_keys). Every environment they own is
stopped (as ``devenv stop``, the workspace kept where the backend keeps one): the
owner's key is the instance's own, and an environment whose owner is gone would be
a shell nobody answers for. All at once; each within ``TIMEOUT``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from devenv.errors import DevenvError
from devenv.models.sharing import SHARED_MARK
from devenv.models.state import Status

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncClient, AsyncEnvironment
    from devenv.models.status import EnvironmentStatus

Step = Callable[["AsyncEnvironment", "EnvironmentStatus"], Awaitable[None]]
"""What is done to one environment."""
TIMEOUT = 60.0
"""Per environment: a stop or a push of member keys to its instance."""
POLL = 0.2
LOGIN_FAILED = "could not update the login banner"
"""The workflow's event when the push of the login settings (members' keys) failed."""


@dataclass
class Revocation:
    """What removing ``user`` did: environments no longer shared with them, environments
    of theirs stopped, and those that could not be reached (name, why)."""

    user: str
    unshared: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed


async def revoke(
    client: AsyncClient, user: str, *, by: str, timeout: float = TIMEOUT
) -> Revocation:
    """Refuse ``user``'s key in every running environment (see the module); returns
    once each instance confirmed it or could not be reached."""
    result = Revocation(user)
    listed = await client.list()
    for workflow_id in listed.unanswered:
        result.failed.append((workflow_id.removeprefix("devenv-"), "it did not answer"))
    jobs = []
    for row in listed:
        if row.status not in (Status.PROVISIONING, Status.RUNNING):
            continue
        if row.owner == user:
            jobs.append(_one(client, row, result.stopped, result, _stop(by, user, timeout)))
        elif user in row.shared_with:
            jobs.append(_one(client, row, result.unshared, result, _unshare(by, user, timeout)))
    await asyncio.gather(*jobs)
    for names in (result.unshared, result.stopped):
        names.sort()
    result.failed.sort()
    return result


async def _one(
    client: AsyncClient,
    row: EnvironmentStatus,
    done: list[str],
    result: Revocation,
    step: Step,
) -> None:
    try:
        env = await client.get(row.workflow_id)
        await step(env, row)
    except (DevenvError, TimeoutError) as problem:
        result.failed.append((row.name, str(problem) or "timed out"))
    else:
        done.append(row.name)


def _stop(by: str, user: str, timeout: float) -> Step:
    async def stop(env: AsyncEnvironment, row: EnvironmentStatus) -> None:
        await env.stop(wait=True, timeout=timeout, reason=f"stopped by {by}: user {user} removed")

    return stop


def _unshare(by: str, user: str, timeout: float) -> Step:
    async def unshare(env: AsyncEnvironment, row: EnvironmentStatus) -> None:
        seen = len((await env.state()).events)
        await env.update(shared_with=[name for name in row.shared_with if name != user], by=by)
        await asyncio.wait_for(_confirmed(env, user, seen), timeout)

    return unshare


async def _confirmed(env: AsyncEnvironment, user: str, seen: int) -> None:
    """Until the instance holds no key of ``user`` (or has ended, or takes no member
    keys); DevenvError if the workflow could not push the keys to it."""
    mark = f"{SHARED_MARK}{user}"
    while True:
        state = await env.state()
        failed = next((e for e in state.events[seen:] if e.message.startswith(LOGIN_FAILED)), None)
        if failed is not None:
            raise DevenvError(failed.message)
        if (
            state.status not in (Status.PROVISIONING, Status.RUNNING)
            or state.instance is None
            or not state.instance.login_messages
        ):
            return
        if (
            state.status == Status.RUNNING
            and state.login is not None
            and not any(line.endswith(mark) for line in state.login.shared_keys)
        ):
            return
        await asyncio.sleep(POLL)
