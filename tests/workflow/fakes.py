"""Fake provision / monitor / terminate activities: the workflow logic is what is under test.

They carry the real activity names, record every call, and can be told to fail
the way real backends do (``ProvisioningError``, ``InstanceLost``).

Time skipping: the Java test server locks its clock from the moment an activity
is *scheduled* until it completes (``processScheduleActivityTask`` takes a
time-skipping lock). Checked empirically: a heartbeating activity, an
async-completed one and even one scheduled on a queue nobody polls all keep a
12 h timer from firing (20 s of wall time, no skip). So a monitor that waits
until cancelled freezes time, and tests that need hours to pass run with
``Tuning(monitor=False)`` and play the monitor by signalling ``record_activity``
themselves; the monitor's own behaviour (start arguments, restart, cancel,
INSTANCE_LOST) is tested where no time needs to pass.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from devenv.activities.group import group_presence
from devenv.models.auto_threshold import OwnerBreaks, OwnerBreaksInput
from devenv.models.config import DEFAULT_DELETE_AFTER
from devenv.models.group import GroupInput, GroupPresence
from devenv.models.messages import (
    INSTANCE_LOST,
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
from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.policy import PolicyChange, PolicyStatus
from devenv.models.state import (
    EnvSpec,
    EnvState,
    InstanceInfo,
    PresenceReport,
    Status,
    Tuning,
    workflow_id_for,
)
from devenv.models.status import EnvironmentStatus
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.policy import POLICY_WORKFLOW_ID, PolicyWorkflow

MonitorMode = Literal["hold", "return", "fail", "lost"]
TEST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFakeFakeFakeFakeFakeFakeFakeFakeFake test"


@dataclass
class FakeBackend:
    """Activities with the real names; one instance per test, so calls are per test."""

    task_queue: str
    provision_error: str | None = None
    """Raise a non-retryable ProvisioningError with this message."""
    provision_flaky: int = 0
    """Fail this many attempts with a retryable error before succeeding."""
    provision_gate: asyncio.Event | None = None
    """When set, provision waits for it: lets a test act while PROVISIONING."""
    provision_heartbeats: bool = True
    """Heartbeat while waiting, which is how a cancel reaches an activity."""
    monitor_modes: list[MonitorMode] = field(default_factory=list)
    """One mode per monitor start, then ``hold``: wait until cancelled, heartbeating."""
    monitor_reports: list[PresenceReport] = field(default_factory=list)
    """Signalled by the first monitor that holds, like the real one's first lines."""
    probe_reports: list[PresenceReport] = field(default_factory=list)
    """Answers of successive probes; then nobody connected since long ago."""
    terminate_gate: asyncio.Event | None = None
    """When set, terminate waits for it: lets a test observe TERMINATING."""
    terminate_flaky: int = 0
    failsafe: bool = False
    """Instances say they enforce a failsafe policy (the workflow sends them changes)."""
    login_messages: bool = False
    """Instances show a login banner and take warnings for their terminals."""
    open_terminals: int = 1
    """What ``tell_terminals`` answers."""
    login_failure: str | None = None
    """``apply_login`` fails with this (non-retryable), like a host that refuses it."""
    owner_breaks: OwnerBreaks = field(default_factory=OwnerBreaks)
    """What ``owner_breaks`` answers: the owner's breaks in other environments."""
    owner_breaks_gate: asyncio.Event | None = None
    """When set, ``owner_breaks`` waits for it: a read that hangs."""
    owner_breaks_error: str | None = None
    """``owner_breaks`` fails with this (non-retryable), like an unreachable server."""
    group_gate: asyncio.Event | None = None
    """When set, ``group_presence`` waits for it: a read that hangs."""
    group_calls: int = 0
    group_error: str | None = None
    """``group_presence`` fails with this (non-retryable), like an unreachable server;
    otherwise it is the real activity, reading the server's visibility store."""
    watch_queue: str = ""
    """What ``watch_queue`` answers: the queue a shared-queue instance's monitor goes to
    ("": none, it stays on the instance's queue with heartbeats)."""

    price_per_hour: float | None = None
    storage_price_per_hour: float | None = None
    """What the instance costs running, and suspended (aws: its volumes); None: unknown."""
    suspend_gate: asyncio.Event | None = None
    """When set, suspend waits for it: lets a test act while SUSPENDING."""
    resume_failure: str | None = None
    """``resume`` fails with this (non-retryable), like a cloud without capacity."""

    started: list[WorkflowHandle[Any, Any]] = field(default_factory=list)
    """Workflows ``start`` began on this queue: each must have ended when the worker goes."""
    provisions: list[ProvisionInput] = field(default_factory=list)
    suspends: list[SuspendInput] = field(default_factory=list)
    resumes: list[SuspendInput] = field(default_factory=list)
    monitors: list[MonitorInput] = field(default_factory=list)
    monitor_cancellations: int = 0
    running_monitors: int = 0
    terminates: list[TerminateInput] = field(default_factory=list)
    probes: list[ProbeInput] = field(default_factory=list)
    policies: list[ApplyPolicyInput] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)
    logins: list[ApplyLoginInput] = field(default_factory=list)
    tells: list[TellInput] = field(default_factory=list)
    owner_asks: list[OwnerBreaksInput] = field(default_factory=list)
    group_asks: list[GroupPresence] = field(default_factory=list)
    release_monitors: asyncio.Event = field(default_factory=asyncio.Event)

    def activities(self) -> Sequence[Callable[..., Any]]:
        return [
            self.provision,
            self.monitor,
            self.probe,
            self.terminate,
            self.apply_policy,
            self.notify,
            self.apply_login,
            self.tell_terminals,
            self.answer_watch_queue,
            self.answer_owner_breaks,
            self.suspend,
            self.resume,
            self.answer_group_presence,
        ]

    @activity.defn(name=Activity.GROUP_PRESENCE)
    async def answer_group_presence(self, args: GroupInput) -> GroupPresence:
        self.group_calls += 1
        while self.group_gate is not None and not self.group_gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.02)
        if self.group_error is not None:
            raise ApplicationError(self.group_error, non_retryable=True)
        seen = await group_presence(activity.client(), args)
        self.group_asks.append(seen)
        return seen

    @activity.defn(name=Activity.OWNER_BREAKS)
    async def answer_owner_breaks(self, args: OwnerBreaksInput) -> OwnerBreaks:
        self.owner_asks.append(args)
        while self.owner_breaks_gate is not None and not self.owner_breaks_gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.02)
        if self.owner_breaks_error is not None:
            raise ApplicationError(self.owner_breaks_error, non_retryable=True)
        return self.owner_breaks

    @activity.defn(name=Activity.SUSPEND)
    async def suspend(self, args: SuspendInput) -> InstanceInfo:
        self.suspends.append(args)
        while self.suspend_gate is not None and not self.suspend_gate.is_set():
            activity.heartbeat()
            await asyncio.sleep(0.02)
        return args.instance.model_copy(update={"data": {"suspended": True}})

    @activity.defn(name=Activity.RESUME)
    async def resume(self, args: SuspendInput) -> InstanceInfo:
        """Back on a new port, with the same host key."""
        self.resumes.append(args)
        if self.resume_failure is not None:
            raise ApplicationError(self.resume_failure, non_retryable=True)
        return args.instance.model_copy(update={"port": args.instance.port + 1, "data": {}})

    @activity.defn(name=Activity.WATCH_QUEUE)
    async def answer_watch_queue(self) -> str:
        return self.watch_queue

    @activity.defn(name=Activity.APPLY_LOGIN)
    async def apply_login(self, args: ApplyLoginInput) -> None:
        self.logins.append(args)
        if self.login_failure is not None:
            raise ApplicationError(self.login_failure, non_retryable=True)

    @activity.defn(name=Activity.TELL_TERMINALS)
    async def tell_terminals(self, args: TellInput) -> int:
        self.tells.append(args)
        return self.open_terminals

    @activity.defn(name=Activity.NOTIFY)
    async def notify(self, notice: Notice) -> None:
        self.notices.append(notice)

    @activity.defn(name=Activity.APPLY_POLICY)
    async def apply_policy(self, args: ApplyPolicyInput) -> None:
        self.policies.append(args)

    @activity.defn(name=Activity.PROBE)
    async def probe(self, args: ProbeInput) -> PresenceReport:
        self.probes.append(args)
        if self.probe_reports:
            return self.probe_reports.pop(0)
        return PresenceReport(connections=0, last_change=datetime(2000, 1, 1, tzinfo=UTC))

    @activity.defn(name=Activity.PROVISION)
    async def provision(self, args: ProvisionInput) -> InstanceInfo:
        self.provisions.append(args)
        if self.provision_error is not None:
            raise ApplicationError(self.provision_error, type="ProvisioningError")
        if self.provision_flaky > 0:
            self.provision_flaky -= 1
            raise RuntimeError("cloud API timed out")
        while self.provision_gate is not None and not self.provision_gate.is_set():
            if self.provision_heartbeats:
                activity.heartbeat()
            await asyncio.sleep(0.02)
        return InstanceInfo(
            instance_id=f"fake-{args.instance_token[:8]}",
            backend=args.spec.backend,
            host="127.0.0.1",
            port=2222,
            username="dev",
            host_public_key="ssh-ed25519 AAAAHostKey",
            task_queue=self.task_queue,
            failsafe=self.failsafe,
            login_messages=self.login_messages,
            price_per_hour=self.price_per_hour,
            storage_price_per_hour=self.storage_price_per_hour,
        )

    @activity.defn(name=Activity.MONITOR)
    async def monitor(self, args: MonitorInput) -> None:
        self.monitors.append(args)
        mode = self.monitor_modes.pop(0) if self.monitor_modes else "hold"
        if mode == "lost":
            raise ApplicationError(
                f"instance {args.instance.instance_id} is gone", type=INSTANCE_LOST
            )
        if mode == "fail":
            raise ApplicationError("agent crashed", type="AgentCrashed", non_retryable=True)
        if mode == "return":
            return
        reports, self.monitor_reports = self.monitor_reports, []
        handle = activity.client().get_workflow_handle(args.workflow_id)
        for line in reports:
            await handle.signal(DevEnvironmentWorkflow.record_presence, line)
        self.running_monitors += 1
        try:
            while not self.release_monitors.is_set():
                activity.heartbeat()
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            self.monitor_cancellations += 1
            raise
        finally:
            self.running_monitors -= 1

    @activity.defn(name=Activity.TERMINATE)
    async def terminate(self, args: TerminateInput) -> None:
        self.terminates.append(args)
        # Like a real instance going away, this ends the monitor before the workflow
        # closes, so no activity outlives the test (it would freeze the test server's clock).
        for _ in range(250):
            if not self.running_monitors:
                break
            await asyncio.sleep(0.02)
        if self.terminate_flaky > 0:
            self.terminate_flaky -= 1
            raise RuntimeError("cloud API throttled")
        if self.terminate_gate is not None:
            await self.terminate_gate.wait()


