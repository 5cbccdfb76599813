"""A whole backend in one module: what `backend: ssh` / `aws` each add, in miniature.

Its instances are records in this process; presence is whatever the test says.
Registered by ``tests/local_backend/test_toy_backend.py`` with one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from devenv.backends.base import Backend, InstanceGoneError, ProvisioningError
from devenv.backends.registry import BackendEntry
from devenv.models.config import EnvironmentConfig
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.state import InstanceInfo, PresenceReport

ENTRY = BackendEntry("toy", f"{__name__}:ToyConfig", f"{__name__}:ToyBackend")
"""What ``registry.register`` takes: the name, the configuration model, the backend."""


class ToySection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    region: Literal["north", "south"] = Field(description="Where the toy lives.")


class ToyConfig(EnvironmentConfig):
    backend: Literal["toy"] = "toy"
    toy: ToySection

    def backend_section(self) -> dict[str, object]:
        return self.toy.model_dump(mode="json")


class ToyInstance:
    """Who is present on one toy instance; every change wakes its readers."""

    def __init__(self) -> None:
        self.report = PresenceReport(connections=0, last_change=datetime.now(UTC))
        self.changed = asyncio.Event()
        self.dropped = False

    def set(self, connections: int) -> None:
        self.report = PresenceReport(connections=connections, last_change=datetime.now(UTC))
        self._wake()

    def drop(self) -> None:
        """Cut the streams open now (a network blip); the next ones work again."""
        self.dropped = True
        self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


class ToyBackend(Backend):
    name = "toy"
    instances: ClassVar[dict[str, ToyInstance]] = {}
    terminated: ClassVar[list[str]] = []

    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        region = request.spec.backend_config.get("region")
        if region != "north":
            raise ProvisioningError(f"no toys in the {region}")
        return self.create(request.instance_token, request.spec.host_task_queue, region)

    @classmethod
    def create(
        cls, token: str, task_queue: str | None = None, region: str = "north"
    ) -> InstanceInfo:
        """A toy instance of ``token`` (the same again for the same token)."""
        cls.instances.setdefault(token, ToyInstance())
        return InstanceInfo(
            instance_id=token,
            backend=cls.name,
            host="127.0.0.1",
            port=1,
            username="toy",
            host_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIToyToyToyToyToyToyToyToyToy",
            task_queue=task_queue or "devenv",
            data={"region": region},
        )

    async def terminate(self, request: TerminateInput) -> None:
        self.terminated.append(request.instance_token)
        self.instances.pop(request.instance_token, None)

    async def is_alive(self, instance: InstanceInfo) -> bool:
        return instance.instance_id in self.instances

    async def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        toy = self.instances.get(instance.instance_id)
        if toy is None:
            raise InstanceGoneError(f"toy {instance.instance_id} is gone")
        while True:
            changed = toy.changed
            yield toy.report
            await changed.wait()
            if toy.dropped:
                toy.dropped = False
                raise ConnectionError(f"toy {instance.instance_id}: stream cut")
