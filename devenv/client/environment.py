"""``AsyncEnvironment``: one environment, whichever transport reaches it.

What the two transports share lives here: the checks of a change, sharing, the ssh
config entry written on this machine, and jobs (run over OpenSSH either way).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from devenv.client.options import (
    STOP_WAIT_TIMEOUT,
    UNSET,
    Duration,
    Progress,
    StopAt,
    Unset,
    quiet,
)
from devenv.client.transports.base import EnvironmentTransport
from devenv.models.ssh_entry import SshEntry
from devenv.models.state import EnvEvent, EnvState
from devenv.models.status import EnvironmentStatus
from devenv.settings import Settings

if TYPE_CHECKING:
    from devenv.client.jobs import Job
    from devenv.client.lookup import Handle
    from devenv.models.status import SshAccess


class AsyncEnvironment:
    """One environment; every method asks the server afresh."""

    def __init__(self, transport: EnvironmentTransport) -> None:
        self.transport = transport
        """How its calls travel (``devenv.client.transports``)."""
        self.name = transport.name
        self.ssh_entry: SshEntry | None = None
        """Set once the environment accepts SSH (by ``start`` or ``wait_ready``)."""

    @property
    def connection(self) -> SshEntry | None:
        """Deprecated name of ``ssh_entry``: "connections" are the users present."""
        return self.ssh_entry

    @property
    def settings(self) -> Settings:
        return self.transport.settings

    @property
    def workflow_id(self) -> str:
        return self.transport.workflow_id

    def temporal_handle(self) -> Handle | None:
        """Its Temporal workflow handle; None in remote mode (no Temporal there)."""
        return self.transport.temporal_handle()

    def __repr__(self) -> str:
        return f"<Environment {self.name}{self.transport.where()}>"

    async def state(self) -> EnvState:
        """The whole state (history of events included), as the workflow holds it; not
        available in remote mode (``status()`` and ``events()`` are)."""
        return await self.transport.state()

    async def status(self) -> EnvironmentStatus:
        """Status, presence, thresholds and deadline: one row of ``devenv ps --json``."""
        return await self.transport.status()

    async def events(self) -> list[EnvEvent]:
        """What happened to it, in plain words (``devenv logs``)."""
        return await self.transport.events()

    async def listed_status(self) -> EnvironmentStatus:
        """The row ``devenv ps`` lists, read from the server's visibility store: one cheap
        call that needs no worker, for what rarely changes (its owner, its backend).
        ``status()`` asks the workflow itself; this row can trail it by a moment.
        Environments started before the row existed are asked as ``status()`` does.
        In remote mode the same as ``status()``: the server decides what to read."""
        return await self.transport.listed_status()

    async def update(
        self,
        *,
        inactivity_duration: Duration | Unset = UNSET,
        max_duration: Duration | Unset = UNSET,
        extend: Duration | Unset = UNSET,
        stop_at: StopAt | Unset = UNSET,
        shared_with: list[str] | Unset = UNSET,
        by: str | None = None,
    ) -> EnvironmentStatus:
        """Change thresholds of the running environment, in force at once.

        Values as in the YAML (``"8h"``, ``7200``, ``"off"``). ``extend`` pushes the
        current deadline out once without changing a threshold (``"2h"``); ``stop_at``
        sets a fixed end (``"18:30"`` local, an ISO-8601 time, a datetime, or ``"off"``);
        ``shared_with`` is the whole list of user names it is shared with (each with a
        key registered in this deployment's users). All of it is one change, applied
        together and recorded with ``by`` (a user name; in remote mode the token's user)
        in its events. A bad value raises InvalidValueError and changes nothing; a
        lowered threshold that is already exceeded terminates the environment. With
        ``shared_with`` it returns once the instance has the members' keys
        (NotAnsweringError if it could not be told). Returns the new status.
        """
        from devenv.client.changes import Changes

        author = self.transport.author(by)
        changes = Changes.parse(
            inactivity_duration=inactivity_duration,
            max_duration=max_duration,
            extend=extend,
            stop_at=stop_at,
            shared_with=shared_with,
        )
        return await self.transport.update(changes, author)

    async def share(self, users: str | list[str], *, by: str | None = None) -> EnvironmentStatus:
        """Share it with ``users`` too (``devenv share``): they may log in with their
        registered key, see it, extend it and change its thresholds, not stop it."""
        current = (await self.listed_status()).shared_with
        wanted = [users] if isinstance(users, str) else list(users)
        return await self.update(
            shared_with=current + [user for user in wanted if user not in current], by=by
        )

    async def unshare(self, users: str | list[str], *, by: str | None = None) -> EnvironmentStatus:
        """Stop sharing it with ``users``: their key is refused from the next login on."""
        current = (await self.listed_status()).shared_with
        gone = {users} if isinstance(users, str) else set(users)
        return await self.update(shared_with=[user for user in current if user not in gone], by=by)

    async def stop(
        self,
        *,
        wait: bool = False,
        purge: bool = False,
        timeout: float = STOP_WAIT_TIMEOUT,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """Terminate now (reason ``stopped_by_user``); the workspace is kept unless ``purge``.

        ``reason`` says who stopped it in its events (``"stopped by alice via the API"``;
        default ``"stopped with devenv stop"``; in remote mode the server writes it).
        With ``wait``, returns once it is terminated (NotAnsweringError after ``timeout``
        seconds; the stop stays requested).
        """
        return await self.transport.stop(wait=wait, purge=purge, timeout=timeout, reason=reason)

    async def suspend(
        self,
        *,
        wait: bool = False,
        progress: Progress | None = None,
        timeout: float | None = None,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """Suspend it now: every process ends, the workspace (and a machine's disk) is
        kept, nothing bills by the hour; ``resume()`` brings it back, ``delete_after``
        deletes it. Refused in one line (ChangeRejectedError) unless it is running on a
        backend that can suspend. With ``wait``, returns once it is suspended."""
        from devenv.client.suspension import SUSPEND_WAIT_TIMEOUT, wait_suspended

        status = await self.transport.request_suspend(reason)
        if not wait:
            return status
        return await wait_suspended(
            self.transport, progress or quiet, timeout or SUSPEND_WAIT_TIMEOUT
        )

    async def resume(
        self,
        *,
        progress: Progress | None = None,
        timeout: float | None = None,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """Resume a suspended environment; returns once it accepts SSH, like ``start``,
        with its ssh config entry rewritten (the port may have changed, the host key is
        the same). Refused in one line unless it is suspended (or suspending)."""
        from devenv.client.suspension import RESUME_WAIT_TIMEOUT, wait_resumed

        await self.transport.request_resume(reason)
        ready = await wait_resumed(
            self.transport, progress or quiet, timeout or RESUME_WAIT_TIMEOUT
        )
        self.ssh_entry = self._write_ssh_config(ready.access)
        return ready.status

    async def wait_ready(self, *, progress: Progress | None = None) -> EnvironmentStatus:
        """Wait while it provisions; once it accepts SSH, write its ssh config entry
        (``connection``). ProvisioningFailedError if it ended instead."""
        ready = await self.transport.wait_ready(progress or quiet)
        self.ssh_entry = self._write_ssh_config(ready.access)
        return ready.status

    async def ssh_config(self, state: EnvState | None = None) -> SshEntry:
        """Write (or refresh) its entry in this machine's devenv ssh config, with this
        machine's user key (the owner's, or a member's it is shared with); how to
        connect. In remote mode the server says where to log in."""
        return self._write_ssh_config(await self.transport.ssh_access(state))

    def _write_ssh_config(self, access: SshAccess) -> SshEntry:
        """The entry of ``access`` in devenv's ssh config, with this machine's user key."""
        from devenv.client import sshconfig
        from devenv.client.identity import user_key

        settings = self.settings
        identity = user_key(settings).private_key
        path = sshconfig.write_entry(settings, self.name, access, identity)
        added = sshconfig.include_in_user_config(settings)
        return SshEntry(
            ssh_config=path,
            included=added or sshconfig.is_included(settings),
            included_now=added,
            web_ui=(
                f"{settings.ui_url}/namespaces/{settings.namespace}/workflows/{self.workflow_id}"
            ),
            folder=access.folder,
            ide=access.ide,
        )

    async def jobs(self) -> list[Job]:
        """Its jobs (``devenv jobs``), oldest first: each keeps it in use while it runs."""
        from devenv.client.jobs import list_jobs

        return await list_jobs(self)

    async def run(self, command: list[str], *, job_id: str | None = None) -> str:
        """Start ``command`` (argv; one string with spaces runs with ``sh -c``) in it as a
        detached job, its output logged in the workspace; returns the job's id."""
        from devenv.client.jobs import start_job

        return await start_job(self, command, job_id)

    async def job_log(self, job_id: str) -> str:
        """What job ``job_id`` wrote so far (stdout and stderr)."""
        from devenv.client.jobs import job_log

        return (await job_log(self, job_id)).decode(errors="replace")