def make_state(
    name: str | None = None,
    *,
    inactivity: int | None = None,
    max_duration: int | None = None,
    tuning: Tuning | None = None,
    on_idle: Literal["terminate", "suspend"] = "terminate",
    delete_after: int | None = DEFAULT_DELETE_AFTER,
    suspendable: bool = False,
    warn_before: int | None = None,
) -> EnvState:
    spec = EnvSpec(
        name=name or f"t-{uuid.uuid4().hex[:10]}",
        inactivity_duration=inactivity,
        max_duration=max_duration,
        user_public_key=TEST_KEY,
        on_idle=on_idle,
        delete_after=delete_after,
        suspendable=suspendable,
        warn_before=warn_before,
    )
    return EnvState(spec=spec, tuning=tuning or Tuning(search_attributes=False, monitor=False))


@asynccontextmanager
async def running_worker(
    client: Client,
    task_queue: str | None = None,
    may_leave_running: bool = False,
    **backend: Any,
) -> AsyncIterator[FakeBackend]:
    """A worker on a fresh task queue (or ``task_queue``: the shared one runs the probe as
    a local activity, and sends monitors to a watch queue this worker polls too) with the
    workflow and a fresh FakeBackend. A test awaits the end of what it started, unless
    ``may_leave_running`` (one that goes on with another worker)."""
    fake = FakeBackend(task_queue=task_queue or f"tq-{uuid.uuid4().hex[:10]}", **backend)
    if fake.task_queue == SHARED_TASK_QUEUE and Activity.WATCH_QUEUE not in backend:
        fake.watch_queue = f"watch-{uuid.uuid4().hex[:10]}"
    # Heartbeat often, so a cancelled fake monitor learns it within milliseconds; the
    # default interval is for activities without a heartbeat timeout (watch queues).
    often = timedelta(milliseconds=50)
    options: dict[str, Any] = {
        "max_heartbeat_throttle_interval": often,
        "default_heartbeat_throttle_interval": often,
    }
    async with (
        Worker(
            client,
            task_queue=fake.task_queue,
            workflows=[DevEnvironmentWorkflow],
            activities=fake.activities(),
            **options,
        ),
        Worker(
            client,
            task_queue=fake.watch_queue or fake.task_queue + "-watch",
            activities=[fake.monitor],
            **options,
        ),
    ):
        try:
            yield fake
            assert not fake.running_monitors, (
                "a monitor outlived the test; on the time-skipping server an outstanding "
                "activity freezes the clock for every later test"
            )
            if not may_leave_running:
                left = await left_running(fake.started)
                assert not left, (
                    f"the test left {left} running: a workflow left mid-stop keeps an "
                    "activity in flight, and on the time-skipping server that freezes the "
                    "clock for every later test (a hang seen in CI); await its result"
                )
        finally:
            fake.release_monitors.set()


