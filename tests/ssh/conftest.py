"""Fixtures of the ssh backend's tests: Debian's real sshd on loopback, the backend as root.

The admin is root with the harness's admin key and known_hosts. The host folder
(``DEVENV_SSH_HOST_DIR``) lives in the sshd's own root folder, removed with it, so
nothing is ever written to /var/lib/devenv of this machine. Every account a test (or
devenv) created is emptied of processes and deleted at teardown (``userdel -r``).
Nothing is skipped: without sshd, the OpenSSH client or root the tests fail and say why.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import secrets
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from devenv.backends.ssh.backend import SshBackend
from devenv.backends.ssh.host_setup import account_name
from devenv.client import sshconfig
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.messages import ProvisionInput, TerminateInput
from devenv.models.state import EnvSpec, InstanceInfo, PresenceReport
from devenv.settings import Settings
from tests.support.sshd import (
    Account,
    HarnessError,
    Sshd,
    check_prerequisites,
    remove_account,
    running_sshd,
)

T = TypeVar("T")
NAME_PREFIX = "sshb"


def unique_name(prefix: str = NAME_PREFIX) -> str:
    """An environment name no real account, and no other test run, uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


def host_dir_of(server: Sshd) -> Path:
    return server.root / "devenv-host"


def host_key_fields(server: Sshd) -> str:
    """``type base64`` of the harness sshd's host key, as known_hosts pins it."""
    return " ".join(server.host_key_line.split()[1:3])


def ssh_section(server: Sshd, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "hosts": [f"127.0.0.1:{server.port}"],
        "user": "root",
        "identity_file": str(server.admin_key.private),
        "known_hosts": str(server.known_hosts),
    }
    section.update(overrides)
    return section


def account_of(name: str) -> Account | None:
    """The account of environment ``name`` on this machine, if it exists."""
    try:
        entry = pwd.getpwnam(account_name(name))
    except KeyError:
        return None
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def remove_environment_account(name: str) -> None:
    account = account_of(name)
    if account is not None:
        remove_account(account)


def shadow(account: str) -> list[str]:
    return subprocess.run(
        ["getent", "shadow", account], capture_output=True, text=True, check=True
    ).stdout.split(":")


async def until(check: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll ``check`` (without blocking the loop) until truthy; fail naming ``what``."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if loop.time() > give_up:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def run(
    *argv: str | Path, input: bytes | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    """A subprocess awaited without blocking the event loop (a presence stream shares it)."""
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
    return subprocess.CompletedProcess([str(a) for a in argv], proc.returncode, out, err)


@dataclass
class Env:
    """One provisioned environment and the ssh config devenv would write for it."""

    name: str
    info: InstanceInfo
    request: ProvisionInput
    config: Path

    @property
    def account(self) -> str:
        return self.info.username

    @property
    def home(self) -> Path:
        assert self.info.folder is not None
        return Path(self.info.folder)

    def ssh_argv(self, *args: str) -> list[str]:
        """The real OpenSSH client with the config devenv writes: ``ssh -F CONFIG NAME``."""
        return ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", *args]

    async def ssh(
        self, *command: str, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return await run(*self.ssh_argv(self.name, *command), input=input)

    def terminate_request(
        self, *, purge: bool = False, with_instance: bool = True
    ) -> TerminateInput:
        return TerminateInput(
            workflow_id=self.request.workflow_id,
            instance_token=self.request.instance_token,
            spec=self.request.spec,
            instance=self.info if with_instance else None,
            purge_workspace=purge,
        )


@dataclass
class Lab:
    """A backend against one sshd, a user key, and the names whose accounts to remove."""

    sshd: Sshd
    settings: Settings
    backend: SshBackend
    user_key: Path
    names: set[str] = field(default_factory=set)

    def spec(self, name: str, section: dict[str, Any] | None = None, **more: Any) -> EnvSpec:
        return EnvSpec(
            name=name,
            backend="ssh",
            user_public_key=public_key_line(ensure_keypair(self.user_key)),
            backend_config=section if section is not None else ssh_section(self.sshd),
            **more,
        )

    def request(
        self, name: str | None = None, token: str | None = None, **spec: Any
    ) -> ProvisionInput:
        name = name or unique_name()
        self.names.add(name)
        return ProvisionInput(
            workflow_id=f"devenv-{name}",
            instance_token=token or f"t{secrets.token_hex(8)}",
            spec=self.spec(name, **spec),
        )

    async def provision(self, name: str | None = None, **spec: Any) -> Env:
        request = self.request(name, **spec)
        info = await self.backend.provision(request)
        config = sshconfig.write_entry(self.settings, request.spec.name, info, self.user_key)
        return Env(request.spec.name, info, request, config)

    def presence(self, env: Env) -> PresenceWatch:
        return PresenceWatch(self.backend.presence(env.info))

    def cleanup(self) -> None:
        for name in self.names:
            remove_environment_account(name)


class PresenceWatch:
    """Reads a presence stream in a task, keeping every report with its arrival time."""

    def __init__(self, stream: AsyncIterator[PresenceReport]) -> None:
        self.stream = stream
        self.reports: list[tuple[float, PresenceReport]] = []
        self.error: BaseException | None = None
        self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for report in self.stream:
                self.reports.append((asyncio.get_running_loop().time(), report))
        except Exception as error:
            self.error = error

    async def wait(
        self,
        check: Callable[[PresenceReport], bool],
        what: str,
        after: int = 0,
        timeout: float = 10.0,
    ) -> int:
        """Index of the first report from ``after`` on that satisfies ``check``."""

        def found() -> int | None:
            if self.error is not None:
                raise AssertionError(f"the presence stream failed: {self.error!r}")
            for index in range(after, len(self.reports)):
                if check(self.reports[index][1]):
                    return index + 1  # truthy even for the first report
            return None

        return (await until(found, what, timeout)) - 1

    async def close(self) -> None:
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
        await self.stream.aclose()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    try:
        check_prerequisites()
    except HarnessError as error:
        pytest.fail(f"the ssh backend's tests need a real sshd: {error}")
    with running_sshd() as server:
        yield server


def make_settings(home: Path) -> Settings:
    """A private DEVENV_HOME: its own internal key and ssh config; no server is contacted."""
    return Settings(home=home, address="127.0.0.1:1", namespace="default", ssh_include=False)


@pytest.fixture(scope="session")
def lab(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    home = tmp_path_factory.mktemp("ssh-devenv-home")
    settings = make_settings(home)
    backend = SshBackend(settings, host_dir=str(host_dir_of(sshd)), connect_timeout=5.0)
    user_key = home / "user" / "id_ed25519"
    ensure_keypair(user_key, comment="ssh-test-user")
    made = Lab(sshd, settings, backend, user_key)
    try:
        yield made
    finally:
        made.cleanup()


def pids_of(account: str) -> list[int]:
    """Live (non-zombie) processes of ``account`` on this machine."""
    try:
        uid = pwd.getpwnam(account).pw_uid
    except KeyError:
        return []
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = fields.get("Uid", "").split()
        if str(uid) in uids[:2] and not fields.get("State", "").strip().startswith("Z"):
            found.append(int(entry))
    return found
