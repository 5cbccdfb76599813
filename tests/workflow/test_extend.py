"""``--extend X`` pushes the deadline in force by X, and never further than X past what
the rules alone say: an extension of the max_duration end made while in use must not
keep an idle environment for an hour once its user left. A ``--stop-at`` that replaces
an extension says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment

from devenv.models.state import TerminationReason
from devenv.workflows.display import login_banner
from tests.workflow.fakes import (
    WF,
    H,
    make_state,
    messages,
    report,
    running_worker,
    start,
    utc,
    wait_for,
    wait_running,
)


async def test_an_extension_made_in_use_adds_at_most_its_length_once_the_user_left(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=30, max_duration=H))
        running = await wait_running(handle)
        assert running.created_at is not None
        arrived = utc(running.events[-1].at)
        await handle.signal(WF.record_presence, report(1, arrived))
        await wait_for(handle, lambda s: s.connections == 1)
        answer = await handle.execute_update(WF.extend, 60)
        assert answer.deadline == running.created_at + timedelta(hours=1, minutes=1)

        await handle.signal(WF.record_presence, report(0, arrived))
        left = await wait_for(handle, lambda s: s.connections == 0 and s.idle_since is not None)
        assert left.idle_since is not None
        # The idle rule's 30 s, plus the minute asked for; not max_duration's end + 1m.
        assert left.deadline == left.idle_since + timedelta(seconds=90)
        assert left.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert final.ended_at is not None
    assert final.ended_at - left.idle_since < timedelta(seconds=120)


async def test_an_extension_of_an_idle_deadline_still_gives_its_whole_length(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H, max_duration=3 * H))
        running = await wait_running(handle)
        assert running.deadline is not None
        answer = await handle.execute_update(WF.extend, 2 * H)
        # Past max_duration's end (3h after creation): what was asked, exactly.
        assert answer.deadline == running.deadline + timedelta(hours=2)
        assert answer.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_a_stop_at_after_an_extension_says_the_extension_no_longer_holds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state(inactivity=2 * H))
        running = await wait_running(handle)
        assert running.deadline is not None
        extended = await handle.execute_update(WF.extend, H)
        assert extended.deadline is not None
        stop_at = running.deadline + timedelta(minutes=30)
        answer = await handle.execute_update(WF.set_stop_at, stop_at)
        assert answer.deadline == running.deadline, "the idle rule's own deadline again"
        state = await wait_for(handle, lambda s: s.deadline_floor is None)
        await handle.execute_update(WF.request_stop, None)
        await handle.result()
    event = next(m for m in messages(state) if m.startswith("scheduled stop at"))
    assert event.endswith(f"{extended.deadline:%H:%M:%S}Z no longer holds"), event
    assert "; the extension to " in event


def test_the_login_banner_states_the_capped_extension() -> None:
    state = make_state(inactivity=30, max_duration=H)
    state.deadline_floor = datetime(2026, 12, 7, 2, 27, 15, tzinfo=UTC)
    state.deadline_extension = 60
    assert (
        "  Extended: not before 2026-12-07 02:27Z, unless its rules end it before "
        "2026-12-07 02:26Z: then 1m after them.\n"
    ) in login_banner(state)
