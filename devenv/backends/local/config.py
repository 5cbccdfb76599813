"""``backend: local``: the common keys only; instances live on the worker's host."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from devenv.models.config import EnvironmentConfig
from devenv.settings import host_task_queue


class LocalConfig(EnvironmentConfig):
    """An SSH server process on this host, as the user who runs devenv (free, no isolation)."""

    backend: Literal["local"] = Field(default="local", description="This host.")
    suspendable: ClassVar[bool] = True

    def activity_task_queue(self) -> str | None:
        """This host's queue: only a worker here can reach, watch and stop the instance."""
        return host_task_queue()
