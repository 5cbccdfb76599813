"""The activities of an environment's life: provision, monitor, probe, terminate.

They hold no logic of their own beyond dispatching to the backend and, for the
monitor, turning the instance's presence stream into workflow signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio import activity
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from devenv.activities.group import group_presence as read_group_presence
from devenv.activities.owner_breaks import owner_breaks as read_owner_breaks
from devenv.backends import progress
from devenv.backends.base import Backend, ProvisioningError, Suspendable
from devenv.env_secrets import remove_env_secrets
from devenv.models.auto_threshold import OwnerBreaks, OwnerBreaksInput
from devenv.models.group import GroupInput, GroupPresence
from devenv.models.messages import (
    INSTANCE_LOST,
    NOT_SUSPENDABLE,
    ApplyLoginInput,
    ApplyPolicyInput,
    MonitorInput,
    Notice,
    ProbeInput,
    ProvisionInput,
    SuspendInput,
    TellInput,
    TerminateInput,
)
from devenv.models.names import Activity
from devenv.models.state import EnvState, InstanceInfo, PresenceReport, Status
from devenv.notify import POST_TIMEOUT, load_webhook
from devenv.settings import Settings
from devenv.workflows.environment import DevEnvironmentWorkflow

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
MONITOR_HEARTBEAT_SECONDS = 60.0
"""A monitor heartbeats twice per RPC the worker sends for it (``HEARTBEAT_THROTTLE``);
more calls would only be dropped by the SDK, at a cost."""
RECONNECT_MIN_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0
STABLE_STREAM_SECONDS = 10.0
"""A stream up this long was healthy: its loss reconnects after the minimum delay again.
A stream that keeps dying right after connecting (a flapping network) backs off."""
QUERY_TIMEOUT = timedelta(seconds=5)


class EnvironmentActivities:
    """Activities bound to a Temporal client (to signal back) and the backends."""

    def __init__(self, client: Client, settings: Settings, backends: Mapping[str, Backend]):
        self._client = client
        self._settings = settings
        self._backends = backends
        self._monitors: dict[str, asyncio.Event] = {}
        """Per environment, how to stop the monitor this process runs for it."""

    def _backend(self, name: str, *, final: bool = False) -> Backend:
        """The backend of an activity. A worker that lacks it fails a provision for good
        (nothing was created), but only this attempt of anything else: a terminate must
        be retried until a worker that has the backend runs it, never given up."""
        try:
            return self._backends[name]
        except KeyError:
            message = (
                f"backend {name!r} is not available on this worker "
                f"(available: {', '.join(sorted(self._backends))})"
            )
            if final:
                raise ProvisioningError(message) from None
            raise ApplicationError(message, type="BackendUnavailable") from None

    @activity.defn(name=Activity.PROVISION)
    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        backend = self._backend(request.spec.backend, final=True)
        activity.logger.info("provisioning %s", request.workflow_id)
        async with _heartbeating():
            return await backend.provision(request)

    @activity.defn(name=Activity.TERMINATE)
    async def terminate(self, request: TerminateInput) -> None:
        backend = self._backend(request.spec.backend)
        activity.logger.info("terminating %s", request.workflow_id)
        async with _heartbeating():
            await backend.terminate(request)
        if request.spec.env_secrets is not None:  # the instance is gone: so are its secrets
            remove_env_secrets(self._settings, request.spec.env_secrets)

    @activity.defn(name=Activity.SUSPEND)
    async def suspend(self, request: SuspendInput) -> InstanceInfo:
        """End every process of the instance, keep its disk (idempotent, retried)."""
        backend = self._suspendable(request)
        activity.logger.info("suspending %s", request.workflow_id)
        async with _heartbeating():
            return await backend.suspend(request)

    @activity.defn(name=Activity.RESUME)
    async def resume(self, request: SuspendInput) -> InstanceInfo:
        """Start the suspended instance again; returns once it accepts SSH (same host key)."""
        backend = self._suspendable(request)
        activity.logger.info("resuming %s", request.workflow_id)
        async with _heartbeating():
            return await backend.resume(request)

    def _suspendable(self, request: SuspendInput) -> Suspendable:
        backend = self._backend(request.spec.backend)
        if not isinstance(backend, Suspendable):
            raise ApplicationError(
                f"backend {backend.name} cannot suspend", type=NOT_SUSPENDABLE, non_retryable=True
            )
        return backend

    @activity.defn(name=Activity.NOTIFY)
    async def notify(self, notice: Notice) -> None:
        """POST a warning to the environment's webhook (retried by the workflow's policy)."""
        try:
            url = load_webhook(self._settings, notice.webhook)
        except LookupError as problem:
            raise ApplicationError(
                str(problem), type="WebhookUnknown", non_retryable=True
            ) from None
        hidden = {"workflow_id", "webhook"} | ({"by"} if notice.by is None else set())
        body = notice.model_dump(mode="json", exclude=hidden)
        async with httpx.AsyncClient(timeout=POST_TIMEOUT) as http:
            answer = await http.post(url, json=body)
        if answer.status_code >= 300:
            raise RuntimeError(f"the webhook answered HTTP {answer.status_code}")

    @activity.defn(name=Activity.OWNER_BREAKS)
    async def owner_breaks(self, request: OwnerBreaksInput) -> OwnerBreaks:
        """``inactivity_duration: auto``: the owner's breaks in their other environments."""
        async with _heartbeating():  # a cancel (the environment ended) reaches it
            return await read_owner_breaks(self._client, request)

    @activity.defn(name=Activity.GROUP_PRESENCE)
    async def group_presence(self, request: GroupInput) -> GroupPresence:
        """``keep_alive: group``: the latest presence in the asker's group."""
        return await read_group_presence(self._client, request)

    @activity.defn(name=Activity.APPLY_POLICY)
    async def apply_policy(self, request: ApplyPolicyInput) -> None:
        """Write the thresholds a machine's failsafe enforces when the control plane is gone."""
        backend = self._backend(request.instance.backend)
        await backend.apply_policy(request.instance, request.policy)

    @activity.defn(name=Activity.APPLY_LOGIN)
    async def apply_login(self, request: ApplyLoginInput) -> None:
        """Write the instance's login banner (its rules and the end that holds in use)."""
        backend = self._backend(request.instance.backend)
        await backend.apply_login(request.instance, request.login)

    @activity.defn(name=Activity.TELL_TERMINALS)
    async def tell_terminals(self, request: TellInput) -> int:
        """Write a warning into every terminal open on the instance; how many got it."""
        backend = self._backend(request.instance.backend)
        return await backend.tell_terminals(request.instance, request.text)

    @activity.defn(name=Activity.MONITOR)
    async def monitor(self, request: MonitorInput) -> None:
        """Forward the instance's presence stream as signals until cancelled.

        Event driven: a signal per change of the connection count, plus a
        keepalive every ``keepalive_seconds`` while users are connected and the
        stream is up. Reports carry absolute counts, so a reconnect that replays
        the current state never double counts. Returns when the workflow (or its
        run, for a monitor given ``run_id``) is gone, or when a newer monitor of the
        same environment starts in this process.

        Heartbeats only when the workflow set a heartbeat timeout: a monitor on a
        watch queue is proven alive by its process's lease, not by its own RPCs.
        """
        handle = self._client.get_workflow_handle(request.workflow_id, run_id=request.run_id)
        forwarder = _Forwarder(handle)
        backend = self._backend(request.instance.backend)
        side = [asyncio.create_task(forwarder.keepalive_forever(request.keepalive_seconds))]
        if activity.info().heartbeat_timeout:
            side.append(asyncio.create_task(heartbeat_forever(MONITOR_HEARTBEAT_SECONDS)))
        superseded = asyncio.Event()
        older = self._monitors.get(request.workflow_id)
        if older is not None:
            older.set()
        self._monitors[request.workflow_id] = superseded
        following = asyncio.create_task(self._follow(request, backend, forwarder))
        replaced = asyncio.create_task(superseded.wait())
        try:
            await asyncio.wait([following, replaced], return_when=asyncio.FIRST_COMPLETED)
            if following.done():
                following.result()
            else:
                activity.logger.info("a newer monitor of %s took over", request.workflow_id)
        except _WorkflowGone:
            activity.logger.info("%s has ended; monitor stops", request.workflow_id)
        finally:
            tasks = (following, replaced, *side)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # streams closed before
            if self._monitors.get(request.workflow_id) is superseded:
                del self._monitors[request.workflow_id]

    async def _follow(self, request: MonitorInput, backend: Backend, forwarder: _Forwarder) -> None:
        loop = asyncio.get_running_loop()
        backoff = RECONNECT_MIN_SECONDS
        while True:
            up_since: float | None = None
            try:
                stream = backend.presence(request.instance)
                async with contextlib.aclosing(stream):  # type: ignore[type-var]  # each lost stream closed at once
                    async for report in stream:
                        if up_since is None:
                            up_since = loop.time()
                            forwarder.stream_up = True
                        await forwarder.forward(report)
                raise ConnectionError("presence stream ended")
            except (_WorkflowGone, asyncio.CancelledError):
                raise
            except Exception as err:
                if isinstance(err, ApplicationError) and err.type == INSTANCE_LOST:
                    raise  # the backend knows the instance is gone, and why: keep its reason
                forwarder.stream_up = False
                if await forwarder.run_ended():
                    raise _WorkflowGone from err  # no heartbeat would have told it
                if up_since is not None and loop.time() - up_since >= STABLE_STREAM_SECONDS:
                    backoff = RECONNECT_MIN_SECONDS
                if not await backend.is_alive(request.instance):
                    if await forwarder.terminating():
                        return  # devenv itself stopped the instance: nothing was lost
                    raise ApplicationError(
                        f"instance {request.instance.instance_id} is gone",
                        type=INSTANCE_LOST,
                        non_retryable=True,
                    ) from err
                activity.logger.warning(
                    "presence stream of %s lost (%s); reconnecting in %.0fs",
                    request.workflow_id,
                    type(err).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    @activity.defn(name=Activity.PROBE)
    async def probe(self, request: ProbeInput) -> PresenceReport:
        """The instance's connection count right now, read once.

        For decisions that must not rest on what the monitor last said (it may be
        restarting after a worker crash): before terminating for inactivity, the
        workflow asks. InstanceLost (non-retryable) if the instance is gone; any
        other failure is retryable.
        """
        backend = self._backend(request.instance.backend)
        try:
            return await backend.probe(request.instance)
        except ApplicationError:
            raise
        except Exception as err:
            if not await backend.is_alive(request.instance):
                raise ApplicationError(
                    f"instance {request.instance.instance_id} is gone",
                    type=INSTANCE_LOST,
                    non_retryable=True,
                ) from err
            raise


class _WorkflowGone(Exception):
    pass


class _Forwarder:
    """Signals the workflow; remembers what it said so repeats are not re-sent."""

    def __init__(self, handle: WorkflowHandle[Any, Any]):
        self._handle = handle
        self._last: PresenceReport | None = None
        self._in_use = asyncio.Event()
        self.stream_up = False

    async def forward(self, report: PresenceReport) -> None:
        if self._last is not None and (
            report.connections,
            report.jobs,
            report.gpu_quiet_since,
        ) == (self._last.connections, self._last.jobs, self._last.gpu_quiet_since):
            # Not a change of who is present; the next keepalive carries its signs of
            # life (terminal input, busy CPU) to the workflow (connected_idle).
            self._last = report
            return
        await self._signal(report)
        self._last = report
        if report.in_use > 0:
            self._in_use.set()
        else:
            self._in_use.clear()

    async def keepalive_forever(self, interval: float) -> None:
        """Only while the stream is up: a blind monitor must not keep a machine alive.
        Asleep while nobody is present: 10,000 idle monitors wake for nothing."""
        while True:
            await self._in_use.wait()
            await asyncio.sleep(interval)
            last = self._last
            if self.stream_up and last is not None and last.in_use > 0:
                try:
                    await self._signal(last.model_copy(update={"keepalive": True}))
                except _WorkflowGone:
                    return
                except RPCError as err:
                    activity.logger.warning("keepalive not delivered: %s", err.message)

    async def run_ended(self) -> bool:
        """Whether the run this monitor reports to has closed (ended, continued as new):
        asked when the stream is lost, so a monitor without heartbeats does not
        reconnect for a workflow that no longer wants it."""
        try:
            description = await self._handle.describe(rpc_timeout=QUERY_TIMEOUT)
        except RPCError as err:
            return err.status == RPCStatusCode.NOT_FOUND
        return description.status != WorkflowExecutionStatus.RUNNING

    async def terminating(self) -> bool:
        """Whether the workflow is already ending (its terminate stopped the instance)."""
        try:
            state = await self._handle.query(
                DevEnvironmentWorkflow.status, rpc_timeout=QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError):
            return False
        return isinstance(state, EnvState) and state.status != Status.RUNNING

    async def _signal(self, report: PresenceReport) -> None:
        try:
            await self._handle.signal(DevEnvironmentWorkflow.record_presence, report)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise _WorkflowGone from err
            raise


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeats while a provision or terminate runs: with a heartbeat timeout set by the
    workflow, an attempt lost with its worker is retried after that timeout rather than
    after the whole start-to-close timeout (minutes)."""
    with progress.tracking():
        beating = asyncio.create_task(heartbeat_forever())
        try:
            yield
        finally:
            beating.cancel()


async def heartbeat_forever(every: float = HEARTBEAT_SECONDS) -> None:
    """Heartbeats prove an activity alive (a monitor on its instance's queue, a worker's
    lease) and deliver cancellation to it; during a provision they carry the backend's
    latest step (``devenv start`` shows it)."""
    while True:
        activity.heartbeat(progress.latest() or datetime.now(UTC).isoformat())
        await asyncio.sleep(every)


def all_activities(acts: EnvironmentActivities) -> list[Callable[..., object]]:
    return [
        acts.provision,
        acts.monitor,
        acts.probe,
        acts.terminate,
        acts.suspend,
        acts.resume,
        acts.apply_policy,
        acts.apply_login,
        acts.tell_terminals,
        acts.notify,
        acts.owner_breaks,
        acts.group_presence,
    ]


__all__ = ["EnvironmentActivities", "all_activities"]
