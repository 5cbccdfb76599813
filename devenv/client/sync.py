"""The Python SDK, blocking flavour: ``Client`` and ``Environment``.

Each call runs the asyncio SDK on a private event loop in a background thread, so
it works the same in scripts, in threads and in notebooks that already run a loop.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from devenv.client.async_client import AsyncClient
from devenv.client.environment import AsyncEnvironment
from devenv.client.options import (
    STOP_WAIT_TIMEOUT,
    UNSET,
    ConfigSource,
    Duration,
    Progress,
    StopAt,
    Unset,
)
from devenv.models.ssh_entry import SshEntry
from devenv.models.state import EnvEvent, EnvState
from devenv.models.status import EnvironmentList, EnvironmentPage, EnvironmentStatus
from devenv.settings import Settings

if TYPE_CHECKING:
    from devenv.client.gc import GcReport, OnRemoved
    from devenv.client.jobs import Job
    from devenv.client.report import Report
    from devenv.client.transports.base import Transport
    from devenv.models.policy import PolicyStatus

T = TypeVar("T")


class _LoopThread:
    """One event loop in a daemon thread, shared by every blocking client."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="devenv-sdk", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller's thread: the call must not go on behind its back.
            future.cancel()
            raise

    def close(self) -> None:
        """Stop the loop before the interpreter tears down (the Temporal client's threads
        must not outlive it)."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
        if not self._thread.is_alive() and not self.loop.is_closed():
            self.loop.close()


_runner: _LoopThread | None = None
_runner_lock = threading.Lock()


def _loop() -> _LoopThread:
    global _runner
    with _runner_lock:
        if _runner is None:
            _runner = _LoopThread()
        return _runner


class Client:
    """devenv for ordinary (blocking) programs; see ``AsyncClient`` for the arguments."""

    def __init__(
        self,
        *,
        address: str | None = None,
        namespace: str | None = None,
        api_key: str | None = None,
        tls: bool | None = None,
        home: str | Path | None = None,
        settings: Settings | None = None,
        server_url: str | None = None,
        token: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.aio = AsyncClient(
            address=address,
            namespace=namespace,
            api_key=api_key,
            tls=tls,
            home=home,
            settings=settings,
            server_url=server_url,
            token=token,
            transport=transport,
        )
        self._loop = _loop()

    @property
    def settings(self) -> Settings:
        return self.aio.settings

    def start(
        self,
        config: ConfigSource,
        *,
        name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        **overrides: Any,
    ) -> Environment:
        """Start an environment (see ``AsyncClient.start``)."""
        env = self._loop.run(
            self.aio.start(config, name=name, wait=wait, progress=progress, **overrides)
        )
        return Environment(env, self._loop)

    def get(self, ref: str) -> Environment:
        """The environment called ``ref`` (a name or ``devenv-NAME``)."""
        return Environment(self._loop.run(self.aio.get(ref)), self._loop)

    def list(self, *, all: bool = False, group: str | None = None) -> EnvironmentList:
        """Running environments (``all``: ended ones too; ``group``: only that group's),
        as ``devenv ps --json``."""
        return self._loop.run(self.aio.list(all=all, group=group))

    def list_pages(
        self, *, all: bool = False, first_page_size: int | None = None, group: str | None = None
    ) -> Iterator[EnvironmentPage]:
        """``list()`` a page at a time, as ``AsyncClient.list_pages``."""
        pages = self.aio.list_pages(all=all, first_page_size=first_page_size, group=group)

        async def following() -> EnvironmentPage | None:
            return await anext(pages, None)

        try:
            while (page := self._loop.run(following())) is not None:
                yield page
        finally:  # a caller that stops early: close the listing on its own loop
            self._loop.run(pages.aclose())

    def gc(
        self,
        *,
        remove: bool = False,
        report: GcReport | None = None,
        on_removed: OnRemoved | None = None,
    ) -> GcReport:
        """Leftovers no running environment owns (see ``AsyncClient.gc``)."""
        return self._loop.run(self.aio.gc(remove=remove, report=report, on_removed=on_removed))

    def report(self, since: timedelta | str = "7d") -> Report:
        """Costs, savings, breaks and a suggested threshold (see ``AsyncClient.report``)."""
        return self._loop.run(self.aio.report(since))

    def policies(self) -> PolicyStatus:
        """The admins' policies (see ``AsyncClient.policies``)."""
        return self._loop.run(self.aio.policies())

    def set_policy(self, *, user: str | None = None, **keys: Any) -> PolicyStatus:
        """Set keys of a scope's policy (see ``AsyncClient.set_policy``)."""
        return self._loop.run(self.aio.set_policy(user=user, **keys))

    def clear_policy(self, *, user: str | None = None) -> PolicyStatus:
        """Remove a scope's policy (see ``AsyncClient.clear_policy``)."""
        return self._loop.run(self.aio.clear_policy(user=user))


class Environment:
    """One environment (see ``AsyncEnvironment`` for what each method does)."""

    def __init__(self, env: AsyncEnvironment, loop: _LoopThread) -> None:
        self.aio = env
        self._loop = loop

    @property
    def name(self) -> str:
        return self.aio.name

    @property
    def workflow_id(self) -> str:
        return self.aio.workflow_id

    @property
    def ssh_entry(self) -> SshEntry | None:
        return self.aio.ssh_entry

    @property
    def connection(self) -> SshEntry | None:
        """Deprecated name of ``ssh_entry`` (it was never a user connection)."""
        return self.aio.ssh_entry

    def __repr__(self) -> str:
        return f"<Environment {self.name}>"

    def state(self) -> EnvState:
        """The whole state, as the workflow holds it."""
        return self._loop.run(self.aio.state())

    def status(self) -> EnvironmentStatus:
        """One row of ``devenv ps --json``."""
        return self._loop.run(self.aio.status())

    def events(self) -> list[EnvEvent]:
        """What happened to it, in plain words."""
        return self._loop.run(self.aio.events())

    def update(
        self,
        *,
        inactivity_duration: Duration | Unset = UNSET,
        max_duration: Duration | Unset = UNSET,
        extend: Duration | Unset = UNSET,
        stop_at: StopAt | Unset = UNSET,
        shared_with: list[str] | Unset = UNSET,
        by: str | None = None,
    ) -> EnvironmentStatus:
        """Change thresholds, extend the deadline once, set a fixed end, or who it is
        shared with, as one change (recorded as made ``by`` a user); the new status."""
        return self._loop.run(
            self.aio.update(
                inactivity_duration=inactivity_duration,
                max_duration=max_duration,
                extend=extend,
                stop_at=stop_at,
                shared_with=shared_with,
                by=by,
            )
        )

    def share(self, users: str | list[str]) -> EnvironmentStatus:
        """Share it with ``users`` too: they log in, see, extend and change it, not stop it."""
        return self._loop.run(self.aio.share(users))

    def unshare(self, users: str | list[str]) -> EnvironmentStatus:
        """Stop sharing it with ``users``: their key is refused from the next login on."""
        return self._loop.run(self.aio.unshare(users))

    def stop(
        self,
        *,
        wait: bool = False,
        purge: bool = False,
        timeout: float = STOP_WAIT_TIMEOUT,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """Terminate now (``purge``: the workspace too); with ``wait``, once terminated."""
        return self._loop.run(self.aio.stop(wait=wait, purge=purge, timeout=timeout, reason=reason))

    def suspend(
        self, *, wait: bool = False, timeout: float | None = None, reason: str | None = None
    ) -> EnvironmentStatus:
        """Suspend it (processes end, the workspace is kept); with ``wait``, once suspended."""
        return self._loop.run(self.aio.suspend(wait=wait, timeout=timeout, reason=reason))

    def resume(
        self,
        *,
        progress: Progress | None = None,
        timeout: float | None = None,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """Resume a suspended one; returns once it accepts SSH (ssh config entry rewritten)."""
        return self._loop.run(self.aio.resume(progress=progress, timeout=timeout, reason=reason))

    def wait_ready(self, *, progress: Progress | None = None) -> EnvironmentStatus:
        """Wait until it accepts SSH."""
        return self._loop.run(self.aio.wait_ready(progress=progress))

    def jobs(self) -> list[Job]:
        """Its jobs, oldest first: each keeps it in use while it runs."""
        return self._loop.run(self.aio.jobs())

    def run(self, command: list[str], *, job_id: str | None = None) -> str:
        """Start ``command`` in it as a detached job; returns the job's id."""
        return self._loop.run(self.aio.run(command, job_id=job_id))

    def job_log(self, job_id: str) -> str:
        """What job ``job_id`` wrote so far."""
        return self._loop.run(self.aio.job_log(job_id))
