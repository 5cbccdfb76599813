"""The ``owner_breaks`` activity against the real dev server: it lists the owner's other
environments (ended and running), reads their breaks with the report's data model, and
leaves out everyone else's and the asker's own."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from devenv.activities.owner_breaks import owner_breaks
from devenv.models.auto_threshold import OwnerBreaks, OwnerBreaksInput
from devenv.models.state import EnvState, Tuning
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import FakeBackend, make_state, report, running_worker, start, wait_for

WF = DevEnvironmentWorkflow
Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]


async def owned(client: Client, fake: FakeBackend, owner: str) -> Handle:
    state = make_state(inactivity=3600, tuning=Tuning(keepalive_seconds=5))
    state.spec.owner = owner
    handle = await start(client, fake, state)
    await wait_for(handle, lambda s: s.ready_at is not None)
    return handle


async def one_break(handle: Handle, seconds: float) -> None:
    """Use, leave for ``seconds`` (real time: the break is what is measured), come back."""
    for users in (1, 0):
        await handle.signal(WF.record_presence, report(users, datetime.now(UTC)))
        await wait_for(handle, lambda s, users=users: s.connections == users)  # type: ignore[misc]
    await asyncio.sleep(seconds)
    await handle.signal(WF.record_presence, report(1, datetime.now(UTC)))
    await wait_for(handle, lambda s: s.connections == 1)


async def test_the_owners_breaks_in_their_other_environments(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client = dev_server_env.client
    alice, bob = f"alice{uuid.uuid4().hex[:6]}", f"bob{uuid.uuid4().hex[:6]}"
    async with running_worker(client) as fake:
        ended = await owned(client, fake, alice)
        await one_break(ended, 2.5)
        await ended.execute_update(WF.request_stop, None)
        await ended.result()
        running = await owned(client, fake, alice)
        await one_break(running, 1.5)
        others = await owned(client, fake, bob)
        await one_break(others, 1.0)
        asker = await owned(client, fake, alice)
        await one_break(asker, 1.0)

        now = datetime.now(UTC)
        asked = OwnerBreaksInput(
            workflow_id=asker.id, owner=alice, since=now - timedelta(days=14), until=now
        )
        loop = asyncio.get_running_loop()
        give_up = loop.time() + 10
        read = OwnerBreaks()
        while read.environments < 2 and loop.time() < give_up:  # visibility lags a little
            read = await owner_breaks(client, asked)
        assert read.environments == 2
        lengths = sorted(b.seconds for b in read.breaks)
        assert len(lengths) == 2, lengths
        assert 1.0 <= lengths[0] <= 3.0 and 2.0 <= lengths[1] <= 4.0, lengths
        assert await owner_breaks(client, asked.model_copy(update={"owner": None})) == OwnerBreaks()
        for handle in (running, others, asker):
            await handle.execute_update(WF.request_stop, None)
            await handle.result()
