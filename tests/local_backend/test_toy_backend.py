"""A new backend is one module and one registration line; nothing else changes.

The toy backend (tests/local_backend/toy_backend.py) runs through the real workflow, the
real worker and the SDK on the dev server: its configuration is validated by its
own model, its activities run on the shared queue, presence drives the deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

import devenv
from devenv.backends import registry
from devenv.client.autostart import has_host_worker, stop_background
from devenv.errors import InvalidValueError, ProvisioningFailedError
from devenv.models.status import EnvironmentStatus
from devenv.settings import Settings, watch_task_queue
from devenv.worker.worker import build_workers
from tests.local_backend import toy_backend
from tests.local_backend.toy_backend import ToyBackend


@pytest.fixture
async def toy_world(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[devenv.AsyncClient]:
    # The registration line:
    registry.register(toy_backend.ENTRY)
    client = dev_server_env.client
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", client.service_client.config.target_host)
    settings = Settings.load()
    try:
        async with contextlib.AsyncExitStack() as stack:
            for worker in build_workers(client, settings, watch_task_queue()):
                await stack.enter_async_context(worker)
            # Otherwise `start` sees no worker of this host yet and launches one.
            await until(lambda: has_host_worker(client, settings), "the host worker to poll")
            yield devenv.AsyncClient()
    finally:
        registry.unregister("toy")
        assert stop_background(settings) is None, "no background worker may have been started"


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> EnvironmentStatus:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert loop.time() < give_up, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


TOY = {"type": "dev-environment", "backend": "toy", "toy": {"region": "north"}}


async def test_the_toy_backend_validates_its_own_section(toy_world: devenv.AsyncClient) -> None:
    with pytest.raises(InvalidValueError) as raised:
        await toy_world.start({**TOY, "toy": {"regoin": "north"}}, name="toy-typo")
    assert str(raised.value).startswith(
        "config: toy: unknown key 'regoin': did you mean 'region'? accepted keys: region"
    )
    with pytest.raises(InvalidValueError, match=r"^config: toy\.region: invalid value 'east'"):
        await toy_world.start({**TOY, "toy": {"region": "east"}}, name="toy-east")


async def test_the_toy_backend_lives_and_ends_like_any_other(toy_world: devenv.AsyncClient) -> None:
    env = await toy_world.start(TOY, name="toy-one", inactivity_duration="2s")
    state = await env.state()
    assert state.instance is not None and state.instance.data == {"region": "north"}
    assert state.spec.host_task_queue is None, "a remote backend's activities: any worker"
    toy = ToyBackend.instances[state.instance.instance_id]

    toy.set(1)

    async def active() -> EnvironmentStatus | None:
        status = await env.status()
        return status if status.activity == "active" else None

    await until(active, "the toy user to count")
    toy.set(0)

    async def ended() -> EnvironmentStatus | None:
        status = await env.status()
        return status if status.status == "terminated" else None

    final = await until(ended, "the idle toy to end")
    assert final.termination_reason == "inactivity_duration_exceeded"
    assert state.instance.instance_id in ToyBackend.terminated


async def test_a_provisioning_error_fails_at_once_and_is_cleaned_up(
    toy_world: devenv.AsyncClient,
) -> None:
    with pytest.raises(ProvisioningFailedError, match="no toys in the south"):
        await toy_world.start({**TOY, "toy": {"region": "south"}}, name="toy-south")
    state = await (await toy_world.get("toy-south")).state()
    assert state.status == "failed" and state.instance_token in ToyBackend.terminated
