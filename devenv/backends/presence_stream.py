"""Reading an instance's presence stream over SSH, as devenv's internal key.

The host key is pinned to the one recorded at provisioning (never trust on first
use), and only the internal key is offered. The local server serves the stream as
a subsystem; an sshd host serves it as the internal key's forced command. Errors
are raised, not hidden: the monitor reconnects with backoff.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import asyncssh

from devenv import dead_peer
from devenv.backends.ssh import keyfiles
from devenv.models.state import InstanceInfo, PresenceReport

KEY_ONLY: dict[str, Any] = {
    "config": None,
    "agent_path": None,
    "password_auth": False,
    "kbdint_auth": False,
    "gss_auth": False,
    "host_based_auth": False,
}
"""asyncssh options of every connection devenv makes: the one key it offers, no OpenSSH
config, no agent, no password or other method a host could ask for."""


def connect_internal(
    instance: InstanceInfo,
    internal_key_path: Path,
    *,
    connect_timeout: float = 10.0,
    keepalive_interval: float = dead_peer.INTERVAL_SECONDS,
) -> AbstractAsyncContextManager[asyncssh.SSHClientConnection]:
    """The internal key's connection to an instance, its host key pinned."""
    return asyncssh.connect(
        instance.host,
        instance.port,
        username=instance.username,
        client_keys=[keyfiles.read_private_key(internal_key_path)],  # errors never quote it
        known_hosts=([asyncssh.import_public_key(instance.host_public_key)], [], []),
        connect_timeout=connect_timeout,
        keepalive_interval=keepalive_interval,
        keepalive_count_max=dead_peer.asyncssh_count_max(keepalive_interval),
        **KEY_ONLY,
    )


class PresenceStreamEndedError(ConnectionError):
    """The instance closed the stream (server stopping, or the instance is gone)."""


async def ssh_presence(
    instance: InstanceInfo,
    internal_key_path: Path,
    *,
    subsystem: str | None = None,
    connect_timeout: float = 10.0,
    keepalive_interval: float = dead_peer.INTERVAL_SECONDS,
) -> AsyncGenerator[PresenceReport, None]:
    """Yield one report per change of who is present; the first is the current state.

    Without ``subsystem`` a plain session is opened: the forced command behind the
    internal key decides what runs. Raises on connection failure, on a host key that
    is not the pinned one, on a dead server (keepalives) and at end of stream.
    """
    async with connect_internal(
        instance,
        internal_key_path,
        connect_timeout=connect_timeout,
        keepalive_interval=keepalive_interval,
    ) as conn:
        async with conn.create_process(subsystem=subsystem, encoding="utf-8") as proc:
            async for line in proc.stdout:
                if line.strip():
                    yield PresenceReport.model_validate_json(line)
    raise PresenceStreamEndedError(f"presence stream of {instance.instance_id} ended")
