"""``backend: local``: the common keys only; instances live on the worker's host."""

from __future__ import annotations

import shutil
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from devenv.models.config import EnvironmentConfig, UtilizationPolicy
from devenv.settings import host_task_queue


class LocalConfig(EnvironmentConfig):
    """An SSH server process on this host, as the user who runs devenv (free, no isolation)."""

    backend: Literal["local"] = Field(default="local", description="This host.")
    suspendable: ClassVar[bool] = True

    @field_validator("utilization_policy")
    @classmethod
    def _gpus_can_be_sampled(cls, policy: UtilizationPolicy | None) -> UtilizationPolicy | None:
        """``utilization_policy`` needs nvidia-smi on this host: refused at start without."""
        if policy is not None and shutil.which("nvidia-smi") is None:
            raise ValueError(
                "this host has no nvidia-smi, so its GPUs cannot be sampled; "
                "accepted: utilization_policy only where nvidia-smi is installed"
            )
        return policy

    def activity_task_queue(self) -> str | None:
        """This host's queue: only a worker here can reach, watch and stop the instance."""
        return host_task_queue()
