"""The admin login to a host: asyncssh, host key pinned from known_hosts, commands as root.

Every failure is its own class with one line a person can act on, naming the
``ssh_config`` key to fix. ``permanent`` says whether retrying could help: a host
that does not answer may come back; a host key missing from known_hosts, a refused
login or a missing sudo will not fix themselves.

Commands are static shell scripts run with ``sh -c SCRIPT devenv ARG...``: every
value (account, token, paths) travels as a positional argument, quoted with
``shlex.quote``, never spliced into the script text.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import ClassVar, NamedTuple

import asyncssh

from devenv.backends.presence_stream import KEY_ONLY
from devenv.backends.ssh import keyfiles

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 60.0


@dataclass(frozen=True)
class Endpoint:
    """A host's SSH address as configured (a name or an address, and a port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH names it in known_hosts (``host``, or ``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True)
class AdminAccess:
    """Who devenv logs in as to administer hosts (``ssh_config.user`` and its key files)."""

    user: str
    identity_file: Path
    known_hosts: Path


class AdminError(Exception):
    """The admin login or a command over it failed; the message is one actionable line."""

    permanent: ClassVar[bool] = True
    """Retrying cannot fix it (a misconfiguration); False: the host may come back."""


class HostDownError(AdminError):
    """The host does not answer (refused, timed out, connection lost): it may come back."""

    permanent = False


class HostUnresolvedError(AdminError):
    """The host name does not resolve: a typo, most likely."""


class KnownHostsFileError(AdminError):
    """known_hosts cannot be read or parsed."""


class HostKeyUnknownError(AdminError):
    """The host has no key in known_hosts: it is never trusted on first use."""


class HostKeyMismatchError(AdminError):
    """The host presented a key other than the one pinned in known_hosts."""


class IdentityFileError(AdminError):
    """The admin private key cannot be read (missing, encrypted, not a key)."""


class AdminLoginRefusedError(AdminError):
    """The host refused the admin login with the admin key."""


class SudoMissingError(AdminError):
    """The admin is not root and the host has no sudo."""


class SudoRefusedError(AdminError):
    """The admin is not root and cannot use sudo without a password."""


class HostCommandError(AdminError):
    """A command on the host failed unexpectedly (retried: it may be transient)."""

    permanent = False


class CommandResult(NamedTuple):
    status: int
    stdout: str
    stderr: str

    def fields(self) -> dict[str, str]:
        """``key=value`` lines of stdout (what the host scripts print) as a mapping."""
        found: dict[str, str] = {}
        for line in self.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                found[key.strip()] = value.strip()
        return found

    def describe(self) -> str:
        text = (self.stderr.strip() or self.stdout.strip()).splitlines()
        return text[-1][:300] if text else f"exit status {self.status}"


def read_identity(access: AdminAccess) -> asyncssh.SSHKey:
    """The admin private key, or IdentityFileError naming ``ssh_config.identity_file``
    (the file and what is wrong with it, never its content)."""
    try:
        return keyfiles.read_private_key(access.identity_file)
    except keyfiles.KeyFileError as problem:
        raise IdentityFileError(
            f"ssh_config.identity_file: cannot use {problem}; accepted: an "
            "unencrypted OpenSSH private key readable by the devenv worker"
        ) from None


def trusted_host_keys(
    endpoint: Endpoint, known_hosts: Path
) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
    """(host keys, CA keys, revoked keys) known_hosts gives ``endpoint``.

    Read here rather than left to asyncssh so that a host with no entry at all is told
    apart from one whose key changed: the fixes differ, and the first is found before
    any connection is made.
    """
    try:
        entries = keyfiles.read_known_hosts(known_hosts)
    except keyfiles.KeyFileError as problem:
        raise KnownHostsFileError(
            f"ssh_config.known_hosts: cannot read {problem}; accepted: an OpenSSH known_hosts file"
        ) from None
    port = None if endpoint.port == 22 else endpoint.port
    keys, ca_keys, revoked, *_ = entries.match(endpoint.host, "", port)
    if not keys and not ca_keys:
        raise HostKeyUnknownError(
            f"ssh_config.known_hosts: {endpoint} has no key in {known_hosts} (never trusted on "
            "first use); check its fingerprint on the host (ssh-keygen -lf "
            "/etc/ssh/ssh_host_ed25519_key.pub), then add it: "
            f"ssh-keyscan -p {endpoint.port} {endpoint.host} >> {known_hosts}"
        )
    return list(keys), list(ca_keys), list(revoked)


def public_key_line(key: asyncssh.SSHKey) -> str:
    """``type base64`` of a public key, without its comment."""
    fields = key.export_public_key("openssh").decode().split()
    return f"{fields[0]} {fields[1]}"


