"""The contract every backend meets; activities only ever talk to this."""

from __future__ import annotations

from typing import Protocol

from devenv.activities.models import ProvisionInput, TerminateInput
from devenv.workflows.state import InstanceInfo


class Backend(Protocol):
    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        """Create the instance for ``request.instance_token``, or return the one that exists.

        Idempotent: retried after a crash it must never create a second instance.
        Returns once the instance accepts SSH.
        """
        ...

    async def is_alive(self, instance: InstanceInfo) -> bool:
        """False only when the instance is gone for good (not on a network blip)."""
        ...

    async def terminate(self, request: TerminateInput) -> None:
        """Stop the instance and everything started in it; succeed if already gone."""
        ...
