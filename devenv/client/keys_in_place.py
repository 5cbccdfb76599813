"""``devenv share`` returns once the members' keys are in place on the instance.

The workflow records the change at once and tells the instance in the background (the
``apply_login`` activity); a colleague told "shared with bob" must be able to log in at
once, so the SDK waits until the workflow says the instance took exactly these keys.
"""

from __future__ import annotations

import asyncio

from temporalio.client import WorkflowHandle

from devenv.errors import NotAnsweringError
from devenv.models.sharing import shared_key_line
from devenv.models.state import EnvState, SharedUser, Status

KEYS_TIMEOUT = 30.0
"""The instance is told within a few activity tries; past this the change stands, unsaid."""
POLL = 0.05


async def wait_keys_in_place(
    handle: WorkflowHandle[object, EnvState],
    members: list[SharedUser],
    timeout: float = KEYS_TIMEOUT,
) -> None:
    """Return once the instance confirmed ``members``' keys (and no other member's).

    Nothing to wait for when it is not running (a starting instance gets them when it is
    ready; an ending one needs none) or shows no login settings. NotAnsweringError, in
    one line, when the instance could not be told or did not confirm in ``timeout``.
    """
    from devenv.client.lookup import fetch_state

    wanted = [shared_key_line(member) for member in members]
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        state = await fetch_state(handle)
        instance = state.instance
        if state.status != Status.RUNNING or instance is None or not instance.login_messages:
            return
        if state.login is not None and state.login.shared_keys == wanted:
            if state.login_error is None:
                return
            raise NotAnsweringError(
                f"shared_with: recorded, but the instance of {state.spec.name} could not "
                f"be told the members' keys ({state.login_error}); the next change tries "
                f"again (`devenv logs {state.spec.name}`)"
            )
        if loop.time() >= give_up:
            raise NotAnsweringError(
                f"shared_with: recorded, but the instance of {state.spec.name} did not "
                f"confirm the members' keys within {timeout:g}s; is its worker running? "
                f"(`devenv logs {state.spec.name}`)"
            )
        await asyncio.sleep(POLL)