class AdminConnection:
    """An open admin login to one host; ``run`` executes scripts as root (sudo if needed)."""

    def __init__(
        self,
        conn: asyncssh.SSHClientConnection,
        endpoint: Endpoint,
        access: AdminAccess,
        host_key: str,
    ) -> None:
        self._conn = conn
        self.endpoint = endpoint
        self.access = access
        self.host_key = host_key
        """The host key this connection verified against known_hosts (``type base64``)."""
        self._sudo: list[str] = []

    async def __aenter__(self) -> AdminConnection:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._conn.close()
        try:
            await asyncio.wait_for(self._conn.wait_closed(), 5)
        except (TimeoutError, OSError, asyncssh.Error):
            pass

    async def _raw(self, command: str, stdin: str | bytes | None, timeout: float) -> CommandResult:
        try:
            if (
                not stdin and stdin is not None
            ):  # asyncssh sends no EOF for empty input: a reader would wait
                done = await self._conn.run(
                    command, stdin=asyncssh.DEVNULL, check=False, timeout=timeout
                )
            else:
                # Bytes (the agent's zipapp) go as they are: no encoding either way.
                encoding = None if isinstance(stdin, bytes) else "utf-8"
                done = await self._conn.run(
                    command, input=stdin, check=False, timeout=timeout, encoding=encoding
                )
        except asyncssh.TimeoutError:
            raise HostCommandError(
                f"{self.endpoint}: a command did not finish within {timeout:.0f}s"
            ) from None
        except (OSError, asyncssh.Error) as problem:
            raise HostDownError(
                f"ssh_config.hosts: lost the connection to {self.endpoint} ({_reason(problem)})"
            ) from None
        status = done.exit_status if done.exit_status is not None else 255
        return CommandResult(status, _text(done.stdout), _text(done.stderr))

    async def become_root(self) -> None:
        """Use sudo from now on if the admin is not root; refuse clearly if it cannot."""
        whoami = await self._raw("id -u", None, DEFAULT_COMMAND_TIMEOUT)
        if whoami.status == 0 and whoami.stdout.strip() == "0":
            return
        user, where = self.access.user, self.endpoint
        check = await self._raw(
            "command -v sudo >/dev/null 2>&1 || exit 127; sudo -n true",
            None,
            DEFAULT_COMMAND_TIMEOUT,
        )
        if check.status == 127:
            raise SudoMissingError(
                f"ssh_config.user: {user} on {where} is not root and sudo is not installed; "
                f"use user: root, or install sudo and give {user} passwordless sudo"
            )
        if check.status != 0:
            raise SudoRefusedError(
                f"ssh_config.user: {user} on {where} cannot use sudo without a password "
                f"({check.describe()}); give it passwordless sudo ('{user} ALL=(ALL) "
                "NOPASSWD: ALL' in /etc/sudoers.d/devenv) or use user: root"
            )
        self._sudo = ["sudo", "-n", "--"]

    async def run(
        self,
        script: str,
        *args: str,
        stdin: str | bytes | None = None,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> CommandResult:
        """Run ``script`` with ``sh`` as root; ``args`` are its positional parameters."""
        words = [*self._sudo, "sh", "-c", script, "devenv", *args]
        command = " ".join(shlex.quote(word) for word in words)
        return await self._raw(command, stdin, timeout)


async def connect_admin(
    endpoint: Endpoint,
    access: AdminAccess,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    host_key: str | None = None,
) -> AdminConnection:
    """Log in to ``endpoint`` as the admin, host key pinned; ready to run commands as root.

    The pin comes from ``access.known_hosts``, or is ``host_key`` itself (``type base64``)
    when devenv generated the host's key (EC2 instances).
    """
    client_key = read_identity(access)
    if host_key is None:
        keys, ca_keys, revoked = trusted_host_keys(endpoint, access.known_hosts)
    else:
        keys, ca_keys, revoked = [asyncssh.import_public_key(host_key)], [], []
    try:
        conn = await asyncssh.connect(
            endpoint.host,
            endpoint.port,
            username=access.user,
            client_keys=[client_key],
            known_hosts=(keys, ca_keys, revoked),
            connect_timeout=connect_timeout,
            **KEY_ONLY,
        )
    except asyncssh.HostKeyNotVerifiable:
        raise HostKeyMismatchError(
            f"ssh_config.known_hosts: {endpoint} presented a host key that does not match "
            f"{access.known_hosts} (reinstalled, or someone in between); check its fingerprint "
            f"on the host, then replace the entry: ssh-keygen -R '{endpoint.known_hosts_name}' "
            f"-f {access.known_hosts} && ssh-keyscan -p {endpoint.port} {endpoint.host} >> "
            f"{access.known_hosts}"
        ) from None
    except asyncssh.PermissionDenied:
        raise AdminLoginRefusedError(
            f"ssh_config.identity_file: {endpoint} refused the admin login {access.user!r} with "
            f"{access.identity_file}; authorize its public key for {access.user} on the host "
            f"(ssh-copy-id -i {access.identity_file}.pub -p {endpoint.port} "
            f"{access.user}@{endpoint.host}) or fix ssh_config.user"
        ) from None
    except socket.gaierror as problem:
        if problem.errno in (socket.EAI_AGAIN,):
            raise HostDownError(
                f"ssh_config.hosts: {endpoint.host} cannot be resolved now ({problem.strerror})"
            ) from None
        raise HostUnresolvedError(
            f"ssh_config.hosts: {endpoint.host} does not resolve ({problem.strerror}); "
            "check the name"
        ) from None
    except (OSError, asyncssh.Error) as problem:
        raise HostDownError(
            f"ssh_config.hosts: {endpoint} does not answer ({_reason(problem)}); is it up, "
            f"with sshd on port {endpoint.port}?"
        ) from None
    server_key = conn.get_server_host_key()
    if server_key is None:  # only without host key checking, which we never do
        conn.close()
        raise HostKeyMismatchError(f"ssh_config.known_hosts: {endpoint} sent no host key")
    admin = AdminConnection(conn, endpoint, access, public_key_line(server_key))
    try:
        await admin.become_root()
    except BaseException:
        await admin.close()
        raise
    return admin


def _reason(problem: BaseException) -> str:
    if isinstance(problem, TimeoutError):
        return "timed out"
    if isinstance(problem, ConnectionRefusedError):
        return "connection refused"
    text = str(problem).strip() or type(problem).__name__
    return text.splitlines()[0][:200]


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else ""
