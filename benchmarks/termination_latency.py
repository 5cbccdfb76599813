"""Measures how event driven devenv is, on the embedded default (local backend).

For each round: start an environment, connect with the real `ssh`, disconnect,
and measure
  * disconnect -> idle: from the ssh client's exit to the moment the workflow's
    state (what `devenv ps` shows) says idle, polled every 10 ms;
  * deadline -> terminated: from the deadline (idle_since + inactivity_duration,
    from the workflow's own state) to the moment the instance's SSH port closes.

Run from the repository root:  python -m benchmarks.termination_latency [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from devenv.models.state import EnvState
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.e2e.harness import Devenv, port_open

EXAMPLE = Path(__file__).parents[1] / "examples" / "dev.yml"
INACTIVITY_SECONDS = 2


async def state_of(client: Client, name: str) -> EnvState:
    handle = client.get_workflow_handle(f"devenv-{name}")
    return await handle.query(DevEnvironmentWorkflow.status)


async def one_round(world: Devenv, client: Client, index: int) -> tuple[float, float]:
    name = f"bench-{index}"
    world.run("start", str(EXAMPLE), "--name", name, "--inactivity", f"{INACTIVITY_SECONDS}s")
    port = world.instance_port(name)
    session = world.open_session(name)
    session.send("echo connected\n")
    session.expect("connected")
    while (await state_of(client, name)).connections != 1:
        await asyncio.sleep(0.01)
    session.close()
    disconnected = time.monotonic()
    while True:
        state = await state_of(client, name)
        if state.connections == 0:
            break
        await asyncio.sleep(0.01)
    to_idle = time.monotonic() - disconnected
    deadline = state.deadline
    assert deadline is not None
    while port_open(port):
        await asyncio.sleep(0.01)
    closed = datetime.now(UTC)
    return to_idle, (closed - deadline).total_seconds()


async def main(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        world = Devenv(Path(tmp))
        server = world.start_server()
        try:
            client = await Client.connect(
                f"127.0.0.1:{world.temporal_port}", data_converter=pydantic_data_converter
            )
            results = [await one_round(world, client, i) for i in range(rounds)]
        finally:
            world.cleanup()
            server.terminate()
            server.wait(20)
    to_idle = [r[0] for r in results]
    to_end = [r[1] for r in results]

    def line(label: str, values: list[float]) -> str:
        return (
            f"{label:28} min {min(values) * 1000:7.0f} ms   median "
            f"{statistics.median(values) * 1000:7.0f} ms   max {max(values) * 1000:7.0f} ms"
        )

    print(f"devenv latency, {rounds} rounds, local backend, {os.cpu_count()} cores")
    print(line("disconnect -> ps idle", to_idle))
    print(line("deadline -> port closed", to_end))
    print(json.dumps({"disconnect_to_idle_s": to_idle, "deadline_to_terminated_s": to_end}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args().rounds))
