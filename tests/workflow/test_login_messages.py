"""The login banner kept current on the instance, and the warning written into open
terminals before a fixed end (time-skipping server, stand-in activities)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from devenv.models.state import TerminationReason, Tuning
from tests.workflow.fakes import (
    WF,
    H,
    make_state,
    messages,
    report,
    running_env,
    running_worker,
    start,
    utc,
    wait_for,
)

CONNECTED = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=10 * H)
"""No monitor, and a connected user is believed without keepalives for 10 hours."""


async def test_the_banner_states_the_rules_and_follows_every_change(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    state = make_state(inactivity=2 * H, max_duration=24 * H)
    async with running_env(client, state, login_messages=True) as (fake, handle, running):
        await wait_for(handle, lambda s: s.login is not None)
        await handle.execute_update(WF.set_inactivity, 12 * H)
        await wait_for(handle, lambda s: s.login is not None and "12h" in s.login.banner)
        await handle.execute_update(WF.extend, 30 * H)
        await wait_for(handle, lambda s: s.login is not None and "Extended" in s.login.banner)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    assert running.created_at is not None
    first, second, third = (login.login.banner for login in fake.logins)
    name = state.spec.name
    end = utc(running.created_at) + timedelta(hours=24)
    assert first.startswith(f"devenv: this is {name!r} (backend local).\n")
    assert "Idle rule: terminated 2h after the last user leaves" in first
    assert f"Ends at {end:%Y-%m-%d %H:%M}Z even in use (max_duration 1d)." in first
    assert f"Keep it longer: devenv signal {name} --extend 1h" in first
    assert "terminated 12h after the last user leaves" in second
    assert "Extended: not before" in third
    assert all(login.instance.login_messages for login in fake.logins)


async def test_instances_without_a_banner_are_never_asked(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_env(client, make_state(inactivity=2 * H)) as (fake, handle, _):
        await handle.execute_update(WF.set_inactivity, 3 * H)
        await handle.execute_update(WF.request_stop, None)
        final = await handle.result()
    assert fake.logins == [] and fake.tells == []
    assert final.login is None


async def test_a_fixed_end_is_written_once_into_the_terminals_of_a_connected_user(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    state = make_state(inactivity=H, max_duration=2 * H, tuning=CONNECTED)
    async with running_env(env.client, state, login_messages=True, open_terminals=2) as (
        fake,
        handle,
        _,
    ):
        await handle.signal(WF.record_presence, report(1, utc(await env.get_current_time())))
        await wait_for(handle, lambda s: s.connections == 1)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.MAX_DURATION_EXCEEDED
    [tell] = fake.tells
    assert "terminates at" in tell.text and "(in 10m; max_duration 2h)" in tell.text
    assert f"devenv signal {state.spec.name} --extend 1h" in tell.text
    assert "warning written to 2 open terminals" in messages(final)


async def test_nobody_connected_means_no_terminal_to_write_to(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, login_messages=True) as fake:
        handle = await start(client, fake, make_state(inactivity=H, max_duration=2 * H))
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert any(m.startswith("warning:") for m in messages(final))
    assert fake.tells == []
