"""``devenv share`` returns once the instance has the member's key: the SDK waits until
the workflow says the instance took exactly those keys, and says so in one line when it
could not be told (dev server, stand-in activities)."""

from __future__ import annotations

import pytest
from temporalio.testing import WorkflowEnvironment

from devenv.client.keys_in_place import wait_keys_in_place
from devenv.errors import NotAnsweringError
from devenv.models.sharing import shared_key_line
from devenv.models.state import Change, SharedUser
from tests.workflow.fakes import TEST_KEY, WF, make_state, running_env

BOB = SharedUser(name="bob", public_key=TEST_KEY)


async def test_it_returns_once_the_instance_has_the_key(
    dev_server_env: WorkflowEnvironment,
) -> None:
    state = make_state()
    async with running_env(dev_server_env.client, state, login_messages=True) as (fake, handle, _):
        await handle.execute_update(WF.change, Change(shared_with=[BOB]))
        await wait_keys_in_place(handle, [BOB])
        assert fake.logins[-1].login.shared_keys == [shared_key_line(BOB)]
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_an_instance_that_could_not_be_told_is_one_line(
    dev_server_env: WorkflowEnvironment,
) -> None:
    state = make_state()
    async with running_env(
        dev_server_env.client, state, login_messages=True, login_failure="host unreachable"
    ) as (_, handle, _running):
        await handle.execute_update(WF.change, Change(shared_with=[BOB]))
        with pytest.raises(NotAnsweringError) as failed:
            await wait_keys_in_place(handle, [BOB])
        message = str(failed.value)
        assert "could not be told the members' keys" in message and "\n" not in message
        assert "host unreachable" in message
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


def test_every_try_to_tell_the_keys_ends_before_share_gives_up() -> None:
    """The wait of ``devenv share`` outlasts every try of ``apply_login`` (with room for
    the tries themselves), so an instance that cannot be told is said, never timed out."""
    from devenv.client.keys_in_place import KEYS_TIMEOUT
    from devenv.workflows.policies import APPLY_LOGIN_RETRY

    retry = APPLY_LOGIN_RETRY
    assert retry.maximum_attempts > 1 and retry.maximum_interval is not None
    backoff = sum(
        min(
            retry.initial_interval.total_seconds() * retry.backoff_coefficient**attempt,
            retry.maximum_interval.total_seconds(),
        )
        for attempt in range(retry.maximum_attempts - 1)
    )
    assert backoff <= KEYS_TIMEOUT / 3, backoff
