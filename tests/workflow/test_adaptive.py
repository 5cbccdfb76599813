"""``inactivity_duration: auto`` and ``idle_budget`` on the time-skipping test server:
weeks of a user's breaks pass in seconds (the monitor played by signals, see fakes.py)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devenv.models.auto_threshold import Break, OwnerBreaks
from devenv.models.config import InactivityBounds
from devenv.models.state import (
    EnvSpec,
    EnvState,
    PresenceReport,
    Status,
    TerminationReason,
    Tuning,
)
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import (
    TEST_KEY,
    WF,
    messages,
    running_worker,
    start,
    utc,
    wait_for,
    wait_running,
)

Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]
M = 60
TUNING = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=30 * 86_400)
"""No monitor: its silence bound must not count a night of jobs as idleness."""


def adaptive_state(
    *,
    auto: InactivityBounds | None = None,
    inactivity: int | None = None,
    price: float | None = None,
    budget: float | None = None,
) -> EnvState:
    spec = EnvSpec(
        name=f"t-{uuid.uuid4().hex[:10]}",
        user_public_key=TEST_KEY,
        owner="alice",
        inactivity_duration=auto.max if auto is not None else inactivity,
        inactivity_auto=auto,
        price_per_hour=price,
        idle_budget=budget,
    )
    return EnvState(spec=spec, tuning=TUNING)


async def presence(env: WorkflowEnvironment, handle: Handle, users: int, jobs: int = 0) -> EnvState:
    """Play the monitor: who is present now; the state once the workflow took it in."""
    now = await env.get_current_time()
    line = PresenceReport(connections=users, jobs=jobs, last_change=now)
    await handle.signal(WF.record_presence, line)
    return await wait_for(handle, lambda s: (s.connections, s.jobs) == (users, jobs))


async def test_auto_follows_weeks_of_breaks_and_never_ends_a_break(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Three weeks of a user whose breaks follow their history: the owner's other
    environment had a 45m lunch and a 25m break; the first week here has 45m lunches,
    every day 10m coffees. The threshold starts at the max, covers the longest break of
    the last 14 days with the margin after each break, comes down once the lunches leave
    the window, and no break ever ends the environment."""
    env = time_skipping_env
    began = utc(await env.get_current_time())
    other = OwnerBreaks(
        breaks=[
            Break(ended=began - timedelta(days=3), seconds=45 * M),
            Break(ended=began - timedelta(days=2), seconds=25 * M),
        ],
        environments=1,
    )
    bounds = InactivityBounds(min=10 * M, max=4 * 3600)
    seen: dict[tuple[object, str], None] = {}
    async with running_worker(env.client, owner_breaks=other) as fake:
        handle = await start(env.client, fake, adaptive_state(auto=bounds))
        running = await wait_running(handle)
        first = await wait_for(handle, lambda s: s.auto is not None and s.auto.others_read)
        assert running.spec.inactivity_duration == 4 * 3600, "it starts at the max"
        assert "auto: read 2 breaks in 14d from the owner's 1 other environment" in messages(first)
        assert [ask.owner for ask in fake.owner_asks] == ["alice"]
        thresholds: list[int | None] = []
        for day in range(22):
            await presence(env, handle, 1)  # morning
            breaks = [10 * M, 45 * M, 10 * M] if day < 7 else [10 * M, 10 * M]
            for minutes in breaks:
                await env.sleep(timedelta(hours=1, minutes=30))
                await presence(env, handle, 0)
                await env.sleep(timedelta(seconds=minutes))
                back = await presence(env, handle, 1)
                assert back.status == Status.RUNNING, f"day {day}: a break ended it"
                seen.update(((e.at, e.message), None) for e in back.events)
            thresholds.append(back.spec.inactivity_duration)
            await env.sleep(timedelta(hours=2))
            await presence(env, handle, 0, jobs=1)  # evening: a job runs overnight
            tomorrow = began + timedelta(days=day + 1)
            await env.sleep(tomorrow - utc(await env.get_current_time()))
        assert thresholds[0] == 68 * M  # the 45m lunch x 1.5
        assert thresholds[20] == 68 * M  # day 6's lunch ended under 14 days ago
        assert thresholds[21] == 15 * M  # only 10m coffees in the window now
        auto = [text for _, text in seen if text.startswith("auto: inactivity")]
        assert auto[0] == "auto: inactivity 4h -> 1h8m (longest of 3 breaks in 14d: 45m)"
        assert len(auto) == 2
        assert auto[1].startswith("auto: inactivity 1h8m -> 15m (longest of ")
        assert auto[1].endswith(" breaks in 14d: 10m)")
        left = await presence(env, handle, 0)  # gone for good
        assert left.deadline == left.idle_since + timedelta(minutes=15)
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert any(m.startswith("inactivity threshold 15m exceeded") for m in messages(final))
    assert final.auto is not None and len(final.auto.breaks) <= 100


