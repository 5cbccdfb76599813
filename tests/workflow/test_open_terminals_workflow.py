"""``connected_idle`` over hours of workflow time (the time-skipping server; the fake
monitor is played by signals): a connected session whose keepalives carry no new sign
of life ends the environment, warned in its terminal; one whose keepalives carry a
keystroke now and then keeps it however long."""

from __future__ import annotations

from datetime import timedelta

from temporalio.testing import WorkflowEnvironment

from devenv.models.config import UtilizationPolicy
from devenv.models.state import PresenceReport, Status, TerminationReason, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import make_state, messages, running_worker, start, wait_for, wait_running

WF = DevEnvironmentWorkflow
H = 3600
TUNING = Tuning(
    search_attributes=False, monitor=False, keepalive_seconds=1800, keepalive_bound_seconds=H
)


async def test_a_terminal_left_open_ends_it_and_keystrokes_keep_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client, login_messages=True) as fake:
        state = make_state(inactivity=30 * 60, tuning=TUNING)
        state.spec.connected_idle = 2 * H
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        connected_at = await env.get_current_time()
        await handle.signal(
            WF.record_presence, PresenceReport(connections=1, last_change=connected_at)
        )
        active = await wait_for(handle, lambda s: s.connections == 1)
        assert active.deadline_reason == TerminationReason.CONNECTED_IDLE
        assert active.deadline == active.connected_at + timedelta(hours=2)

        # Ten hours of work: a keystroke every 50 minutes, carried by the keepalives.
        for _ in range(12):
            await env.sleep(timedelta(minutes=50))
            now = await env.get_current_time()
            typed = PresenceReport(
                connections=1, last_change=connected_at, last_input=now, keepalive=True
            )
            await handle.signal(WF.record_presence, typed)
        alive = await wait_for(handle, lambda s: s.last_input is not None and s.last_input >= now)
        assert alive.status == Status.RUNNING and alive.warned_for is None
        assert not fake.tells, "nobody who types is warned"

        # Then the terminal is left open: the monitor's keepalives say it is connected,
        # with no new keystroke (a silent monitor would be another rule).
        for _ in range(2):
            await env.sleep(timedelta(minutes=50))
            await handle.signal(WF.record_presence, typed)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.CONNECTED_IDLE
    assert final.ended_at is not None and final.ended_at - now >= timedelta(hours=2)
    assert len(fake.tells) == 1 and "connected but idle for 2h" in fake.tells[0].text
    assert any(
        m.startswith("connected_idle 2h exceeded: no terminal input since") for m in messages(final)
    )


async def test_idle_gpus_end_it_while_connected_a_busy_sample_restarts_the_window(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        state = make_state(inactivity=30 * 60, tuning=TUNING)
        state.spec.utilization_policy = UtilizationPolicy(min_gpu_utilization=10, time_window=H)
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        t0 = await env.get_current_time()
        quiet = PresenceReport(connections=1, last_change=t0, gpu_quiet_since=t0)
        await handle.signal(WF.record_presence, quiet)
        watched = await wait_for(handle, lambda s: s.gpu_quiet_since is not None)
        assert watched.deadline_reason == TerminationReason.GPU_UNDERUTILIZED
        await env.sleep(timedelta(minutes=40))
        busy = quiet.model_copy(update={"gpu_quiet_since": None})
        await handle.signal(WF.record_presence, busy)
        await wait_for(handle, lambda s: s.gpu_quiet_since is None and s.deadline is None)
        await env.sleep(timedelta(minutes=10))
        t1 = await env.get_current_time()
        quiet_again = quiet.model_copy(update={"gpu_quiet_since": t1})
        await handle.signal(WF.record_presence, quiet_again)
        await env.sleep(timedelta(minutes=40))  # still connected: the monitor's keepalive
        keepalive = quiet_again.model_copy(update={"keepalive": True})
        await handle.signal(WF.record_presence, keepalive)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.GPU_UNDERUTILIZED
    assert final.ended_at is not None and final.ended_at - t1 >= timedelta(hours=1)
    assert final.ended_at - t0 >= timedelta(minutes=110), "the busy sample restarted the window"
    assert any(
        m.startswith("GPUs underutilized: every GPU under 10% for 1h") for m in messages(final)
    )
