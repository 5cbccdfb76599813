"""The monitor's client side: read an instance's ``devenv-activity`` stream over SSH.

The host key is pinned to the one recorded at provisioning (never trust on first
use), and only devenv's internal key is offered. Errors are raised, not hidden: the
calling activity reconnects with backoff.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import asyncssh

from devenv.backends.local.files import ACTIVITY_SUBSYSTEM
from devenv.workflows.state import ActivityReport, InstanceInfo

KEEPALIVE_INTERVAL = 15.0
KEEPALIVE_COUNT_MAX = 4


class ActivityStreamEnded(ConnectionError):
    """The instance closed the stream (server stopping, or the instance is gone)."""


async def stream_activity(
    instance: InstanceInfo,
    internal_key_path: Path,
    *,
    connect_timeout: float = 10.0,
    keepalive_interval: float = KEEPALIVE_INTERVAL,
    keepalive_count_max: int = KEEPALIVE_COUNT_MAX,
) -> AsyncGenerator[ActivityReport, None]:
    """Yield one report per change of the instance's user connection count.

    The first report is the current state. Raises on connection failure, on a host
    key that is not the pinned one, on a dead server (keepalives) and at end of stream.
    """
    client_key = asyncssh.read_private_key(str(internal_key_path))
    host_key = asyncssh.import_public_key(instance.host_public_key)
    async with asyncssh.connect(
        instance.host,
        instance.port,
        username=instance.username,
        client_keys=[client_key],
        known_hosts=([host_key], [], []),
        config=None,
        agent_path=None,
        password_auth=False,
        kbdint_auth=False,
        gss_auth=False,
        host_based_auth=False,
        connect_timeout=connect_timeout,
        keepalive_interval=keepalive_interval,
        keepalive_count_max=keepalive_count_max,
    ) as conn:
        async with conn.create_process(subsystem=ACTIVITY_SUBSYSTEM, encoding="utf-8") as proc:
            async for line in proc.stdout:
                if line.strip():
                    yield ActivityReport.model_validate_json(line)
    raise ActivityStreamEnded(f"activity stream of {instance.instance_id} ended")
