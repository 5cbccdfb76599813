"""kill -9 of a provisioning process in its narrowest window: the instance server runs, but
no file names it yet. The next attempt must adopt it, never start a second one."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from devenv.backends.local import proctools
from devenv.backends.local.backend import LocalBackend
from devenv.backends.local.files import PID_FILE, READY_FILE, SERVER_MODULE
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.state import EnvSpec
from devenv.settings import Settings
from tests.faults.cluster import cmdline, kill_everything_of, pids, wait_for

pytestmark = pytest.mark.faults

PROVISION = """\
import asyncio, sys
from devenv.backends.local.backend import LocalBackend
from devenv.models.messages import ProvisionInput
from devenv.settings import Settings
settings = Settings.model_validate_json(sys.argv[1])
request = ProvisionInput.model_validate_json(sys.argv[2])
asyncio.run(LocalBackend(settings).provision(request))
"""


def servers(instance_dir: Path) -> list[int]:
    """``python -m ...local.server DIR`` processes (not their forks, not the launcher)."""
    argv = [b"-m", SERVER_MODULE.encode(), str(instance_dir).encode()]
    found = [
        pid
        for pid in pids()
        if cmdline(pid).split(b"\0")[1:4] == argv and proctools.is_running(pid)
    ]
    return [pid for pid in found if proctools.parent(pid) not in found]


def launcher_running(instance_dir: Path) -> bool:
    return any(
        cmdline(pid).split(b"\0")[1:2] == [b"-c"] and str(instance_dir).encode() in cmdline(pid)
        for pid in pids()
    )


ATTEMPTS = 25
"""The kill lands in the window nearly every time; a miss is retried, never skipped."""


def kill_inside_the_window(
    settings: Settings, request: ProvisionInput, instance_dir: Path
) -> list[int]:
    """kill -9 a provision attempt after it launched the server, before it wrote the
    pidfile; returns the orphaned servers. Retries a kill that landed too late (the
    pidfile was written) up to ATTEMPTS times, then fails: the guarantee went untested."""
    late = 0
    for _ in range(ATTEMPTS):
        attempt = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROVISION,
                settings.model_dump_json(),
                request.model_dump_json(),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            # Polled every millisecond: the window is a few ms wide.
            wait_for(
                lambda: launcher_running(instance_dir),
                20,
                "the attempt to launch the instance server",
                every=0.001,
            )
        finally:
            attempt.send_signal(signal.SIGKILL)
            attempt.wait()
        # The launcher outlives the attempt and starts the server all the same.
        orphans = wait_for(
            lambda: servers(instance_dir), 10, "the orphaned instance server", every=0.01
        )
        if not (instance_dir / PID_FILE).exists():
            return orphans
        late += 1
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        proctools.wait_gone(orphans, 5.0)
        (instance_dir / PID_FILE).unlink(missing_ok=True)
        (instance_dir / READY_FILE).unlink(missing_ok=True)
    pytest.fail(
        f"in {ATTEMPTS} attempts the kill never landed between launching the instance server "
        f"and writing {PID_FILE} ({late} landed after it): the adoption path went untested",
        pytrace=False,
    )


def test_an_attempt_killed_before_it_recorded_the_server_is_adopted(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", address="127.0.0.1:7233", namespace="default")
    user_key = ensure_keypair(tmp_path / "user_ed25519", comment="user")
    token = str(uuid.uuid4())
    request = ProvisionInput(
        workflow_id="devenv-adopt",
        instance_token=token,
        spec=EnvSpec(name="adopt", user_public_key=public_key_line(user_key)),
    )
    backend = LocalBackend(settings)
    instance_dir = backend.instance_dir("adopt", token)
    try:
        orphans = kill_inside_the_window(settings, request, instance_dir)
        [orphan] = orphans

        info = asyncio.run(backend.provision(request))
        assert info.data["pid"] == orphan, "the running server must be adopted"
        assert servers(instance_dir) == [orphan]
        assert (instance_dir / PID_FILE).read_text().strip() == str(orphan)

        asyncio.run(
            backend.terminate(
                TerminateInput(
                    workflow_id="devenv-adopt",
                    instance_token=token,
                    spec=request.spec,
                    instance=info,
                )
            )
        )
        assert servers(instance_dir) == []
    finally:
        kill_everything_of(settings.home)
