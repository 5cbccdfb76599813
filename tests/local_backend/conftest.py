"""Fixtures for the local backend: real instance servers driven by the real OpenSSH client.

Every instance provisioned here is terminated at teardown, and a last sweep kills
any process still carrying one of the test tokens, so no test leaves processes behind.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devenv.backends.local import proctools
from devenv.backends.local.backend import LocalBackend
from devenv.backends.local.files import ENV_MARKER
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.state import EnvSpec, InstanceInfo
from devenv.settings import Settings

SSH_TIMEOUT = 20.0


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode(errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode(errors="replace")


async def run(
    *argv: str | Path, input: bytes | None = None, timeout: float = SSH_TIMEOUT
) -> Result:
    """A subprocess without blocking the event loop (the activity stream shares it)."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv),
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(input), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out, err)


def write_ssh_config(
    directory: Path, alias: str, info: InstanceInfo, identity: Path, *, port: int | None = None
) -> Path:
    """What devenv generates for users: host key pinned under an alias, no TOFU."""
    directory.mkdir(parents=True, exist_ok=True)
    known_hosts = directory / f"{alias}.known_hosts"
    key_type, key_data = info.host_public_key.split()[:2]
    known_hosts.write_text(f"{alias} {key_type} {key_data}\n")
    config = directory / f"{alias}.config"
    config.write_text(
        f"Host {alias}\n"
        f"  HostName {info.host}\n"
        f"  Port {port or info.port}\n"
        f"  User {info.username}\n"
        f"  IdentityFile {identity}\n"
        "  IdentitiesOnly yes\n"
        f"  HostKeyAlias {alias}\n"
        f"  UserKnownHostsFile {known_hosts}\n"
        "  StrictHostKeyChecking yes\n"
        "  BatchMode yes\n"
        "  LogLevel ERROR\n"
        "  ConnectTimeout 10\n"
    )
    return config


@dataclass
class Instance:
    """A provisioned instance and the ssh config a user would get for it."""

    info: InstanceInfo
    request: ProvisionInput
    alias: str
    config: Path
    settings: Settings
    user_key: Path

    @property
    def token(self) -> str:
        return self.request.instance_token

    @property
    def workspace(self) -> Path:
        assert self.info.folder is not None
        return Path(self.info.folder)

    def ssh_argv(self, *args: str, config: Path | None = None) -> list[str]:
        return ["ssh", "-F", str(config or self.config), *args]

    async def ssh(
        self, *args: str, input: bytes | None = None, config: Path | None = None
    ) -> Result:
        return await run(*self.ssh_argv(*args, config=config), input=input)

    def terminate_request(self) -> TerminateInput:
        return TerminateInput(
            workflow_id=self.request.workflow_id,
            instance_token=self.token,
            spec=self.request.spec,
            instance=self.info,
        )


@dataclass
class Lab:
    """One DEVENV_HOME with a backend, a user key and a record of what to clean up."""

    home: Path
    settings: Settings
    backend: LocalBackend
    user_key: Path
    tokens: set[str] = field(default_factory=set)
    instances: list[Instance] = field(default_factory=list)

    def request(self, name: str, token: str | None = None, **spec: Any) -> ProvisionInput:
        token = token or f"t{uuid.uuid4().hex[:12]}"
        self.tokens.add(token)
        pub = public_key_line(ensure_keypair(self.user_key))
        return ProvisionInput(
            workflow_id=f"devenv-{name}",
            instance_token=token,
            spec=EnvSpec(name=name, user_public_key=pub, **spec),
        )

    async def provision(self, name: str, token: str | None = None, **spec: Any) -> Instance:
        request = self.request(name, token, **spec)
        info = await self.backend.provision(request)
        alias = f"devenv-{name}-{request.instance_token}"
        config = write_ssh_config(self.home / "ssh", alias, info, self.user_key)
        instance = Instance(info, request, alias, config, self.settings, self.user_key)
        self.instances.append(instance)
        return instance

    async def cleanup(self) -> None:
        for instance in self.instances:
            await self.backend.terminate(instance.terminate_request())
        for token in self.tokens:
            proctools.kill_processes(proctools.processes_with_env(ENV_MARKER, token), 1.0)


@pytest.fixture(scope="module")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("devenv-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DEVENV_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
async def lab(module_home: Path) -> AsyncIterator[Lab]:
    """Short login timeout and keepalives, so the tests of those take seconds."""
    settings = Settings.load()
    assert settings.home == module_home
    backend = LocalBackend(
        settings, login_timeout=2.0, keepalive_interval=1.0, keepalive_count_max=2
    )
    user_key = module_home / "user" / "id_ed25519"
    ensure_keypair(user_key, comment="test-user")
    lab = Lab(module_home, settings, backend, user_key)
    try:
        yield lab
    finally:
        await lab.cleanup()


@pytest.fixture(scope="module")
async def shared(lab: Lab) -> Instance:
    """One instance for the tests that only use it (most of them)."""
    return await lab.provision("shared")


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777
