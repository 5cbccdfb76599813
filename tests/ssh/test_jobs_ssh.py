"""Jobs on an ssh host: `devenv-keepalive` is on the account's PATH and keeps it in use.

Provisioned by the real backend on the harness sshd (127.0.0.1), used with the ssh
config devenv writes, read through the presence stream devenv's monitor reads.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from devenv.backends.ssh.host_setup import KEEPALIVE_BIN
from devenv.client.jobs import keepalive_command
from tests.ssh.conftest import Lab, pids_of, until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", autouse=True)
def keepalive_bin() -> Iterator[None]:
    """Provisioning installs /usr/local/bin/devenv-keepalive on the host, here this
    machine: removed after the module if it was not there before."""
    existed = os.path.exists(KEEPALIVE_BIN)
    yield
    if not existed:
        Path(KEEPALIVE_BIN).unlink(missing_ok=True)


async def test_devenv_keepalive_is_installed_and_a_job_keeps_the_account_in_use(
    lab: Lab,
) -> None:
    env = await lab.provision()
    found = await env.ssh("command -v devenv-keepalive")
    assert found.stdout.decode().strip() == KEEPALIVE_BIN, found.stderr
    info = os.stat(KEEPALIVE_BIN)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)

    watch = lab.presence(env)
    try:
        first = await watch.wait(lambda r: True, "the first report")
        assert watch.reports[first][1].jobs == 0
        started = await env.ssh(keepalive_command("j1", ["sleep", "600"], detach=True))
        assert (started.returncode, started.stdout.decode().strip()) == (0, "j1"), started.stderr
        busy = await watch.wait(
            lambda r: r.jobs == 1 and r.connections == 0, "the job alone in use", first
        )
        assert watch.reports[busy][1].in_use == 1
        probe = await lab.backend.probe(env.info)
        assert (probe.connections, probe.jobs) == (0, 1)

        # In the foreground, as `devenv run` without --detach: output and exit code.
        ran = await env.ssh(keepalive_command("j2", ["sh", "-c", "echo hi; exit 3"], detach=False))
        assert (ran.returncode, ran.stdout) == (3, b"hi\n"), ran.stderr
        listed = await env.ssh("devenv-keepalive --jobs")
        records = {r["id"]: r for r in json.loads(listed.stdout.decode().splitlines()[-1])}
        assert records["j1"]["state"] == "running"
        assert (records["j2"]["state"], records["j2"]["exit_code"]) == ("exited", 3)
        assert records["j1"]["log"] == str(env.home / ".devenv" / "jobs" / "j1.log")
        log = await env.ssh("devenv-keepalive --job-log j2")
        assert log.stdout == b"hi\n"
    finally:
        await watch.close()

    # A job never outlives its environment.
    await lab.backend.terminate(env.terminate_request())
    await until(lambda: not pids_of(env.account), f"{env.account} to run nothing")
