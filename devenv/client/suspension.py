"""Waiting for a suspend or a resume to finish, whichever transport carries the calls.

The request is an update the workflow answers at once (SUSPENDING, RESUMING); the work
is an activity that follows. Both waits poll the status: a resume that the backend could
not do leaves the environment SUSPENDED again, a suspend that failed RUNNING again, and
the environment's last event says why.
"""

from __future__ import annotations

import asyncio

from devenv.client.options import Progress
from devenv.client.transports.base import EnvironmentTransport, Ready
from devenv.errors import (
    ChangeRejectedError,
    EnvironmentEndedError,
    NotAnsweringError,
    ProvisioningFailedError,
)
from devenv.models.state import Status
from devenv.models.status import EnvironmentStatus

POLL_SECONDS = 0.1
SUSPEND_WAIT_TIMEOUT = 300.0
"""``suspend(wait=True)``: seconds to wait until it is suspended."""
RESUME_WAIT_TIMEOUT = 600.0
"""``resume()``: seconds to wait until it accepts SSH (a cloud machine starts in minutes)."""
ENDING = (Status.TERMINATING, Status.TERMINATED, Status.FAILED)


async def wait_suspended(
    env: EnvironmentTransport, say: Progress, timeout: float = SUSPEND_WAIT_TIMEOUT
) -> EnvironmentStatus:
    """Until SUSPENDED; ChangeRejectedError if it is running again (the suspend failed)."""
    status = await _wait_while(env, (Status.SUSPENDING,), "Suspending", say, timeout)
    if status.status == Status.SUSPENDED:
        return status
    if status.status in ENDING:
        raise EnvironmentEndedError(f"environment {env.name!r} is {status.status.value}")
    raise ChangeRejectedError(
        f"{env.name}: could not be suspended ({await _last_event(env)}); it is "
        f"{status.status.value}"
    )


async def wait_resumed(
    env: EnvironmentTransport, say: Progress, timeout: float = RESUME_WAIT_TIMEOUT
) -> Ready:
    """Until it accepts SSH again; ProvisioningFailedError if the resume failed (it stays
    suspended), EnvironmentEndedError if it ended meanwhile."""
    waiting = (Status.SUSPENDING, Status.RESUMING)
    status = await _wait_while(env, waiting, "Resuming", say, timeout)
    if status.status == Status.RUNNING:
        return Ready(status, await env.ssh_access(None))
    if status.status in ENDING:
        raise EnvironmentEndedError(f"environment {env.name!r} is {status.status.value}")
    raise ProvisioningFailedError(
        f"environment {env.name!r} could not resume: {await _last_event(env)} "
        f"(details: `devenv logs {env.name}`)"
    )


async def _wait_while(
    env: EnvironmentTransport,
    statuses: tuple[Status, ...],
    doing: str,
    say: Progress,
    timeout: float,
) -> EnvironmentStatus:
    loop = asyncio.get_running_loop()
    began = loop.time()
    while (status := await env.status()).status in statuses:
        waited = loop.time() - began
        if waited > timeout:
            raise NotAnsweringError(
                f"{env.workflow_id}: still {status.status.value} after {timeout:.0f}s; "
                f"see `devenv logs {env.name}`"
            )
        say(f"{doing} {env.name}… {waited:.0f}s", True)
        await asyncio.sleep(POLL_SECONDS)
    return status


async def _last_event(env: EnvironmentTransport) -> str:
    events = await env.events()
    return events[-1].message if events else "no event recorded"
