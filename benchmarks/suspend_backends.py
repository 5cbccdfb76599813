"""Suspend and resume times of the ``ssh`` and ``aws`` backends, called as the worker does.

``ssh``: Debian's sshd on loopback (the tests' harness), one environment account.
``aws``: the moto server over HTTP, its machine played by a real sshd on loopback that
halts on StopInstances and boots again on StartInstances (the tests' Booter). Each round
suspends then resumes the same environment and logs in with the real OpenSSH client:

* ``suspend_s``: the backend's ``suspend`` (ssh: lock, end processes, keys put away;
  aws: StopInstances until EC2 says stopped);
* ``resume_s``: its ``resume``, which returns once the presence agent answers (aws:
  StartInstances, sshd at the new address with the pinned key, agent, failsafe);
* ``resume_to_ssh_s``: from the start of ``resume`` to the user's first ``ssh NAME true``.

aws figures are devenv's own share only: moto stops and starts at once, and the
"machine" boots in a tenth of a second, where EC2 takes tens of seconds. Needs root
(accounts are created); run it as the tests run: under the accounts lock.

    flock /tmp/devenv-accounts.lock python -m benchmarks.suspend_backends [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from benchmarks.local_world import spread
from devenv.backends.aws.backend import AwsBackend
from devenv.backends.base import Backend, Suspendable
from devenv.backends.ssh.backend import SshBackend
from devenv.client import sshconfig
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import ProvisionInput, SuspendInput, TerminateInput
from devenv.models.state import EnvSpec, InstanceInfo
from devenv.settings import Settings
from tests.aws.conftest import REGION, booting, moto_env, running_moto
from tests.ssh.conftest import host_dir_of, make_settings, remove_environment_account, ssh_section
from tests.support.sshd import running_sshd

KEYS = ("suspend_s", "resume_s", "resume_to_ssh_s")


class Subject:
    """One environment of one backend, suspended and resumed round after round."""

    def __init__(
        self, backend: Backend, settings: Settings, user_key: Path, name: str, section: Any
    ) -> None:
        assert isinstance(backend, Suspendable)
        self.backend = backend
        self.suspendable: Suspendable = backend
        self.settings = settings
        self.user_key = user_key
        self.request = ProvisionInput(
            workflow_id=f"devenv-{name}",
            instance_token=f"t{secrets.token_hex(8)}",
            spec=EnvSpec(
                name=name,
                backend=backend.name,
                user_public_key=public_key_line(ensure_keypair(user_key)),
                backend_config=section,
                inactivity_duration=3600,
                on_idle="suspend",
            ),
        )
        self.info: InstanceInfo | None = None

    def _input(self) -> SuspendInput:
        assert self.info is not None
        return SuspendInput(
            workflow_id=self.request.workflow_id,
            instance_token=self.request.instance_token,
            spec=self.request.spec,
            instance=self.info,
        )

    async def provision(self) -> None:
        self.info = await self.backend.provision(self.request)

    async def ssh_true(self) -> bool:
        assert self.info is not None
        name = self.request.spec.name
        config = sshconfig.write_entry(self.settings, name, self.info, self.user_key)
        proc = await asyncio.create_subprocess_exec(
            "ssh", "-F", str(config), "-o", "BatchMode=yes", name, "true",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        return await proc.wait() == 0

    async def one_round(self, halted: Callable[[], Awaitable[None]] | None) -> dict[str, float]:
        began = time.perf_counter()
        self.info = await self.suspendable.suspend(self._input())
        suspended = time.perf_counter() - began
        if halted is not None:
            await halted()
        began = time.perf_counter()
        self.info = await self.suspendable.resume(self._input())
        resumed = time.perf_counter() - began
        while not await self.ssh_true():
            if time.perf_counter() - began > 60:
                raise RuntimeError("ssh never succeeded after resume")
            await asyncio.sleep(0.02)
        first_ssh = time.perf_counter() - began
        return {"suspend_s": suspended, "resume_s": resumed, "resume_to_ssh_s": first_ssh}

    async def terminate(self) -> None:
        await self.backend.terminate(
            TerminateInput(
                workflow_id=self.request.workflow_id,
                instance_token=self.request.instance_token,
                spec=self.request.spec,
                instance=self.info,
            )
        )


async def bench_ssh(home: Path, rounds: int) -> dict[str, Any]:
    name = f"sbench-{secrets.token_hex(3)}"
    with running_sshd() as server:
        settings = make_settings(home / "ssh")
        backend = SshBackend(settings, host_dir=str(host_dir_of(server)), connect_timeout=5.0)
        subject = Subject(
            backend, settings, home / "user" / "id_ed25519", name, ssh_section(server)
        )
        try:
            await subject.provision()
            results = [await subject.one_round(None) for _ in range(rounds)]
            await subject.terminate()
        finally:
            remove_environment_account(name)
    return spread(results, KEYS)


async def bench_aws(home: Path, rounds: int) -> dict[str, Any]:
    name = f"abench-{secrets.token_hex(3)}"
    with running_moto(home) as moto:
        os.environ.update(moto_env(moto.endpoint))
        with booting(moto) as booter:
            settings = make_settings(home / "aws")
            backend = AwsBackend(
                settings, host_dir=str(booter.host_dir), connect_timeout=5.0, poll_interval=0.1
            )
            section = {
                "region": REGION,
                "instance_type": "t3.micro",
                "image": "amazon-linux-2023",
                "allow_ssh_from": ["203.0.113.7/32"],
                "ssh_user": "root",
                "ssh_endpoint": booter.endpoint,
                "ready_timeout": "2m",
            }
            subject = Subject(backend, settings, home / "user" / "id_ed25519", name, section)

            async def halted() -> None:
                """The emulated machine halts (EC2 says stopped only once it has)."""
                assert subject.info is not None
                instance_id = subject.info.instance_id
                while instance_id not in booter.halted:
                    await asyncio.sleep(0.02)

            await subject.provision()
            results = [await subject.one_round(halted) for _ in range(rounds)]
            await subject.terminate()
    return spread(results, KEYS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--backend", choices=("ssh", "aws", "both"), default="both")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("suspend_backends: run as root (it creates Unix accounts)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {"rounds": args.rounds, "cores": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="devenv-suspend-bench-") as tmp:
        home = Path(tmp)
        if args.backend in ("ssh", "both"):
            report["ssh"] = asyncio.run(bench_ssh(home, args.rounds))
        if args.backend in ("aws", "both"):
            report["aws_moto"] = asyncio.run(bench_aws(home, args.rounds))
    if args.json:
        print(json.dumps(report))
    else:
        print(f"suspend and resume, {args.rounds} rounds each (median, min, max in seconds)")
        for backend in ("ssh", "aws_moto"):
            for key, figure in report.get(backend, {}).items():
                print(f"{backend:9} {key:16} {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
