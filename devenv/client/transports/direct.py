"""The direct transport: the SDK talks to Temporal itself (the CLI, scripts and the
devenv server's own API all use it on the deployment's machine).

Temporal, SSH keys, YAML and the ssh config are imported by the methods that use them:
`devenv ps` or `signal` needs none of the rest.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from devenv.client import checks
from devenv.client.options import Progress, Unset
from devenv.client.refs import candidate_ids
from devenv.client.server_errors import translated, translated_pages
from devenv.client.transports.base import EnvironmentTransport, Ready, StartRequest, Transport
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
from devenv.models.durations import format_duration
from devenv.models.names import SHARED_TASK_QUEUE, Activity, Update
from devenv.models.state import (
    WORKFLOW_TYPE,
    DeadlineAnswer,
    EnvEvent,
    EnvSpec,
    EnvState,
    Status,
    workflow_id_for,
)
from devenv.models.status import EnvironmentList, EnvironmentPage, EnvironmentStatus
from devenv.settings import Settings, local_user

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient
    from temporalio.service import ServiceClient

    from devenv.client.changes import Changes
    from devenv.client.gc import GcReport, OnRemoved
    from devenv.client.listing import Visibility
    from devenv.client.lookup import Handle
    from devenv.client.report import Report
    from devenv.models.policy import PolicyStatus
    from devenv.models.status import SshAccess

WORKFLOW_TASK_TIMEOUT = timedelta(seconds=5)
"""A worker that dies holding a workflow task stalls the environment this long, not 10 s."""
STOP_REASON = "stopped with devenv stop"


class DirectTransport(Transport):
    """Straight to the Temporal server of ``settings`` (``DEVENV_TEMPORAL_*``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._temporal: TemporalClient | None = None
        self._service_client: ServiceClient | None = None

    def __repr__(self) -> str:
        return f"<DirectTransport {self.settings.address}>"

    async def temporal(self) -> TemporalClient:
        """The Temporal client, connected on first use (ServerUnreachableError if nothing
        answers)."""
        if self._temporal is None:
            from devenv.worker.temporal_connection import client_for

            self._temporal = client_for(await self._service(), self.settings)
        return self._temporal

    async def _visibility(self) -> Visibility:
        """Where listings come from: the bare connection, without ``temporalio.client``."""
        from devenv.client.listing import Visibility

        return Visibility(await self._service(), self.settings.namespace, self.temporal)

    async def _service(self) -> ServiceClient:
        if self._service_client is None:
            from devenv.worker.temporal_connection import connect_service

            self._service_client = await connect_service(self.settings)
        return self._service_client

    @translated
    async def start(self, request: StartRequest, say: Progress) -> DirectEnvironment:
        """Starts the embedded server when nothing answers at a loopback address, as
        ``devenv start`` does. ``owner`` defaults to the local OS user name,
        ``public_key`` to this machine's user key."""
        from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
        from temporalio.exceptions import WorkflowAlreadyStartedError

        from devenv.client import sshconfig
        from devenv.client.autostart import ensure_server
        from devenv.client.caller_env import split_env
        from devenv.client.identity import user_key
        from devenv.client.names import generate_name
        from devenv.client.policy import bind_start, catch_up, given_thresholds, read_policies
        from devenv.env_secrets import store_env_secrets
        from devenv.notify import store_webhook
        from devenv.workflows.visibility import MEMO_KEY, memo_row, start_attributes

        owner = request.owner
        owner_name = checks.checked_owner(local_user() if owner is None else owner)
        key_line = request.public_key
        authorized = None if key_line is None else checks.checked_public_key(key_line)
        parsed = checks.configuration(request.config, request.overrides)
        env_values, env_secret = split_env(parsed.env, request.caller_env)
        if request.name is not None:
            checks.checked_name(request.name)
        env_name = request.name or parsed.name or generate_name()
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
            inactivity_duration=parsed.inactivity_seconds(),
            inactivity_auto=parsed.auto_bounds(),
            price_per_hour=parsed.price_per_hour,
            idle_budget=parsed.idle_budget,
            max_duration=parsed.max_duration,
            min_connection_duration=parsed.min_connection_duration or 0,
            resources=parsed.resources,
            user_public_key=authorized,
            host_task_queue=parsed.activity_task_queue(),
            backend_config=parsed.backend_section(),
            owner=owner_name,
            warn_before=parsed.warn_before,
            on_idle=parsed.on_idle,
            delete_after=parsed.delete_after,
            suspendable=type(parsed).suspendable,
            connected_idle=parsed.connected_idle,
            connected_idle_cpu=parsed.connected_idle_cpu,
            utilization_policy=parsed.utilization_policy,
            env=env_values,
            init=parsed.init,
            group=parsed.group,
            keep_alive=parsed.keep_alive,
        )
        temporal = await ensure_server(settings, lambda text: say(text, False))
        self._temporal, self._service_client = temporal, temporal.service_client
        state = bind_start(
            (await read_policies(temporal)).policies, spec, given_thresholds(parsed)
        )  # refused here, before anything is stored or started
        if parsed.notify.webhook:
            spec.notify_webhook = store_webhook(settings, parsed.notify.webhook)
        if env_secret:
            spec.env_secrets = store_env_secrets(settings, env_secret)
        try:
            handle: Handle = await temporal.start_workflow(
                WORKFLOW_TYPE,
                state,
                id=workflow_id_for(env_name),
                task_queue=SHARED_TASK_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                result_type=EnvState,
                task_timeout=WORKFLOW_TASK_TIMEOUT,
                # Listed (as provisioning) before the workflow's first task runs.
                memo={MEMO_KEY: memo_row(state)},
                search_attributes=start_attributes(state),
                static_summary=f"devenv {env_name} ({spec.backend}, "
                f"inactivity {format_duration(spec.inactivity_duration)})",
            )
        except WorkflowAlreadyStartedError:
            raise EnvironmentExistsError(
                f"an environment named {env_name!r} is already running; "
                f"stop it with `devenv stop {env_name}` or choose another name"
            ) from None
        read = state.org_policy.version if state.org_policy is not None else 0
        await catch_up(temporal, handle, read, spec.owner)
        return DirectEnvironment(self, handle, env_name)

    @translated
    async def get(self, ref: str) -> DirectEnvironment:
        candidate_ids(ref)  # bad input fails before any server is contacted
        from devenv.client.lookup import resolve

        handle = await resolve(await self.temporal(), ref)
        return DirectEnvironment(self, handle, handle.id.removeprefix("devenv-"))

    @translated
    async def list(self, all: bool, group: str | None = None) -> EnvironmentList:
        from devenv.client.listing import list_statuses

        rows, silent = await list_statuses(await self._visibility(), all, group)
        return EnvironmentList(rows, silent)

    @translated_pages
    async def list_pages(
        self, all: bool, first_page_size: int | None, group: str | None = None
    ) -> AsyncGenerator[EnvironmentPage, None]:
        from devenv.client.listing import FIRST_PAGE_SIZE, status_pages

        size = first_page_size or FIRST_PAGE_SIZE
        async for page in status_pages(await self._visibility(), all, size, group=group):
            yield page

    @translated
    async def gc(
        self, remove: bool, report: GcReport | None, on_removed: OnRemoved | None
    ) -> GcReport:
        from devenv.client import gc as sweeper

        temporal = await self.temporal()
        if report is None:
            report = await sweeper.find_leftovers(temporal, self.settings)
        if remove:
            report = await sweeper.remove(temporal, self.settings, report, on_removed)
        return report

    @translated
    async def report(self, period: timedelta) -> Report:
        from devenv.client.report import fetch_report

        return await fetch_report(await self.temporal(), period)

    @translated
    async def policies(self) -> PolicyStatus:
        from devenv.client.policy import read_policies

        return await read_policies(await self.temporal())

    @translated
    async def change_policy(
        self, user: str | None, keys: Mapping[str, Any], clear: bool, by: str | None
    ) -> PolicyStatus:
        from devenv.client.policy import change_policies, policy_keys
        from devenv.models.policy import PolicyChange

        checked = {} if clear else policy_keys(keys)
        if not clear and not checked:
            raise InvalidValueError(
                "nothing to set: give default_inactivity, max_inactivity, max_duration, "
                "no_off or delete_after"
            )
        change = PolicyChange(user=user, keys=checked, clear=clear, by=by or local_user())
        return await change_policies(await self.temporal(), change)


