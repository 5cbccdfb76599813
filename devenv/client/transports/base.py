"""The contract between the SDK and a transport, httpx-style: ``AsyncClient`` and
``AsyncEnvironment`` are the same classes whichever transport carries their calls.

A ``Transport`` starts, finds and lists environments; each environment it returns is an
``EnvironmentTransport``, through which its own calls go. What both transports share
(checks of input, the ssh config entry, jobs, sharing) stays in the client; what they
do differently is here, once for each.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from devenv.client.options import ConfigSource, Progress
from devenv.models.state import EnvEvent, EnvState
from devenv.models.status import EnvironmentList, EnvironmentPage, EnvironmentStatus
from devenv.settings import Settings

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

    from devenv.client.changes import Changes
    from devenv.client.gc import GcReport, OnRemoved
    from devenv.client.lookup import Handle
    from devenv.client.report import Report
    from devenv.models.policy import PolicyStatus
    from devenv.models.status import SshAccess


@dataclass(frozen=True)
class StartRequest:
    """``AsyncClient.start``'s arguments, unchecked: each transport checks them in the
    order that names the first problem best for it."""

    config: ConfigSource
    name: str | None
    wait: bool
    owner: str | None
    public_key: str | None
    overrides: Mapping[str, Any]
    caller_env: Mapping[str, str] | None = None
    """Where a bare ``env`` KEY's value is read: None, this process's environment; the
    HTTP API passes what its caller sent (never the server's own environment)."""


class Ready(NamedTuple):
    """An environment that accepts SSH: its status, and how to log in to it."""

    status: EnvironmentStatus
    access: SshAccess


class EnvironmentTransport(ABC):
    """One environment, as a transport reaches it; every call asks afresh."""

    settings: Settings
    name: str

    @property
    def workflow_id(self) -> str:
        return f"devenv-{self.name}"

    def where(self) -> str:
        """What ``repr`` adds after the name: nothing, or the server it is reached through."""
        return ""

    def temporal_handle(self) -> Handle | None:
        """Its Temporal workflow handle, or None where the transport has none."""
        return None

    def author(self, by: str | None) -> str | None:
        """Who a change is recorded as made by, checked (``by`` as given to ``update``)."""
        return by

    @abstractmethod
    async def state(self) -> EnvState: ...

    @abstractmethod
    async def status(self) -> EnvironmentStatus: ...

    @abstractmethod
    async def listed_status(self) -> EnvironmentStatus: ...

    @abstractmethod
    async def events(self) -> list[EnvEvent]: ...

    @abstractmethod
    async def update(self, changes: Changes, by: str | None) -> EnvironmentStatus:
        """Apply ``changes`` (already checked), recorded as made ``by``; the new status."""

    @abstractmethod
    async def stop(
        self, *, wait: bool, purge: bool, timeout: float, reason: str | None
    ) -> EnvironmentStatus: ...

    @abstractmethod
    async def request_suspend(self, reason: str | None) -> EnvironmentStatus:
        """Ask it to suspend (refused in one line unless running); the status then."""

    @abstractmethod
    async def request_resume(self, reason: str | None) -> EnvironmentStatus:
        """Ask a suspended one to resume (refused in one line otherwise); the status then."""

    @abstractmethod
    async def wait_ready(self, say: Progress) -> Ready:
        """Wait while it provisions; ProvisioningFailedError if it ended instead."""

    @abstractmethod
    async def ssh_access(self, state: EnvState | None) -> SshAccess:
        """How to log in to it (EnvironmentEndedError unless running); ``state``: a
        state just read, where the transport can use one."""


class Transport(ABC):
    """How an ``AsyncClient`` reaches the environments."""

    settings: Settings
    """The CLI's settings (``DEVENV_HOME``: where ssh config entries and keys live)."""

    @abstractmethod
    async def temporal(self) -> TemporalClient:
        """The Temporal client (UserError where the transport has none)."""

    @abstractmethod
    async def start(self, request: StartRequest, say: Progress) -> EnvironmentTransport:
        """Start it (not waiting for it to be ready); its environment."""

    @abstractmethod
    async def get(self, ref: str) -> EnvironmentTransport: ...

    @abstractmethod
    async def list(self, all: bool, group: str | None = None) -> EnvironmentList:
        """The environments (``group``: a checked name, only that group's)."""

    @abstractmethod
    def list_pages(
        self, all: bool, first_page_size: int | None, group: str | None = None
    ) -> AsyncIterator[EnvironmentPage]:
        """``list`` a page at a time, as they arrive."""

    @abstractmethod
    async def gc(
        self, remove: bool, report: GcReport | None, on_removed: OnRemoved | None
    ) -> GcReport: ...

    @abstractmethod
    async def report(self, period: timedelta) -> Report: ...

    @abstractmethod
    async def policies(self) -> PolicyStatus:
        """The admins' policies (remotely, a non-admin sees those that bind them)."""

    @abstractmethod
    async def change_policy(
        self, user: str | None, keys: Mapping[str, Any], clear: bool, by: str | None
    ) -> PolicyStatus:
        """Set ``keys`` (as users write them) of a scope, or ``clear`` it, recorded as
        done ``by`` (None: this machine's user; remotely the token's); the new policies."""

    async def aclose(self) -> None:
        """Close what this transport holds open for the running event loop (by
        default nothing: a Temporal connection lives as long as the client)."""
        return None
