"""devenv: durable, self-cleaning development environments on Temporal.

The Python API::

    import devenv

    env = devenv.start("dev.yml", inactivity_duration="2h")
    env.update(inactivity_duration="8h")
    for e in devenv.list(all=True):
        print(e.name, e.status, e.deadline)
    env.stop(wait=True)

``devenv.aio`` has the same functions for asyncio programs. Every error devenv raises
on purpose is a ``devenv.DevenvError``. Names are imported on first use, so that
``import devenv`` (and the CLI) stays fast.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# asyncssh still names DSA types, which cryptography 51 deprecated: importing asyncssh
# printed ten lines of CryptographyDeprecationWarning in every program using devenv.
# devenv never offers DSA keys; this silences exactly that warning, nothing of the caller's.
warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")

if TYPE_CHECKING:
    from devenv.client.async_client import AsyncClient
    from devenv.client.default import get, list, start
    from devenv.client.environment import AsyncEnvironment
    from devenv.client.sync import Client, Environment
    from devenv.errors import (
        ChangeRejectedError,
        ConfigError,
        DevenvError,
        EnvironmentEndedError,
        EnvironmentExistsError,
        EnvironmentNotFoundError,
        InvalidValueError,
        NotAnsweringError,
        NoWorkerError,
        ProvisioningFailedError,
        ServerNotAnsweringError,
        ServerUnreachableError,
        UserError,
    )
    from devenv.models.ssh_entry import SshEntry
    from devenv.models.status import EnvironmentList, EnvironmentStatus

_EXPORTS = {
    "start": "devenv.client.default",
    "get": "devenv.client.default",
    "list": "devenv.client.default",
    "Client": "devenv.client.sync",
    "Environment": "devenv.client.sync",
    "AsyncClient": "devenv.client.async_client",
    "AsyncEnvironment": "devenv.client.environment",
    "SshEntry": "devenv.models.ssh_entry",
    "EnvironmentStatus": "devenv.models.status",
    "EnvironmentList": "devenv.models.status",
    **{
        name: "devenv.errors"
        for name in (
            "ChangeRejectedError",
            "ConfigError",
            "DevenvError",
            "EnvironmentEndedError",
            "EnvironmentExistsError",
            "EnvironmentNotFoundError",
            "InvalidValueError",
            "NoWorkerError",
            "NotAnsweringError",
            "ProvisioningFailedError",
            "ServerNotAnsweringError",
            "ServerUnreachableError",
            "UserError",
        )
    },
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name == "aio":
        return importlib.import_module("devenv.aio")
    if name == "Connection":  # its old name: "connections" are the users present
        warnings.warn("devenv.Connection is now devenv.SshEntry", DeprecationWarning, stacklevel=2)
        name = "SshEntry"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'devenv' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
