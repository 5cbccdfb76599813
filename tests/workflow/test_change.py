"""The ``change`` update: one PATCH applied together, attributed in the events; sharing
with colleagues (validated keys, the instance told, the members told of changes)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from devenv.models.state import (
    Change,
    DurationSetting,
    EnvState,
    SharedUser,
    Status,
    TerminationReason,
)
from tests.workflow.fakes import (
    TEST_KEY,
    WF,
    H,
    make_state,
    messages,
    running_env,
    wait_for,
)

BOB_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob bob@laptop"
)
BOB = SharedUser(name="bob", public_key=BOB_KEY)


def alices() -> EnvState:
    """An environment alice owns, with a 2h idle threshold."""
    state = make_state(inactivity=2 * H)
    state.spec.owner = "alice"
    return state


async def test_a_change_applies_every_part_and_says_who_made_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=2 * H)) as (_fake, handle, _):
        answer = await handle.execute_update(
            WF.change,
            Change(
                inactivity=DurationSetting(seconds=12 * H),
                max_duration=DurationSetting(seconds=None),
                extend=H,
                by="bob",
            ),
        )
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert answer.inactivity_duration == 12 * H and answer.max_duration is None
    told = messages(final)
    assert any(m.startswith("inactivity threshold changed by bob from 2h to 12h") for m in told)
    assert any(m.startswith("max duration changed by bob from off to off") for m in told)
    assert any(m.startswith("deadline extended by 1h by bob to") for m in told)


async def test_a_lowered_threshold_that_ends_it_skips_the_rest(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_env(env.client, make_state(inactivity=2 * H)) as (_fake, handle, _):
        await env.sleep(H)
        answer = await handle.execute_update(
            WF.change, Change(inactivity=DurationSetting(seconds=60), extend=H, by="alice")
        )
        final = await handle.result()
    assert answer.terminating
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert not any("extended" in m for m in messages(final))


async def test_sharing_tells_the_instance_the_members_keys_and_the_banner_names_them(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    state = alices()
    async with running_env(client, state, login_messages=True) as (_fake, handle, _):
        await handle.execute_update(WF.change, Change(shared_with=[BOB], by="alice"))
        shared = await wait_for(handle, lambda s: s.login is not None and bool(s.login.shared_keys))
        await handle.execute_update(WF.change, Change(shared_with=[], by="alice"))
        unshared = await wait_for(handle, lambda s: s.login is not None and not s.login.shared_keys)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert shared.login is not None and unshared.login is not None
    assert shared.login.shared_keys == [
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBobBobBobBobBobBobBobBobBobBob "
        "devenv-shared:bob"
    ]
    assert "Shared with bob: they may extend it" in shared.login.banner
    assert "shared with bob by alice" in messages(shared)
    assert "no longer shared with bob by alice" in messages(unshared)
    assert "Shared with" not in unshared.login.banner


@pytest.mark.parametrize(
    ("users", "expected"),
    [
        ([SharedUser(name="bob", public_key="not a key")], "not one OpenSSH public key line"),
        (
            [SharedUser(name="bob", public_key='command="sh" ' + BOB_KEY)],
            "not one OpenSSH public key line",
        ),
        (
            [SharedUser(name="bob", public_key=BOB_KEY + "\nssh-ed25519 AAAA x")],
            "not one OpenSSH public key line",
        ),
        ([BOB, BOB], "'bob' is listed twice"),
        ([SharedUser(name="alice", public_key=TEST_KEY)], "'alice' owns it already"),
        ([SharedUser(name="Bob!", public_key=BOB_KEY)], "is not a user name"),
    ],
)
async def test_bad_members_are_refused_and_nothing_changes(
    time_skipping_env: WorkflowEnvironment, users: list[SharedUser], expected: str
) -> None:
    client = time_skipping_env.client
    state = alices()
    async with running_env(client, state) as (_fake, handle, _):
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(WF.change, Change(shared_with=users, by="alice"))
        assert expected in str(refused.value.cause)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert final.shared_with == [] and final.status == Status.TERMINATED


async def test_members_are_told_of_a_change_on_the_webhook_with_who_made_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    state = alices()
    state.spec.notify_webhook = "wh-" + "1" * 24
    async with running_env(client, state) as (fake, handle, _):
        await handle.execute_update(WF.change, Change(extend=H, by="alice"))  # not shared yet
        await handle.execute_update(WF.change, Change(shared_with=[BOB], by="alice"))
        await handle.execute_update(
            WF.change, Change(inactivity=DurationSetting(seconds=12 * H), by="bob")
        )
        await wait_for(handle, lambda s: len(fake.notices) >= 2)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    shared, changed = fake.notices
    assert (shared.reason, shared.by) == ("changed", "alice")
    assert shared.text.endswith("shared with bob by alice")
    assert (changed.reason, changed.by) == ("changed", "bob")
    assert changed.text.startswith(f"{state.spec.name}: inactivity threshold changed by bob")
    assert changed.deadline is not None
