"""``keep_alive: group`` on the real dev server: an idle environment is kept alive while a
peer of its group (same owner) is in use, read from the visibility store by the real
``group_presence`` activity, and ends once the whole group has been idle long enough."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devenv.models.state import EnvState, Status, TerminationReason, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import FakeBackend, make_state, report, running_worker, start, wait_for

WF = DevEnvironmentWorkflow
Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]
KEPT = "kept alive by group"


async def member(
    client: Client, fake: FakeBackend, owner: str, group: str, inactivity: int, keep: bool
) -> Handle:
    state = make_state(inactivity=inactivity, tuning=Tuning(keepalive_seconds=5))
    state.spec.owner, state.spec.group = owner, group
    state.spec.keep_alive = "group" if keep else "self"
    handle = await start(client, fake, state)
    await wait_for(handle, lambda s: s.status == Status.RUNNING)
    return handle


def kept(s: EnvState) -> list[str]:
    return [e.message for e in s.events if e.message.startswith(KEPT)]


async def test_an_idle_environment_lives_while_its_group_is_in_use_then_ends(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    owner, group = f"alice{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    async with running_worker(client) as fake:
        cpu = await member(client, fake, owner, group, 3600, keep=False)
        await cpu.signal(WF.record_presence, report(1, datetime.now(UTC)))
        await wait_for(cpu, lambda s: s.connections == 1)
        # Another owner's environment in the same group name, in use: it keeps nothing.
        bobs = await member(client, fake, f"bob{uuid.uuid4().hex[:6]}", group, 3600, keep=False)
        await bobs.signal(WF.record_presence, report(1, datetime.now(UTC)))
        gpu = await member(client, fake, owner, group, 3, keep=True)

        # Past two of its 3 s deadlines, kept each time because cpu is in use.
        state = await wait_for(gpu, lambda s: len(kept(s)) >= 2, timeout=30)
        assert state.status == Status.RUNNING
        assert kept(state)[0] == f"{KEPT} {group}: {cpu.id.removeprefix('devenv-')} is in use"
        assert not fake.probes, "a kept environment is not probed: it is not ending"

        await cpu.signal(WF.record_presence, report(0, datetime.now(UTC)))
        left = (await wait_for(cpu, lambda s: s.connections == 0)).idle_since
        assert left is not None
        ended = await gpu.result(rpc_timeout=timedelta(seconds=30))
        assert ended.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        assert ended.ended_at is not None and ended.ended_at >= left + timedelta(seconds=3)
        for handle in (cpu, bobs):
            await handle.execute_update(WF.request_stop, None)
            await handle.result()


async def test_no_warning_while_the_group_is_in_use_then_one_before_the_end(
    dev_server_env: WorkflowEnvironment,
) -> None:
    """The group is asked when the warning is due, so a kept environment warns nobody."""
    client = dev_server_env.client
    owner, group = f"alice{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    async with running_worker(client) as fake:
        cpu = await member(client, fake, owner, group, 3600, keep=False)
        await cpu.signal(WF.record_presence, report(1, datetime.now(UTC)))
        await wait_for(cpu, lambda s: s.connections == 1)
        state = make_state(inactivity=4, tuning=Tuning(keepalive_seconds=5))
        state.spec.owner, state.spec.group, state.spec.keep_alive = owner, group, "group"
        state.spec.warn_before = 2
        gpu = await start(client, fake, state)
        kept_twice = await wait_for(gpu, lambda s: len(kept(s)) >= 2, timeout=30)
        assert not [e for e in kept_twice.events if e.message.startswith("warning:")]
        assert not fake.notices
        await cpu.signal(WF.record_presence, report(0, datetime.now(UTC)))
        ended = await gpu.result(rpc_timeout=timedelta(seconds=30))
        assert ended.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        warned = [e.message for e in ended.events if e.message.startswith("warning:")]
        assert len(warned) == 1, warned
        await cpu.execute_update(WF.request_stop, None)
        await cpu.result()


async def test_a_peer_used_after_this_one_went_idle_moves_its_idle_clock_there(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    owner, group = f"alice{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    async with running_worker(client) as fake:
        cpu = await member(client, fake, owner, group, 3600, keep=False)
        await cpu.signal(WF.record_presence, report(1, datetime.now(UTC)))
        await wait_for(cpu, lambda s: s.connections == 1)
        gpu = await member(client, fake, owner, group, 5, keep=True)
        ready = (await wait_for(gpu, lambda s: s.idle_since is not None)).idle_since
        assert ready is not None
        # cpu's user works on for 1.5 s after gpu went idle (what is measured), then leaves.
        await asyncio.sleep(1.5)
        await cpu.signal(WF.record_presence, report(0, datetime.now(UTC)))
        left = (await wait_for(cpu, lambda s: s.connections == 0)).idle_since
        assert left is not None and left > ready
        ended = await gpu.result(rpc_timeout=timedelta(seconds=30))
        assert ended.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        name = cpu.id.removeprefix("devenv-")
        until = left.strftime("%H:%M:%S")
        assert kept(ended) == [f"{KEPT} {group}: {name} was in use until {until}Z"]
        assert ended.ended_at is not None and ended.ended_at >= left + timedelta(seconds=5)
        await cpu.execute_update(WF.request_stop, None)
        await cpu.result()


async def test_cancelling_the_workflow_while_it_asks_its_group_still_ends_the_instance(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    owner, group = f"alice{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    gate = asyncio.Event()
    async with running_worker(client, group_gate=gate) as fake:
        try:
            gpu = await member(client, fake, owner, group, 2, keep=True)
            loop = asyncio.get_running_loop()
            give_up = loop.time() + 15
            while not fake.group_calls and loop.time() < give_up:
                await asyncio.sleep(0.05)
            assert fake.group_calls, "the group was never asked"
            await gpu.cancel()
            ended = await gpu.result(rpc_timeout=timedelta(seconds=30))
            assert ended.termination_reason == TerminationReason.STOPPED_BY_USER
            assert len(fake.terminates) == 1, "the instance is terminated, not leaked"
        finally:
            gate.set()


async def test_a_group_that_cannot_be_read_keeps_nothing(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    owner, group = f"alice{uuid.uuid4().hex[:6]}", f"g{uuid.uuid4().hex[:8]}"
    async with running_worker(client, group_error="visibility unavailable") as fake:
        gpu = await member(client, fake, owner, group, 2, keep=True)
        ended = await gpu.result(rpc_timeout=timedelta(seconds=30))
        assert ended.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED
        told = [e.message for e in ended.events if "presence could not be read" in e.message]
        assert told and "visibility unavailable" in told[0], [e.message for e in ended.events]
