"""How long the ``group_presence`` activity takes to answer with N environments on the server.

Starts the embedded server's binary as ``devenv server`` does (the dev server on a SQLite
file with its write-ahead log, devenv's search attributes registered) and N running
``DevEnvironmentWorkflow`` executions carrying what real ones publish: their memo row and
``DevEnvGroup`` (groups of ``--group-size`` environments of one owner each). Nobody polls
their task queue, so they stay Running at no CPU cost. Then it times the activity's code
(``devenv.activities.group.group_presence``: one listing filtered by ``DevEnvGroup``, the
rows read from the memo) for ``--asks`` random groups, and the same answer read the way
``owner_breaks`` reads (every running environment listed, the owner's picked from memo)
for comparison.

    nice -n 19 python -m benchmarks.group_presence [--environments 10000] [--asks 50]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devenv.activities.group import group_presence
from devenv.models.group import GroupInput, presence_of
from devenv.models.state import WORKFLOW_TYPE, EnvSpec, EnvState, Status, workflow_id_for
from devenv.models.status import MEMO_KEY, EnvironmentStatus
from devenv.worker.binaries import temporal_cli
from devenv.worker.devserver import search_attribute_args

GROUP_ATTR = SearchAttributeKey.for_keyword("DevEnvGroup")
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBe bench"


async def fill(client: Client, environments: int, group_size: int, queue: str) -> list[GroupInput]:
    """Start the fleet; the groups, as their first member would ask."""
    gate = asyncio.Semaphore(64)
    groups: list[GroupInput] = []

    async def one(i: int) -> None:
        name = f"b{i}-{uuid.uuid4().hex[:6]}"
        group = f"g{i // group_size}"
        owner = f"user{i // group_size % 50}"
        spec = EnvSpec(name=name, user_public_key=KEY, owner=owner, group=group)
        state = EnvState(spec=spec, status=Status.RUNNING, idle_since=None, connections=i % 2)
        row = EnvironmentStatus.published(state).model_dump(mode="json", exclude={"cost"})
        if i % group_size == 0:
            groups.append(GroupInput(workflow_id=workflow_id_for(name), owner=owner, group=group))
        async with gate:
            await client.start_workflow(
                WORKFLOW_TYPE,
                state,
                id=workflow_id_for(name),
                task_queue=queue,
                memo={MEMO_KEY: row},
                search_attributes=TypedSearchAttributes([SearchAttributePair(GROUP_ATTR, group)]),
            )

    await asyncio.gather(*(one(i) for i in range(environments)))
    return groups


async def read_all(client: Client, asker: GroupInput) -> None:
    """For comparison: every running environment listed, the group picked from the memo."""
    rows = []
    query = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
    async for execution in client.list_workflows(query):
        memo = await execution.memo_value(MEMO_KEY, None, type_hint=dict)
        rows.append(EnvironmentStatus.model_validate(memo))
    presence_of(rows, asker)


def ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"


async def main(environments: int, group_size: int, asks: int) -> None:
    folder = tempfile.TemporaryDirectory(prefix="devenv-bench-groups-")
    async with await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=str(temporal_cli()),
        dev_server_database_filename=f"{folder.name}/temporal.db",  # on disk, as devenv runs it
        ui=False,
        dev_server_extra_args=[*search_attribute_args(), "--sqlite-pragma", "journal_mode=wal"],
    ) as env:
        client = env.client
        began = time.perf_counter()
        groups = await fill(client, environments, group_size, f"nobody-{uuid.uuid4().hex}")
        print(f"{environments} environments started in {time.perf_counter() - began:.1f} s")
        query = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
        while (await client.count_workflows(query)).count < environments:
            await asyncio.sleep(0.5)  # visibility catches up
        picked = random.Random(7).sample(groups, min(asks, len(groups)))
        timed: list[float] = []
        for asker in picked:
            start = time.perf_counter()
            seen = await group_presence(client, asker)
            timed.append(time.perf_counter() - start)
            assert seen.peers == group_size - 1, seen
        print(f"group_presence ({asks} asks, groups of {group_size}): {ms(timed)}")
        whole: list[float] = []
        for asker in picked[:3]:
            start = time.perf_counter()
            await read_all(client, asker)
            whole.append(time.perf_counter() - start)
        print(f"every running environment read instead (3 asks): {ms(whole)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environments", type=int, default=10_000)
    parser.add_argument("--group-size", type=int, default=3)
    parser.add_argument("--asks", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.environments, args.group_size, args.asks))
