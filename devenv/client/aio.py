"""The Python SDK, asyncio flavour: ``AsyncClient`` and ``AsyncEnvironment``.

The only code outside the worker that talks to Temporal. The CLI is a thin layer of
presentation over it, and the blocking ``Client`` runs it on a private event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from pydantic import SecretStr

from devenv.client.models import EnvironmentList, EnvironmentPage, EnvironmentStatus
from devenv.client.refs import candidate_ids
from devenv.client.server_errors import translated, translated_pages
from devenv.config.common import EnvironmentConfig
from devenv.errors import (
    ChangeRejectedError,
    EnvironmentEndedError,
    EnvironmentExistsError,
    InvalidValueError,
    NotAnsweringError,
    ProvisioningFailedError,
    ServerNotAnsweringError,
    ServerUnreachableError,
)
from devenv.settings import SHARED_TASK_QUEUE, Settings, local_user, ssh_include_for
from devenv.workflows.durations import format_duration
from devenv.workflows.names import Activity, Update
from devenv.workflows.state import (
    WORKFLOW_TYPE,
    DeadlineAnswer,
    EnvEvent,
    EnvSpec,
    EnvState,
    Status,
    workflow_id_for,
)

# Temporal, SSH keys, YAML and the ssh config are imported by the methods that use them:
# `devenv ps` or `signal` needs none of the rest, and remote mode no Temporal at all.
if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient
    from temporalio.service import ServiceClient

    from devenv.client.gc import GcReport, OnRemoved
    from devenv.client.jobs import Job
    from devenv.client.listing import Visibility
    from devenv.client.lookup import Handle
    from devenv.client.remote import RemoteAsyncClient
    from devenv.client.report import Report
    from devenv.workflows.status import SshAccess

ConfigSource = str | Path | Mapping[str, Any] | EnvironmentConfig
Progress = Callable[[str, bool], None]
"""``progress(message, transient)``: transient messages replace each other (a spinner)."""
STOP_WAIT_TIMEOUT = 300.0
WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)
"""A worker that dies holding a workflow task stalls the environment this long, not 10 s."""
_UNSET: Any = object()
DURATION_KEYS = frozenset({"inactivity_duration", "max_duration", "min_connection_duration"})
MAX_OWNER_LENGTH = 64
STOP_REASON = "stopped with devenv stop"
MAX_REASON_LENGTH = 200


log = logging.getLogger("devenv")


def _quiet(message: str, transient: bool) -> None:
    """The default progress: notes (a server started in the background) go to the
    ``devenv`` logger; the ticking of a wait goes nowhere."""
    if not transient:
        log.info("%s", message)


@dataclass(frozen=True)
class Connection:
    """How to reach a running environment from this machine."""

    ssh_config: Path
    """The generated OpenSSH config with the environment's Host entry (``ssh -F``)."""
    included: bool
    """Whether ~/.ssh/config includes it, so that plain ``ssh NAME`` works."""
    included_now: bool
    """Whether this start added the Include line."""
    web_ui: str
    folder: str | None = None
    """Where a session starts (what VS Code opens)."""
    ide: str = "none"