class DirectEnvironment(EnvironmentTransport):
    """One environment through its Temporal workflow handle."""

    def __init__(self, transport: DirectTransport, handle: Handle, name: str) -> None:
        self.transport = transport
        self.settings = transport.settings
        self.handle = handle
        self.name = name

    @property
    def workflow_id(self) -> str:
        return self.handle.id

    def temporal_handle(self) -> Handle:
        return self.handle

    def author(self, by: str | None) -> str | None:
        from devenv.client.sharing import check_by

        return check_by(by)

    @translated
    async def state(self) -> EnvState:
        from devenv.client.lookup import fetch_state

        return await fetch_state(self.handle)

    async def status(self) -> EnvironmentStatus:
        return EnvironmentStatus.from_state(await self.state())

    async def events(self) -> list[EnvEvent]:
        return (await self.state()).events

    @translated
    async def listed_status(self) -> EnvironmentStatus:
        from devenv.client.lookup import QUERY_TIMEOUT
        from devenv.workflows.visibility import MEMO_KEY

        description = await self.handle.describe(rpc_timeout=QUERY_TIMEOUT)
        row = await description.memo_value(MEMO_KEY, None, type_hint=dict)
        if row is None:
            return await self.status()
        return EnvironmentStatus.model_validate(row).costed()

    @translated
    async def update(self, changes: Changes, by: str | None) -> EnvironmentStatus:
        """With ``shared_with``, returns once the instance has the members' keys."""
        from devenv.client.lookup import require_worker
        from devenv.client.sharing import members
        from devenv.models.state import Change, DurationSetting, StopAtSetting

        change = Change(by=by)
        if not isinstance(changes.inactivity_duration, Unset):
            change.inactivity = DurationSetting(seconds=changes.inactivity_duration)
        if not isinstance(changes.max_duration, Unset):
            change.max_duration = DurationSetting(seconds=changes.max_duration)
        if not isinstance(changes.stop_at, Unset):
            change.stop_at = StopAtSetting(at=changes.stop_at)
        if not isinstance(changes.extend, Unset):
            change.extend = changes.extend
        if not isinstance(changes.shared_with, Unset):
            change.shared_with = members(self.settings, changes.shared_with)
        await require_worker(await self.transport.temporal(), self.handle)
        await self._update(Update.CHANGE, change)
        if change.shared_with is not None:
            from devenv.client.keys_in_place import wait_keys_in_place

            await wait_keys_in_place(self.handle, change.shared_with)
        # The Update's workflow task also refreshed the memo: no query needed.
        return await self.listed_status()

    @translated
    async def stop(
        self, *, wait: bool, purge: bool, timeout: float, reason: str | None
    ) -> EnvironmentStatus:
        from devenv.client import sshconfig
        from devenv.client.lookup import require_worker

        why = STOP_REASON if reason is None else checks.checked_reason(reason)
        await require_worker(await self.transport.temporal(), self.handle)
        if purge:
            await self._update(Update.SET_PURGE_WORKSPACE, True)
        await self._update(Update.REQUEST_STOP, why)
        if not wait:
            return await self.status()
        try:
            state = await asyncio.wait_for(self.handle.result(), timeout)
        except TimeoutError:
            raise NotAnsweringError(
                f"{self.workflow_id}: stop requested, but still not terminated after "
                f"{timeout:.0f}s; see `devenv logs {self.name}`"
            ) from None
        sshconfig.remove_entry(self.settings, self.name)
        return EnvironmentStatus.from_state(state)

    @translated
    async def request_suspend(self, reason: str | None) -> EnvironmentStatus:
        from devenv.client.lookup import require_worker

        why = None if reason is None else checks.checked_reason(reason)
        await require_worker(await self.transport.temporal(), self.handle)
        await self._update(Update.REQUEST_SUSPEND, why)
        return await self.listed_status()

    @translated
    async def request_resume(self, reason: str | None) -> EnvironmentStatus:
        from devenv.client.lookup import require_worker

        why = None if reason is None else checks.checked_reason(reason)
        await require_worker(await self.transport.temporal(), self.handle)
        await self._update(Update.REQUEST_RESUME, why)
        return await self.listed_status()

    @translated
    async def wait_ready(self, say: Progress) -> Ready:
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
        return Ready(EnvironmentStatus.from_state(state), await self.ssh_access(state))

    async def _provision_step(self) -> str | None:
        """The provision's latest step, from its heartbeat (backends report slow steps)."""
        from temporalio.service import RPCError

        from devenv.client.lookup import QUERY_TIMEOUT

        try:
            description = await self.handle.describe(rpc_timeout=QUERY_TIMEOUT)
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
    async def ssh_access(self, state: EnvState | None) -> SshAccess:
        from devenv.models.status import SshAccess

        state = state or await self.state()
        if state.status != Status.RUNNING or state.instance is None:
            raise EnvironmentEndedError(
                f"environment {self.name!r} is {state.status.value}, not running"
            )
        return SshAccess.of(self.name, state.instance, state.spec.ide)

    async def _update(self, update: str, arg: object) -> DeadlineAnswer:
        """Run a validated Update; rejections and ended environments become one clear line."""
        from temporalio.client import WorkflowUpdateFailedError
        from temporalio.service import RPCError

        from devenv.client.lookup import UPDATE_TIMEOUT, fetch_state

        handle = self.handle
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


async def _refuse_silent_port(settings: Settings) -> None:
    """Fail in seconds when the Temporal port is held by something that never answers.

    Otherwise ``ensure_server`` would start a background server that cannot bind the
    port and then wait for it for minutes.
    """
    from devenv.worker.temporal_connection import connect

    try:
        await connect(settings)
    except ServerNotAnsweringError:
        raise
    except ServerUnreachableError:
        pass  # nothing there: ensure_server starts the embedded server