async def left_running(handles: list[WorkflowHandle[Any, Any]]) -> list[str]:
    """The workflows among ``handles`` that have not ended."""
    running = []
    for handle in handles:
        try:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                running.append(handle.id)
        except RPCError:
            pass  # gone from the server: ended
    return running


@asynccontextmanager
async def running_env(
    client: Client, state: EnvState, **backend: Any
) -> AsyncIterator[tuple[FakeBackend, WorkflowHandle[DevEnvironmentWorkflow, EnvState], EnvState]]:
    """A worker with a fresh fake backend, ``state``'s workflow started on it and running:
    (the fake, the handle, the state once running)."""
    async with running_worker(client, **backend) as fake:
        handle = await start(client, fake, state)
        yield fake, handle, await wait_running(handle)


async def start(
    client: Client, fake: FakeBackend, state: EnvState
) -> WorkflowHandle[DevEnvironmentWorkflow, EnvState]:
    handle = await client.start_workflow(
        DevEnvironmentWorkflow.run,
        state,
        id=workflow_id_for(state.spec.name),
        task_queue=fake.task_queue,
    )
    fake.started.append(handle)
    return handle


async def wait_for(
    handle: WorkflowHandle[DevEnvironmentWorkflow, EnvState],
    predicate: Callable[[EnvState], bool],
    timeout: float = 10.0,
) -> EnvState:
    """Query until ``predicate`` holds; polls in wall time, never sleeps long."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        state = await query_status(handle)
        if predicate(state):
            return state
        if loop.time() > give_up:
            shown = state.model_dump_json(exclude={"events"})
            raise AssertionError(f"condition not met; last state: {shown[:2000]}")
        await asyncio.sleep(0.02)


async def listed_row(
    client: Client,
    name: str,
    predicate: Callable[[EnvironmentStatus | None], bool],
    *,
    include_ended: bool,
    timeout: float = 10.0,
) -> tuple[EnvironmentStatus | None, list[str]]:
    """The listing's row of ``name`` (None: not listed) and the silent ids, once
    ``predicate`` holds: the server's visibility store shows what a workflow wrote (its
    memo, its end) a moment after it wrote it."""
    from devenv.client.listing import Visibility, list_statuses

    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        rows, silent = await list_statuses(Visibility.of(client), include_ended)
        [row] = [r for r in rows if r.name == name] or [None]
        if predicate(row):
            return row, silent
        if loop.time() > give_up:
            raise AssertionError(f"listing never matched; last row of {name}: {row}")
        await asyncio.sleep(0.02)


async def query_status(handle: WorkflowHandle[DevEnvironmentWorkflow, EnvState]) -> EnvState:
    """Query with a short deadline, retried: the test server can drop a query that arrives
    while a run continues as new (it answers neither run), which would hang for 30 s."""
    for _ in range(20):
        try:
            return await handle.query(
                DevEnvironmentWorkflow.status, rpc_timeout=timedelta(seconds=1)
            )
        except RPCError as err:
            if err.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
    raise AssertionError("status query never answered")


async def wait_running(handle: WorkflowHandle[DevEnvironmentWorkflow, EnvState]) -> EnvState:
    return await wait_for(handle, lambda s: s.status == Status.RUNNING)


def report(
    connections: int, last_change: datetime, *, keepalive: bool = False, waiting: int = 0
) -> PresenceReport:
    return PresenceReport(
        connections=connections, last_change=last_change, keepalive=keepalive, waiting=waiting
    )


def utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


H = 3600
WF = DevEnvironmentWorkflow


def messages(state: EnvState) -> list[str]:
    """The events' words, oldest first."""
    return [event.message for event in state.events]


@asynccontextmanager
async def policy_set(
    client: Client, fan_out: Callable[..., Any], keys: dict[str, Any]
) -> AsyncIterator[WorkflowHandle[PolicyWorkflow, Any]]:
    """The policy workflow (its real id) on a worker of its own, ``fan_out`` standing in
    for its fan-out activity, and ``keys`` set by an admin; terminated after."""
    queue = f"policy-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[PolicyWorkflow], activities=[fan_out]):
        handle = await client.start_workflow(
            PolicyWorkflow.run, PolicyStatus(), id=POLICY_WORKFLOW_ID, task_queue=queue
        )
        await handle.execute_update(PolicyWorkflow.set_policy, PolicyChange(keys=keys, by="admin"))
        try:
            yield handle
        finally:
            # The latest run, if any still runs: the time-skipping server may have skipped
            # past the run timeout it gives a workflow started without one.
            with suppress(RPCError):
                await client.get_workflow_handle(POLICY_WORKFLOW_ID).terminate("test over")