class AsyncClient:
    """devenv for asyncio programs. Without arguments it uses the CLI's settings
    (``DEVENV_HOME``, ``DEVENV_TEMPORAL_*``); each argument overrides one of them.

    Without arguments and with ``DEVENV_SERVER_URL`` set, ``AsyncClient()`` is a
    ``RemoteAsyncClient``: the same calls over a devenv server's HTTP API (remote mode),
    so scripts and the CLI need no Temporal access. Any argument means a direct client.
    """

    def __new__(cls, **options: Any) -> AsyncClient:
        if cls is AsyncClient and not any(v is not None for v in options.values()):
            if Settings.load().server_url is not None:
                return _remote_client()
        return object.__new__(cls)

    def __init__(
        self,
        *,
        address: str | None = None,
        namespace: str | None = None,
        api_key: str | None = None,
        tls: bool | None = None,
        home: str | Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        base = settings or Settings.load()
        updates: dict[str, Any] = {}
        if address is not None:
            updates["address"] = address
        if namespace is not None:
            updates["namespace"] = namespace
        if api_key is not None:
            updates["api_key"] = SecretStr(api_key)
            updates["tls"] = True if tls is None else tls
        if tls is not None:
            updates["tls"] = tls
        if home is not None:
            updates["home"] = Path(home).expanduser().absolute()
            updates["ssh_include"] = ssh_include_for(updates["home"])
        self.settings = base.model_copy(update=updates) if updates else base
        self._temporal: TemporalClient | None = None
        self._service_client: ServiceClient | None = None

    async def temporal(self) -> TemporalClient:
        """The Temporal client, connected on first use (ServerUnreachableError if nothing
        answers)."""
        if self._temporal is None:
            from devenv.worker.client import client_for

            self._temporal = client_for(await self._service(), self.settings)
        return self._temporal

    async def _visibility(self) -> Visibility:
        """Where listings come from: the bare connection, without ``temporalio.client``."""
        from devenv.client.listing import Visibility

        return Visibility(await self._service(), self.settings.namespace, self.temporal)

    async def _service(self) -> ServiceClient:
        if self._service_client is None:
            from devenv.worker.client import connect_service

            self._service_client = await connect_service(self.settings)
        return self._service_client

    @translated
    async def start(
        self,
        config: ConfigSource,
        *,
        name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        owner: str | None = None,
        public_key: str | None = None,
        **overrides: Any,
    ) -> AsyncEnvironment:
        """Start an environment from a file path, a mapping or a configuration model.

        Keyword overrides replace keys of the configuration (``inactivity_duration="2h"``)
        and are validated like the file. Starts the embedded server when nothing answers
        at a loopback address, as ``devenv start`` does. With ``wait`` (the default)
        returns once the environment accepts SSH, with its ssh config entry written;
        ProvisioningFailedError if it could not start.

        ``owner`` is recorded in the environment (default: the local OS user name);
        ``public_key`` is the one OpenSSH key line the instance accepts (default: this
        machine's user key). The HTTP API passes its user and that user's key; the ssh
        config entry that ``wait`` writes always names this machine's key.
        """
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from devenv.client import sshconfig
        from devenv.client.identity import user_key
        from devenv.client.names import generate_name
        from devenv.client.server import ensure_server
        from devenv.config.common import validate_name
        from devenv.config.loader import shorten
        from devenv.notify import store_webhook
        from devenv.workflows.visibility import MEMO_KEY, memo_row

        say = progress or _quiet
        owner_name = _checked_owner(local_user() if owner is None else owner)
        authorized = None if public_key is None else _checked_public_key(public_key)
        parsed = _configuration(config, overrides)
        if name is not None:
            try:
                validate_name(name)
            except ValueError as problem:
                raise InvalidValueError(f"name: {shorten(str(problem), name)}") from None
        env_name = name or parsed.name or generate_name()
        settings = self.settings
        await _refuse_silent_port(settings)
        if authorized is None:
            key = user_key(settings)
            sshconfig.check_paths(settings, key.private_key)
            authorized = key.public_key
        spec = EnvSpec(
            name=env_name,
            backend=parsed.backend,
            ide=parsed.ide,
            inactivity_duration=parsed.inactivity_duration,
            max_duration=parsed.max_duration,
            min_connection_duration=parsed.min_connection_duration or 0,
            resources=parsed.resources,
            user_public_key=authorized,
            host_task_queue=parsed.activity_task_queue(),
            backend_config=parsed.backend_section(),
            owner=owner_name,
            warn_before=parsed.warn_before,
            notify_webhook=(
                store_webhook(settings, parsed.notify.webhook) if parsed.notify.webhook else None
            ),
        )
        temporal = await ensure_server(settings, lambda text: say(text, False))
        self._temporal, self._service_client = temporal, temporal.service_client
        workflow_id = workflow_id_for(env_name)
        try:
            handle: Handle = await temporal.start_workflow(
                WORKFLOW_TYPE,
                EnvState(spec=spec),
                id=workflow_id,
                task_queue=SHARED_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                result_type=EnvState,
                task_timeout=WORKFLOW_TASK_TIMEOUT,
                # Listed (as provisioning) before the workflow's first task runs.
                memo={MEMO_KEY: memo_row(EnvState(spec=spec))},
                static_summary=f"devenv {env_name} ({spec.backend}, "
                f"inactivity {format_duration(spec.inactivity_duration)})",
            )
        except WorkflowAlreadyStartedError:
            raise EnvironmentExistsError(
                f"an environment named {env_name!r} is already running; "
                f"stop it with `devenv stop {env_name}` or choose another name"
            ) from None
        env = AsyncEnvironment(self, handle, env_name)
        if wait:
            await env.wait_ready(progress=say)
        return env

    @translated
    async def get(self, ref: str) -> AsyncEnvironment:
        """The environment called ``ref`` (a name or its workflow id ``devenv-NAME``);
        EnvironmentNotFoundError if there is none."""
        candidate_ids(ref)  # bad input fails before any server is contacted
        from devenv.client.lookup import resolve

        handle = await resolve(await self.temporal(), ref)
        return AsyncEnvironment(self, handle, handle.id.removeprefix("devenv-"))

    @translated
    async def list(self, *, all: bool = False) -> EnvironmentList:
        """Running environments (``all``: ended ones too), as ``devenv ps --json`` lists them."""
        from devenv.client.listing import list_statuses

        rows, silent = await list_statuses(await self._visibility(), all)
        return EnvironmentList(rows, silent)

    @translated_pages
    async def list_pages(
        self, *, all: bool = False, first_page_size: int | None = None
    ) -> AsyncGenerator[EnvironmentPage, None]:
        """``list()`` a page at a time, as the server sends them (each page sorted, the
        first of ``first_page_size`` rows, 100 unless given, then 1,000): for fleets too
        large to wait for, as ``devenv ps`` prints them."""
        from devenv.client.listing import FIRST_PAGE_SIZE, status_pages

        size = first_page_size or FIRST_PAGE_SIZE
        async for page in status_pages(await self._visibility(), all, size):
            yield page

    @translated
    async def gc(
        self,
        *,
        remove: bool = False,
        report: GcReport | None = None,
        on_removed: OnRemoved | None = None,
    ) -> GcReport:
        """What devenv's backends created, reachable from this machine, that may have
        outlived its environment (``devenv gc``): each leftover ``orphan`` or ``live``.

        With ``remove``, the orphans are terminated too, each re-checked just before
        (``on_removed`` is called after each); ``report`` removes those of an earlier
        listing rather than listing again. A live environment's instance is never
        touched; a backend that cannot be searched is a line of ``warnings``.
        """
        from devenv.client import gc as sweeper

        temporal = await self.temporal()
        if report is None:
            report = await sweeper.find_leftovers(temporal, self.settings)
        if remove:
            report = await sweeper.remove(temporal, self.settings, report, on_removed)
        return report

    @translated
    async def report(self, since: timedelta | str = "7d") -> Report:
        """Hours running, in use and idle before termination, cost, what idle termination
        saved, the user's breaks and a suggested threshold, over the last ``since``
        (``devenv report``; definitions in ``devenv.client.report``)."""
        from devenv.client.report import fetch_report, parse_since

        period = parse_since(since)  # bad input fails before any server is contacted
        return await fetch_report(await self.temporal(), period)


class AsyncEnvironment:
    """One environment; every method asks the server afresh."""

    def __init__(self, client: AsyncClient, handle: Handle, name: str) -> None:
        self._client = client
        self._handle = handle
        self.name = name
        self.connection: Connection | None = None
        """Set once the environment accepts SSH (by ``start`` or ``wait_ready``)."""

    @property
    def workflow_id(self) -> str:
        return self._handle.id

    def __repr__(self) -> str:
        return f"<Environment {self.name}>"

    @translated
    async def state(self) -> EnvState:
        """The whole state (history of events included), as the workflow holds it."""
        from devenv.client.lookup import fetch_state

        return await fetch_state(self._handle)

    async def status(self) -> EnvironmentStatus:
        """Status, presence, thresholds and deadline: one row of ``devenv ps --json``."""
        return EnvironmentStatus.from_state(await self.state())

    async def events(self) -> list[EnvEvent]:
        """What happened to it, in plain words (``devenv logs``)."""
        return (await self.state()).events

    @translated
    async def listed_status(self) -> EnvironmentStatus:
        """The row ``devenv ps`` lists, read from the server's visibility store: one cheap
        call that needs no worker, for what rarely changes (its owner, its backend).
        ``status()`` asks the workflow itself; this row can trail it by a moment.
        Environments started before the row existed are asked as ``status()`` does."""
        from devenv.client.lookup import QUERY_TIMEOUT
        from devenv.workflows.visibility import MEMO_KEY

        description = await self._handle.describe(rpc_timeout=QUERY_TIMEOUT)
        row = await description.memo_value(MEMO_KEY, None, type_hint=dict)
        if row is None:
            return await self.status()
        return EnvironmentStatus.model_validate(row).costed()

    @translated
    async def update(
        self,
        *,
        inactivity_duration: Any = _UNSET,
        max_duration: Any = _UNSET,
        extend: Any = _UNSET,
        stop_at: Any = _UNSET,
        shared_with: Any = _UNSET,
        by: str | None = None,
    ) -> EnvironmentStatus:
        """Change thresholds of the running environment, in force at once.

        Values as in the YAML (``"8h"``, ``7200``, ``"off"``). ``extend`` pushes the
        current deadline out once without changing a threshold (``"2h"``); ``stop_at``
        sets a fixed end (``"18:30"`` local, an ISO-8601 time, a datetime, or ``"off"``);
        ``shared_with`` is the whole list of user names it is shared with (each with a
        key registered in this deployment's users). All of it is one change, applied
        together and recorded with ``by`` (a user name) in its events. A bad value raises
        InvalidValueError and changes nothing; a lowered threshold that is already
        exceeded terminates the environment. With ``shared_with`` it returns once the
        instance has the members' keys (NotAnsweringError if it could not be told).
        Returns the new status.
        """
        from devenv.client.durations import check_duration, check_stop_at
        from devenv.client.lookup import require_worker
        from devenv.client.sharing import check_by, members
        from devenv.workflows.state import Change, DurationSetting, StopAtSetting

        change = Change(by=check_by(by))
        if inactivity_duration is not _UNSET:
            seconds = check_duration("inactivity_duration", inactivity_duration)
            change.inactivity = DurationSetting(seconds=seconds)
        if max_duration is not _UNSET:
            change.max_duration = DurationSetting(
                seconds=check_duration("max_duration", max_duration)
            )
        if stop_at is not _UNSET:
            change.stop_at = StopAtSetting(at=check_stop_at("stop_at", stop_at))
        if extend is not _UNSET:
            pushed = check_duration("extend", extend)
            if not pushed:
                raise InvalidValueError(f"extend: {extend!r} is not a positive duration")
            change.extend = pushed
        if shared_with is not _UNSET:
            change.shared_with = members(self._client.settings, shared_with)
        if change.model_fields_set <= {"by"}:
            raise InvalidValueError(
                "nothing to change: give inactivity_duration, max_duration, extend, stop_at "
                "or shared_with"
            )
        await require_worker(await self._client.temporal(), self._handle)
        await self._update(Update.CHANGE, change)
        if change.shared_with is not None:
            from devenv.client.keys_in_place import wait_keys_in_place

            await wait_keys_in_place(self._handle, change.shared_with)
        # The Update's workflow task also refreshed the memo: no query needed.
        return await self.listed_status()

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

    @translated
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
        default ``"stopped with devenv stop"``). With ``wait``, returns once it is
        terminated (NotAnsweringError after ``timeout`` seconds; the stop stays requested).
        """
        from devenv.client import sshconfig
        from devenv.client.lookup import require_worker

        why = STOP_REASON if reason is None else _checked_reason(reason)
        await require_worker(await self._client.temporal(), self._handle)
        if purge:
            await self._update(Update.SET_PURGE_WORKSPACE, True)
        await self._update(Update.REQUEST_STOP, why)
        if not wait:
            return await self.status()
        try:
            state = await asyncio.wait_for(self._handle.result(), timeout)
        except TimeoutError:
            raise NotAnsweringError(
                f"{self.workflow_id}: stop requested, but still not terminated after "
                f"{timeout:.0f}s; see `devenv logs {self.name}`"
            ) from None
        sshconfig.remove_entry(self._client.settings, self.name)
        return EnvironmentStatus.from_state(state)

    @translated
    async def wait_ready(self, *, progress: Progress | None = None) -> EnvironmentStatus:
        """Wait while it provisions; once it accepts SSH, write its ssh config entry.

        ProvisioningFailedError if it ended instead."""
        say = progress or _quiet
        loop = asyncio.get_running_loop()
        began = loop.time()
        step: str | None = None
        polls = 0
        while True:
            state = await self.state()
            if state.status != Status.PROVISIONING:
                break
            if polls % 5 == 4:  # a slow provision says what it is doing, once a second
                step = await self._provision_step() or step
            polls += 1
            doing = f" {step}," if step else ""
            say(f"Provisioning {self.name}…{doing} {loop.time() - began:.0f}s", True)
            await asyncio.sleep(0.2)
        if state.status != Status.RUNNING or state.instance is None:
            raise ProvisioningFailedError(
                f"environment {self.name!r} could not start: "
                f"{state.error or state.termination_reason} (details: `devenv logs {self.name}`)"
            )
        self.connection = await self.ssh_config(state)
        return EnvironmentStatus.from_state(state)

    async def _provision_step(self) -> str | None:
        """The provision's latest step, from its heartbeat (backends report slow steps)."""
        from temporalio.service import RPCError

        from devenv.client.lookup import QUERY_TIMEOUT

        try:
            description = await self._handle.describe(rpc_timeout=QUERY_TIMEOUT)
        except RPCError:
            return None
        for pending in description.raw_description.pending_activities:
            payloads = pending.heartbeat_details.payloads
            if pending.activity_type.name == Activity.PROVISION and payloads:
                try:
                    detail = json.loads(payloads[0].data)
                except ValueError:
                    return None
                if isinstance(detail, str) and not detail[:4].isdigit():  # not a timestamp
                    return detail[:120]
        return None

    @translated
    async def ssh_config(self, state: EnvState | None = None) -> Connection:
        """Write (or refresh) its entry in devenv's ssh config; how to connect."""
        from devenv.workflows.status import SshAccess

        state = state or await self.state()
        if state.status != Status.RUNNING or state.instance is None:
            raise EnvironmentEndedError(
                f"environment {self.name!r} is {state.status.value}, not running"
            )
        return self._write_ssh_config(SshAccess.of(self.name, state.instance, state.spec.ide))

    def _write_ssh_config(self, access: SshAccess) -> Connection:
        """The entry of ``access`` in devenv's ssh config, with this machine's user key."""
        from devenv.client import sshconfig
        from devenv.client.identity import user_key

        settings = self._client.settings
        identity = user_key(settings).private_key
        path = sshconfig.write_entry(settings, self.name, access, identity)
        added = sshconfig.include_in_user_config(settings)
        return Connection(
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

    async def _update(self, update: str, arg: object) -> DeadlineAnswer:
        """Run a validated Update; rejections and ended environments become one clear line."""
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.service import RPCError

        from devenv.client.lookup import UPDATE_TIMEOUT, fetch_state

        handle = self._handle
        try:
            answer = await asyncio.wait_for(
                handle.execute_update(update, arg, result_type=DeadlineAnswer),
                UPDATE_TIMEOUT.total_seconds(),
            )
            return cast(DeadlineAnswer, answer)
        except TimeoutError:
            raise NotAnsweringError(
                f"{handle.id}: no answer within {UPDATE_TIMEOUT.seconds}s; is a devenv worker "
                f"running? (`devenv server`); the change may still apply later: check with "
                f"`devenv ps {self.name}`"
            ) from None
        except WorkflowUpdateFailedError as failure:
            cause = failure.cause
            reason = getattr(cause, "message", None) or str(cause)
            error = EnvironmentEndedError if "environment " in reason else ChangeRejectedError
            raise error(f"{handle.id}: {reason}; nothing changed") from None
        except RPCError as failure:
            if "already completed" not in failure.message:
                raise
        state = await fetch_state(handle)
        raise EnvironmentEndedError(
            f"{handle.id}: environment is {state.status.value} "
            f"({state.termination_reason or state.error or 'ended'}); nothing changed"
        )


def _remote_client() -> RemoteAsyncClient:
    """A bare RemoteAsyncClient; ``AsyncClient()`` then runs its ``__init__``."""
    from devenv.client.remote import RemoteAsyncClient

    return object.__new__(RemoteAsyncClient)


def _checked_owner(owner: str) -> str:
    """A short printable name: it lands in history, listings and the API's checks."""
    from devenv.config.loader import shorten

    if (
        not owner
        or len(owner) > MAX_OWNER_LENGTH
        or not owner.isprintable()
        or owner.strip() != owner
    ):
        raise InvalidValueError(
            f"owner: invalid value {shorten(repr(owner), owner)}: accepted: 1-"
            f"{MAX_OWNER_LENGTH} printable characters"
        )
    return owner


def _checked_reason(reason: str) -> str:
    """One printable line: it becomes an event of the environment."""
    from devenv.config.loader import shorten

    if not reason or len(reason) > MAX_REASON_LENGTH or not reason.isprintable():
        raise InvalidValueError(
            f"reason: invalid value {shorten(repr(reason), reason)}: accepted: one line of "
            f"1-{MAX_REASON_LENGTH} printable characters"
        )
    return reason


def _checked_public_key(text: str) -> str:
    """``text`` as one canonical OpenSSH public key line.

    It becomes the instance's only authorized user key: a second line or leading
    options (``devenv-internal``) must never get through, so it is re-exported.
    """
    import asyncssh  # lazily: only a start with a given key pays its import

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    try:
        if len(lines) != 1:
            raise ValueError(len(lines))
        key = asyncssh.import_public_key(lines[0])
    except (asyncssh.KeyImportError, ValueError):
        raise InvalidValueError(
            "public_key: expected exactly one OpenSSH public key line "
            "('ssh-ed25519 AAAA... comment')"
        ) from None
    return key.export_public_key().decode().strip()


def _configuration(config: ConfigSource, overrides: Mapping[str, Any]) -> EnvironmentConfig:
    """The validated configuration with the keyword overrides applied."""
    if isinstance(config, EnvironmentConfig) and not overrides:
        return config
    from devenv.config.loader import parse_config

    return parse_config(*configuration_data(config, overrides))


def configuration_data(
    config: ConfigSource, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], str]:
    """The configuration's keys with the keyword overrides applied, and where they came
    from (the file, or "config"), for error lines. Not validated yet."""
    from devenv.config.loader import read_mapping

    if isinstance(config, EnvironmentConfig):
        data: dict[str, Any] = {
            key: "off" if value is None else value
            for key, value in config.model_dump(exclude_unset=True).items()
        }
        source = "config"
    elif isinstance(config, Mapping):
        data, source = dict(config), "config"
    else:
        path = Path(config)
        data, source = read_mapping(path), str(path)
    data.update(
        {
            key: "off" if value is None and key in DURATION_KEYS else value
            for key, value in overrides.items()
        }
    )
    return data, source


async def _refuse_silent_port(settings: Settings) -> None:
    """Fail in seconds when the Temporal port is held by something that never answers.

    Otherwise ``ensure_server`` would start a background server that cannot bind the
    port and then wait for it for minutes.
    """
    from devenv.worker.client import connect

    try:
        await connect(settings)
    except ServerNotAnsweringError:
        raise
    except ServerUnreachableError:
        pass  # nothing there: ensure_server starts the embedded server
