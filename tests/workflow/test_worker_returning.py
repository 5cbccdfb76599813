"""A change waits a moment for a worker that is polling again, instead of refusing.

A Temporal server that just restarted lists no poller until each worker's next poll
reaches it, seconds later (0.1-3.3 s after `devenv ps` answered again, measured with the
embedded server killed three times): `devenv signal` or `stop` in that window must not
say "no devenv worker is running".
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from devenv.client.async_client import AsyncClient
from devenv.models.state import Tuning, workflow_id_for
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import make_state, running_worker


async def test_a_change_waits_for_a_worker_that_polls_a_second_later(
    dev_server_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    client = dev_server_env.client
    queue = f"tq-{uuid.uuid4().hex[:10]}"
    state = make_state(tuning=Tuning(monitor=False))
    await client.start_workflow(
        DevEnvironmentWorkflow.run,
        state,
        id=workflow_id_for(state.spec.name),
        task_queue=queue,
    )
    sdk = AsyncClient(address=client.service_client.config.target_host, home=tmp_path / "home")
    env = await sdk.get(state.spec.name)
    change = asyncio.create_task(env.update(max_duration="3h"))
    await asyncio.sleep(1.0)  # the scenario itself: the worker polls again a second later
    assert not change.done(), "refused (or applied) with no worker polling"
    async with running_worker(client, task_queue=queue):
        status = await asyncio.wait_for(change, 30)
        assert status.max_duration == 3 * 3600
        await env.stop(wait=True)