async def test_auto_without_the_owners_history_learns_from_its_own(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    bounds = InactivityBounds(min=5 * M, max=2 * 3600)
    async with running_worker(env.client, owner_breaks_error="server unreachable") as fake:
        handle = await start(env.client, fake, adaptive_state(auto=bounds))
        read = await wait_for(handle, lambda s: s.auto is not None and s.auto.others_read)
        assert any(
            m.startswith("auto: the owner's other environments could not be read")
            for m in messages(read)
        )
        await presence(env, handle, 1)
        for minutes in (4, 2, 3):
            await presence(env, handle, 0)
            await env.sleep(timedelta(minutes=minutes))
            back = await presence(env, handle, 1)
        assert back.spec.inactivity_duration == 6 * M
        assert messages(back)[-1] == "auto: inactivity 2h -> 6m (longest of 3 breaks in 14d: 4m)"
        # An explicit threshold replaces the learned one: auto is off from then on.
        answer = await handle.execute_update(WF.set_inactivity, 3600)
        assert answer.inactivity_duration == 3600
        off = await wait_for(handle, lambda s: s.spec.inactivity_auto is None)
        assert "auto off" in messages(off)[-1]
        await presence(env, handle, 0)
        await env.sleep(timedelta(minutes=2))
        still = await presence(env, handle, 1)
        assert still.spec.inactivity_duration == 3600
        await handle.execute_update(WF.request_stop, None)
        await handle.result()


async def test_a_stop_does_not_wait_for_the_owners_history(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The history is read in the background: a stop while it hangs ends the environment
    at once (the read is cancelled), and presence is taken meanwhile."""
    env = time_skipping_env
    gate = asyncio.Event()
    async with running_worker(env.client, owner_breaks_gate=gate) as fake:
        try:
            bounds = InactivityBounds(min=5 * M, max=2 * 3600)
            handle = await start(env.client, fake, adaptive_state(auto=bounds))
            await wait_for(handle, lambda s: s.status == Status.RUNNING and bool(fake.owner_asks))
            await presence(env, handle, 1)
            await handle.execute_update(WF.request_stop, "done")
            final = await asyncio.wait_for(handle.result(), timeout=10)
        finally:
            gate.set()
    assert final.termination_reason == TerminationReason.STOPPED_BY_USER
    assert final.auto is not None and not final.auto.others_read


async def test_idle_budget_ends_it_at_the_money_deadline(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """$2 on a $30/h box (the configured price overrides the backend's): 4 minutes."""
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, adaptive_state(price=30.0, budget=2.0))
        running = await wait_running(handle)
        assert running.instance is not None and running.instance.price_per_hour == 30.0
        assert running.deadline == running.ready_at + timedelta(minutes=4)
        assert running.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED
        final = await handle.result()
    assert final.termination_reason == TerminationReason.IDLE_BUDGET_EXCEEDED
    ended = [m for m in messages(final) if "spent" in m]
    assert ended and ended[0].startswith("idle budget $2 at $30/h (4m) spent (idle since ")
    assert messages(final)[-1] == "terminated: idle_budget_exceeded"


async def test_the_earlier_of_budget_and_inactivity_wins(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """$2 on a $0.10/h box lasts 20h: the 1h inactivity rule ends it first."""
    env = time_skipping_env
    async with running_worker(env.client) as fake:
        state = adaptive_state(price=0.1, budget=2.0, inactivity=3600)
        handle = await start(env.client, fake, state)
        running = await wait_running(handle)
        assert running.deadline_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        final = await handle.result()
    assert final.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
