"""The contract every backend meets; the activities talk only to this.

A backend is a configuration model (``EnvironmentConfig`` subclass, in its
``config`` module, light to import) and a ``Backend`` implementation, both named
in ``registry.py``. The workflow and the CLI never see a backend: they see
``InstanceInfo``, whose ``data`` is the backend's own opaque payload.

Errors, the whole contract:

* ``ProvisioningError``: retrying cannot fix it (bad input, a refused login, a
  quota). Provisioning stops at once; the workflow runs ``terminate`` by token to
  clean up whatever was created and the environment FAILS. Any other exception
  from ``provision`` is retried (a few attempts), so it must be safe to repeat.
* ``InstanceGoneError``: the instance no longer exists (killed from outside, a
  spot interruption). From ``presence``/``probe`` it ends the environment as
  ``instance_lost``. Raise it only when sure: a network blip is a plain error.
* ``apply_policy``, ``apply_login``, ``tell_terminals`` and ``leftovers`` are
  optional: the defaults do nothing.
* ``Suspendable`` is a capability: a backend that can keep an instance's disk while
  nothing runs mixes it in (``suspend``/``resume``); ``can_suspend`` answers for any.
* ``terminate`` never gives up: it is retried until it succeeds, so it must
  succeed when the instance is already gone, and must find what a failed or
  crashed provision created from the token alone (``request.instance`` may be None).
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import BaseModel, Field
from temporalio.exceptions import ApplicationError

from devenv.models.messages import (
    INSTANCE_LOST,
    PROVISIONING_ERROR,
    ProvisionInput,
    ResumeInput,
    SuspendInput,
    TerminateInput,
)
from devenv.models.state import FailsafePolicy, InstanceInfo, LoginSettings, PresenceReport
from devenv.settings import Settings

PROBE_CONNECT_TIMEOUT = 5.0


class ProvisioningError(ApplicationError):
    """Provisioning failed in a way retrying cannot fix; the message is for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=PROVISIONING_ERROR, non_retryable=True)


class InstanceGoneError(ApplicationError):
    """The instance is gone for good; the message says what happened to it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type=INSTANCE_LOST, non_retryable=True)


class Leftover(BaseModel):
    """Something a backend created that may have outlived its environment (``devenv gc``).

    ``devenv gc`` removes it only when no running environment owns it: the workflow
    ``workflow_id`` is not running, or runs with another ``instance_token``.
    """

    backend: str
    id: str = Field(description="What it is: an instance id, account@host, a pid.")
    where: str = Field(description="Where it is: a region, a host.")
    name: str | None = Field(default=None, description="The environment's name, if recorded.")
    workflow_id: str | None = None
    instance_token: str | None = None
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    """Backend-owned: what ``remove_leftover`` needs."""


class LeftoversIncompleteError(Exception):
    """``leftovers`` could not search some places; ``found`` is what the others hold."""

    def __init__(self, found: list[Leftover], problems: list[str]) -> None:
        super().__init__(f"{len(problems)} place(s) not searched: " + "; ".join(problems))
        self.found = found
        self.problems = problems


class Backend(ABC):
    """One kind of instance. Workers make one object per backend and share it."""

    name: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @classmethod
    def for_worker(cls, settings: Settings) -> Backend:
        """The backend as a worker runs it (may read its own DEVENV_* variables)."""
        return cls(settings)

    @abstractmethod
    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        """Create the instance of ``request.instance_token``, or return the one that exists.

        Idempotent per token: retried after a crash it never creates a second
        instance. Returns once users can log in over SSH with the spec's public key,
        with the host key to pin (never trusted on first use).
        """

    @abstractmethod
    async def terminate(self, request: TerminateInput) -> None:
        """End the instance and every process started in it; succeed if already gone."""

    @abstractmethod
    async def is_alive(self, instance: InstanceInfo) -> bool:
        """False only when the instance is gone for good (not on a network blip)."""

    @abstractmethod
    def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        """Who is present: the current report first, then one per change, until the
        stream breaks (raise; the monitor reconnects) or the instance is gone."""

    async def probe(self, instance: InstanceInfo) -> PresenceReport:
        """Who is present right now, read once (the first report of a fresh stream).

        Its ``last_change`` must be the last moment the backend KNOWS users left: the
        workflow restarts the idle clock from it. A source that starts afresh and cannot
        know (an agent started for this probe) reports the epoch, never its own start.
        """
        stream = self.presence(instance, connect_timeout=PROBE_CONNECT_TIMEOUT)
        async with contextlib.aclosing(stream):  # type: ignore[type-var]
            return await anext(stream)

    async def apply_policy(self, instance: InstanceInfo, policy: FailsafePolicy) -> None:
        """Tell the machine the idle rule to enforce itself if the control plane is gone.

        Called after provision and whenever a threshold changes; the default (backends
        without a failsafe) does nothing. Must be idempotent.
        """
        return None

    async def apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        """Show ``login.banner`` to users opening an interactive shell from now on.

        Called once the instance is ready and whenever the rules change, for instances
        whose ``login_messages`` is set. Must be idempotent.
        """
        return None

    async def tell_terminals(self, instance: InstanceInfo, text: str) -> int:
        """Write ``text`` into every terminal open on the instance (like ``wall``) and
        answer how many; the default (no terminals known) tells none."""
        return 0

    async def leftovers(self) -> list[Leftover]:
        """Everything this backend created that it can find from this machine, live or not.

        ``devenv gc`` compares the list with the running environments; the default finds
        nothing. Some places unreachable: raise ``LeftoversIncompleteError`` with the rest.
        """
        return []

    async def remove_leftover(self, leftover: Leftover) -> None:
        """End one leftover (idempotent; succeeds if it is already gone)."""
        raise NotImplementedError(f"{self.name} has no leftovers to remove")


class Suspendable(ABC):
    """Capability: the instance can be suspended (disk kept, nothing running or billed by
    the hour) and resumed later, the way dstack's compute mixins add a capability.

    Both are idempotent and retried: ``suspend`` succeeds on an instance already
    suspended, ``resume`` on one already running (answering where it runs now).
    """

    @abstractmethod
    async def suspend(self, request: SuspendInput) -> InstanceInfo:
        """End every process of the instance and stop what bills by the hour; keep the
        workspace (and, for machines, the disk). Users can no longer log in.

        Answers the instance as suspended (``data`` may record what resume needs)."""

    @abstractmethod
    async def resume(self, request: ResumeInput) -> InstanceInfo:
        """Bring a suspended instance back with its workspace; return once users can log
        in over SSH, with the SAME pinned host key (the address or port may change)."""


def can_suspend(backend: Backend) -> bool:
    """True when ``backend`` has the ``Suspendable`` capability."""
    return isinstance(backend, Suspendable)
