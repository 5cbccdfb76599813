"""The `probe` activity against a real instance: the count now, and InstanceLost once it died.

The workflow runs it before terminating for inactivity, so that a monitor
still restarting after a worker crash cannot get a connected user's machine deleted.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path
from typing import cast

import asyncssh
import pytest
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from devenv.activities.activities import EnvironmentActivities
from devenv.backends.local.backend import LocalBackend
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import INSTANCE_LOST, ProbeInput, ProvisionInput, TerminateInput
from devenv.models.state import EnvSpec
from devenv.settings import Settings
from tests.faults.cluster import kill_everything_of

pytestmark = pytest.mark.faults


async def test_probe_reads_the_count_now_and_reports_a_vanished_instance(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", address="127.0.0.1:7233", namespace="default")
    ensure_keypair(settings.internal_key, comment="devenv-internal")
    user_key = ensure_keypair(tmp_path / "user_ed25519", comment="user")
    backend = LocalBackend(settings)
    spec = EnvSpec(name="probed", user_public_key=public_key_line(user_key))
    token = str(uuid.uuid4())
    info = await backend.provision(
        ProvisionInput(workflow_id="devenv-probed", instance_token=token, spec=spec)
    )
    # The probe never signals the workflow, so it needs no client.
    acts = EnvironmentActivities(cast(Client, None), settings, {"local": backend})
    probe = ProbeInput(workflow_id="devenv-probed", instance=info)
    try:
        assert (await ActivityEnvironment().run(acts.probe, probe)).connections == 0
        async with asyncssh.connect(
            info.host,
            info.port,
            username=info.username,
            client_keys=[user_key],
            known_hosts=([asyncssh.import_public_key(info.host_public_key)], [], []),
            config=None,
            agent_path=None,
        ):
            report = await ActivityEnvironment().run(acts.probe, probe)
            assert report.connections == 1
        for _ in range(50):  # the server sees the close a moment after the client
            if (await ActivityEnvironment().run(acts.probe, probe)).connections == 0:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the closed connection still counts")

        assert info.data["pid"] is not None
        os.kill(info.data["pid"], signal.SIGKILL)
        with pytest.raises(ApplicationError) as lost:
            await ActivityEnvironment().run(acts.probe, probe)
        assert lost.value.type == INSTANCE_LOST and lost.value.non_retryable
    finally:
        await backend.terminate(
            TerminateInput(
                workflow_id="devenv-probed", instance_token=token, spec=spec, instance=info
            )
        )
        kill_everything_of(settings.home)
