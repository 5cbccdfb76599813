"""Record one history per workflow path into tests/histories/, for the replay test.

Run ``python -m tests.workflow.record_histories [SCENARIO...]`` after a deliberate change to
the workflow's commands (and say so in the commit): the replay test then checks
new code against these. Never re-record to silence a replay failure of a change
meant to be compatible; that failure is the point.

Most paths run on the time-skipping server (hours pass in milliseconds); the
Web UI path runs on the real dev server so search attribute upserts and a
server-suggested continue-as-new are recorded too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.models.auto_threshold import Break, OwnerBreaks
from devenv.models.config import InactivityBounds, UtilizationPolicy
from devenv.models.messages import LeaseInput, WatcherGone
from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.policy import (
    FanOutResult,
    IdleSpends,
    OrgPolicy,
    PolicyChange,
    PolicySet,
    PolicyStatus,
)
from devenv.models.state import (
    Change,
    DurationSetting,
    EnvState,
    PresenceReport,
    SessionInfo,
    SharedUser,
    Status,
    Tuning,
)
from devenv.worker import binaries
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.lease import WorkerLeaseWorkflow
from devenv.workflows.policy import PolicyWorkflow
from tests.servers import start_test_dev_server
from tests.workflow.fakes import (
    make_state,
    report,
    running_worker,
    start,
    utc,
    wait_for,
    wait_running,
)

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
H = 3600
WF = DevEnvironmentWorkflow
Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]
Runs = list[tuple[str, str, str]]
"""(file stem, workflow id, run id) of every run a scenario produced."""
Scenario = Callable[[WorkflowEnvironment], Awaitable[Runs]]
OFF = Tuning(search_attributes=False, monitor=False)
MONITORED = Tuning(search_attributes=False)


async def _runs(client: Client, handle: Handle, stem: str, *, from_latest: bool = False) -> Runs:
    """Every run of the chain, oldest first: ``stem_run1``, ``stem_run2``, or just ``stem``.

    ``handle.result()`` skips time on the test server; ``from_latest`` (a handle without
    run id, which does not skip time) is for chains the test server may leave broken.
    """
    if from_latest:
        final = await client.get_workflow_handle_for(WF.run, handle.id).result()
    else:
        final = await handle.result()
    latest = (await client.get_workflow_handle(handle.id).describe()).run_id
    if final.runs == 1:
        return [(stem, handle.id, latest)]
    first = handle.result_run_id or ""
    assert final.runs == 2, "scenarios continue as new once"
    return [(f"{stem}_run1", handle.id, first), (f"{stem}_run2", handle.id, latest)]


async def idle_timeout(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state("replay-idle", inactivity=12 * H))
        return await _runs(env.client, handle, "idle_timeout")


async def user_activity_and_updates(env: WorkflowEnvironment) -> Runs:
    """Connect, keepalives, disconnect, thresholds changed by update and by signal."""
    tuning = Tuning(
        search_attributes=False, monitor=False, keepalive_seconds=1800, keepalive_bound_seconds=H
    )
    async with running_worker(env.client) as fake:
        state = make_state("replay-activity", inactivity=2 * H, tuning=tuning)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        now = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, now))
        await handle.signal(WF.record_presence, report(2, now))
        for _ in range(3):
            await env.sleep(timedelta(minutes=45))
            await handle.signal(WF.record_presence, report(2, now, keepalive=True))
        left = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(0, left))
        await handle.execute_update(WF.set_inactivity, 12 * H)
        await handle.execute_update(WF.set_max_duration, 3 * 86_400)
        await handle.signal(WF.update_inactivity, -1)  # ignored, with an event
        await handle.signal(WF.update_inactivity, 6 * H)
        await handle.signal(WF.update_max_duration, None)
        await wait_for(handle, lambda s: s.spec.max_duration is None)
        return await _runs(env.client, handle, "user_activity_and_updates")


async def silent_monitor(env: WorkflowEnvironment) -> Runs:
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=300)
    async with running_worker(env.client) as fake:
        handle = await start(
            env.client, fake, make_state("replay-silent", inactivity=H, tuning=tuning)
        )
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.signal(WF.record_presence, report(1, await env.get_current_time()))
        await wait_for(handle, lambda s: s.connections == 1)
        return await _runs(env.client, handle, "silent_monitor")


async def max_duration(env: WorkflowEnvironment) -> Runs:
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=3 * 86_400)
    async with running_worker(env.client) as fake:
        state = make_state("replay-max", inactivity=H, max_duration=24 * H, tuning=tuning)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.signal(WF.record_presence, report(1, await env.get_current_time()))
        await wait_for(handle, lambda s: s.connections == 1)
        return await _runs(env.client, handle, "max_duration")


async def lowered_threshold(env: WorkflowEnvironment) -> Runs:
    """Provisioning retried once; a lowered threshold already exceeded ends it at once."""
    async with running_worker(env.client, provision_flaky=1) as fake:
        handle = await start(env.client, fake, make_state("replay-lowered", inactivity=12 * H))
        await env.sleep(timedelta(minutes=5))
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=2))
        await handle.execute_update(WF.set_inactivity, H)
        return await _runs(env.client, handle, "lowered_threshold")


async def stop(env: WorkflowEnvironment) -> Runs:
    """Monitor running; stop by Update; the monitor is cancelled before terminate."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-stop", inactivity=H, tuning=MONITORED)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: len(fake.monitors) == 1)
        await handle.execute_update(WF.request_stop, "done")
        return await _runs(env.client, handle, "stop")


async def stop_signal(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state("replay-stop-signal", inactivity=H))
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.signal(WF.stop, "done")
        return await _runs(env.client, handle, "stop_signal")


async def _coercible_signals(env: WorkflowEnvironment, stem: str) -> Runs:
    """Signals whose inputs the SDK's converter once coerced: ``"7200"`` as 2 h, ``true``
    as 1 s (which ended it at once). Recorded before the inputs were checked
    (``coerced_signals``) they applied; after (``garbage_signals``, STRICT_SIGNALS_PATCH)
    they are ignored with an event, and it ends on its idle deadline."""
    async with running_worker(env.client) as fake:
        state = make_state(f"replay-{stem.replace('_', '-')}", inactivity=12 * H)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.signal(WF.update_max_duration, "7200")
        await handle.signal(WF.update_inactivity, True)
        return await _runs(env.client, handle, stem)


async def coerced_signals(env: WorkflowEnvironment) -> Runs:
    return await _coercible_signals(env, "coerced_signals")


async def garbage_signals(env: WorkflowEnvironment) -> Runs:
    return await _coercible_signals(env, "garbage_signals")


async def workflow_cancelled(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state("replay-cancelled", inactivity=H))
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.cancel()
        return await _runs(env.client, handle, "workflow_cancelled")


async def stopped_while_provisioning(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client, provision_gate=asyncio.Event()) as fake:
        handle = await start(env.client, fake, make_state("replay-stop-provisioning"))
        await wait_for(handle, lambda s: len(fake.provisions) == 1)
        await handle.execute_update(WF.request_stop, None)
        assert fake.provision_gate is not None
        fake.provision_gate.set()
        return await _runs(env.client, handle, "stopped_while_provisioning")


async def cancelled_while_provisioning(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client, provision_gate=asyncio.Event()) as fake:
        handle = await start(env.client, fake, make_state("replay-cancel-provisioning"))
        await wait_for(handle, lambda s: len(fake.provisions) == 1)
        await handle.cancel()
        return await _runs(env.client, handle, "cancelled_while_provisioning")


async def provisioning_failure(env: WorkflowEnvironment) -> Runs:
    async with running_worker(env.client, provision_error="quota exceeded") as fake:
        handle = await start(env.client, fake, make_state("replay-provisioning", inactivity=H))
        return await _runs(env.client, handle, "provisioning_failure")


async def instance_lost(env: WorkflowEnvironment) -> Runs:
    """The monitor fails once (restarted), then reports the instance lost."""
    async with running_worker(env.client, monitor_modes=["fail", "lost"]) as fake:
        state = make_state("replay-lost", inactivity=H, tuning=MONITORED)
        handle = await start(env.client, fake, state)
        return await _runs(env.client, handle, "instance_lost")


async def continue_as_new(env: WorkflowEnvironment) -> Runs:
    """Our own history cap; grown by updates only (see the test for the server's quirks)."""
    tuning = Tuning(search_attributes=False, monitor=False, max_history_events=40)
    async with running_worker(env.client) as fake:
        handle = await start(
            env.client, fake, make_state("replay-can", inactivity=2 * H, tuning=tuning)
        )
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        now = utc(await env.get_current_time())
        await handle.signal(WF.record_presence, report(1, now))
        await handle.signal(WF.record_presence, report(0, now))
        await wait_for(handle, lambda s: s.last_report_at is not None)
        latest = env.client.get_workflow_handle_for(WF.run, handle.id)
        for hours in (12, 13, 12, 13, 12, 13, 12, 13):
            await handle.execute_update(WF.set_inactivity, hours * H)
            if (await latest.describe()).run_id != handle.result_run_id:
                break
        await wait_for(latest, lambda s: s.runs == 2)
        await latest.execute_update(WF.set_inactivity, H)
        await latest.execute_update(WF.request_stop, "done")
        return await _runs(env.client, handle, "continue_as_new", from_latest=True)


async def web_ui(env: WorkflowEnvironment) -> Runs:
    """Dev server: search attributes, monitor restart across runs, server-suggested CAN."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-web-ui", inactivity=2 * H, tuning=Tuning(keepalive_seconds=5))
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 1)
        latest = env.client.get_workflow_handle_for(WF.run, handle.id)
        for _ in range(30):
            now = utc((await latest.query(WF.status)).events[-1].at)
            await latest.signal(WF.record_presence, report(1, now))
            await latest.signal(WF.record_presence, report(0, now))
            if (await latest.describe()).run_id != handle.result_run_id:
                break
        await wait_for(latest, lambda s: s.runs == 2 and len(fake.monitors) == 2)
        await latest.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "web_ui", from_latest=True)


async def probe_idle(env: WorkflowEnvironment, stem: str = "probe_idle") -> Runs:
    """Dev server: the probe at the deadline moves the idle clock, the second confirms.

    Recorded as ``probe_idle`` when the probe was an activity of its own, and again as
    ``probe_local`` since it runs as a local activity for instances on the shared queue."""
    queue = SHARED_TASK_QUEUE if stem == "probe_local" else None
    async with running_worker(env.client, queue) as fake:
        state = make_state(f"replay-{stem}", inactivity=2, tuning=Tuning(keepalive_seconds=5))
        handle = await start(env.client, fake, state)
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert running.idle_since is not None
        fake.probe_reports = [report(0, running.idle_since + timedelta(seconds=1))]
        return await _runs(env.client, handle, stem)


async def probe_local(env: WorkflowEnvironment) -> Runs:
    return await probe_idle(env, "probe_local")


async def probe_waiting(env: WorkflowEnvironment) -> Runs:
    """Dev server: the probe finds a user inside min_connection_duration; clock restarts."""
    async with running_worker(env.client) as fake:
        fake.probe_reports = [report(0, datetime(2000, 1, 1, tzinfo=UTC), waiting=1)]
        state = make_state("replay-waiting", inactivity=2, tuning=Tuning(keepalive_seconds=5))
        handle = await start(env.client, fake, state)
        return await _runs(env.client, handle, "probe_waiting")


async def probe_late_login(env: WorkflowEnvironment) -> Runs:
    """Dev server: the probe finds a connection inside min_connection_duration; the
    deadline waits until it would count, the second probe finds only a newer one; ends."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-late-login", inactivity=2, tuning=Tuning(keepalive_seconds=5))
        state.spec.min_connection_duration = 3
        handle = await start(env.client, fake, state)
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert running.idle_since is not None
        login = running.idle_since + timedelta(seconds=1.5)
        fake.probe_reports = [waiting(login), waiting(login + timedelta(seconds=2.5))]
        return await _runs(env.client, handle, "probe_late_login")


async def connected_idle_probe(env: WorkflowEnvironment) -> Runs:
    """Dev server: a connected session shows no sign of life for connected_idle; before the
    warning a probe finds a keystroke (the deadline moves), the next finds none: warned in
    the terminal, probed at the deadline, ended as connected_idle_exceeded."""
    async with running_worker(env.client, login_messages=True) as fake:
        state = make_state("replay-connected-idle", inactivity=2, tuning=MONITORED)
        state.spec.connected_idle = 3
        now = datetime.now(UTC)
        fake.monitor_reports = [PresenceReport(connections=1, last_change=now)]
        fake.probe_reports = [
            PresenceReport(connections=1, last_change=now, last_input=now + timedelta(seconds=2))
        ]
        handle = await start(env.client, fake, state)
        return await _runs(env.client, handle, "connected_idle_probe")


async def gpu_underutilized(env: WorkflowEnvironment) -> Runs:
    """Dev server: a connected session, but every GPU under utilization_policy's minimum
    since the first report: probed at the deadline (still quiet), ended as
    gpu_underutilized although connected."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-gpu", inactivity=H, tuning=MONITORED)
        state.spec.utilization_policy = UtilizationPolicy(min_gpu_utilization=10, time_window=3)
        now = datetime.now(UTC)
        quiet = PresenceReport(connections=1, last_change=now, gpu_quiet_since=now)
        fake.monitor_reports = [quiet]
        fake.probe_reports = [quiet]
        handle = await start(env.client, fake, state)
        return await _runs(env.client, handle, "gpu_underutilized")


def waiting(since: datetime) -> PresenceReport:
    return PresenceReport(
        connections=0,
        waiting=1,
        last_change=datetime(2000, 1, 1, tzinfo=UTC),
        sessions=[SessionInfo(pid=4242, since=since, kind="exec")],
    )


async def listing_memo(env: WorkflowEnvironment) -> Runs:
    """Dev server: the status kept in the memo through presence, a change, purge and stop."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-memo", inactivity=2 * H, tuning=Tuning(keepalive_seconds=5))
        handle = await start(env.client, fake, state)
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        now = utc(running.events[-1].at)
        await handle.signal(WF.record_presence, report(1, now))
        await wait_for(handle, lambda s: s.connections == 1)
        await handle.signal(WF.record_presence, report(0, now))
        await handle.execute_update(WF.set_inactivity, H)
        await handle.execute_update(WF.set_purge_workspace, True)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "listing_memo")


async def watch_moved(env: WorkflowEnvironment) -> Runs:
    """Dev server: the monitor on the worker's watch queue (memo names it); a lapsed lease
    of that worker moves it; a stale notice for another queue changes nothing."""
    async with running_worker(env.client, SHARED_TASK_QUEUE) as fake:
        state = make_state("replay-watch", inactivity=2 * H, tuning=Tuning(keepalive_seconds=5))
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 1)
        await handle.signal(WF.watcher_gone, WatcherGone(queue="watch-of-another-worker"))
        await handle.signal(WF.watcher_gone, WatcherGone(queue=fake.watch_queue))
        await wait_for(handle, lambda s: len(fake.monitors) == 2)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "watch_moved")


async def group_keep_alive(env: WorkflowEnvironment) -> Runs:
    """Dev server: ``keep_alive: group``, kept at its deadline while a peer of its group is
    in use (the ``DevEnvGroup`` search attribute upserted, ``group_presence`` asked), then
    ended once the peer is idle too."""
    async with running_worker(env.client) as fake:
        peer = make_state("replay-group-cpu", inactivity=2 * H, tuning=Tuning(keepalive_seconds=5))
        kept = make_state("replay-group-gpu", inactivity=3, tuning=Tuning(keepalive_seconds=5))
        for state in (peer, kept):
            state.spec.owner, state.spec.group = "alice", "replay-group"
        kept.spec.keep_alive = "group"
        cpu = await start(env.client, fake, peer)
        await wait_for(cpu, lambda s: s.status == Status.RUNNING)
        await cpu.signal(WF.record_presence, report(1, datetime.now(UTC)))
        await wait_for(cpu, lambda s: s.connections == 1)
        handle = await start(env.client, fake, kept)
        await wait_for(handle, lambda s: any("kept alive" in e.message for e in s.events), 20)
        await cpu.signal(WF.record_presence, report(0, datetime.now(UTC)))
        await handle.result()
        await cpu.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "group_keep_alive")


async def worker_lease(env: WorkflowEnvironment) -> Runs:
    """Dev server: a worker's lease ends (its worker shut down) and it re-homes."""
    queue = f"watch-replay-{uuid.uuid4().hex[:8]}"
    home = f"tq-{uuid.uuid4().hex[:8]}"

    @activity.defn(name=Activity.HOLD_LEASE)
    async def hold_lease(lease: LeaseInput) -> None:
        raise ApplicationError("worker shutting down")

    @activity.defn(name=Activity.REHOME)
    async def rehome(lease: LeaseInput) -> int:
        return 3

    async with (
        Worker(env.client, task_queue=queue, activities=[hold_lease]),
        Worker(env.client, task_queue=home, workflows=[WorkerLeaseWorkflow], activities=[rehome]),
    ):
        handle = await env.client.start_workflow(
            WorkerLeaseWorkflow.run,
            LeaseInput(queue=queue),
            id=f"replay-lease-{queue}",
            task_queue=home,
        )
        assert "3 monitor(s) re-homed" in await handle.result()
        latest = (await handle.describe()).run_id
        return [("worker_lease", handle.id, latest)]


async def failsafe_policy(env: WorkflowEnvironment) -> Runs:
    """An instance with a failsafe: told the policy when ready and after each change."""
    async with running_worker(env.client) as fake:
        fake.failsafe = True
        handle = await start(env.client, fake, make_state("replay-failsafe", inactivity=2 * H))
        await wait_for(handle, lambda s: s.failsafe_policy is not None)
        await handle.execute_update(WF.set_inactivity, 12 * H)
        await wait_for(
            handle,
            lambda s: (
                s.failsafe_policy is not None and s.failsafe_policy.inactivity_seconds == 12 * H
            ),
        )
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "failsafe_policy")


async def warning_extend(env: WorkflowEnvironment) -> Runs:
    """A warning 10m ahead (webhook notified), then the deadline extended once."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-warning", inactivity=2 * H)
        state.spec.notify_webhook = "wh-" + "0" * 24
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=1, minutes=55))
        await wait_for(handle, lambda s: s.warned_for is not None)
        await handle.execute_update(WF.extend, H)
        return await _runs(env.client, handle, "warning_extend")


async def extend_capped(env: WorkflowEnvironment) -> Runs:
    """Extended by a minute while in use (max_duration's end), then the user left: the idle
    rule's deadline plus that minute at most (the extend-capped patch)."""
    async with running_worker(env.client) as fake:
        handle = await start(
            env.client, fake, make_state("replay-extend", inactivity=30, max_duration=H)
        )
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        arrived = utc(running.events[-1].at)
        await handle.signal(WF.record_presence, report(1, arrived))
        await wait_for(handle, lambda s: s.connections == 1)
        await handle.execute_update(WF.extend, 60)
        await handle.signal(WF.record_presence, report(0, arrived))
        await wait_for(handle, lambda s: s.connections == 0)
        return await _runs(env.client, handle, "extend_capped")


async def scheduled_stop(env: WorkflowEnvironment) -> Runs:
    """A fixed end set while in use: it ends then, warned 10m ahead."""
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state("replay-stop-at", inactivity=12 * H))
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        now = utc(running.events[-1].at)
        await handle.signal(WF.record_presence, report(1, now))
        await handle.execute_update(WF.set_stop_at, now + timedelta(hours=3))
        return await _runs(env.client, handle, "scheduled_stop")


async def login_messages(env: WorkflowEnvironment) -> Runs:
    """An instance with a login banner: told it when ready and after a change; a connected
    user's terminals told the warning before max_duration ends it."""
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=10 * H)
    async with running_worker(env.client, login_messages=True) as fake:
        state = make_state("replay-login", inactivity=H, max_duration=3 * H, tuning=tuning)
        handle = await start(env.client, fake, state)
        running = await wait_for(handle, lambda s: s.login is not None)
        await handle.signal(WF.record_presence, report(1, utc(running.events[-1].at)))
        await handle.execute_update(WF.set_inactivity, 2 * H)
        await wait_for(handle, lambda s: s.login is not None and "2h" in s.login.banner)
        return await _runs(env.client, handle, "login_messages")


async def shared_change(env: WorkflowEnvironment) -> Runs:
    """Shared with a colleague (the instance told the key), who then raises the threshold:
    one ``change`` update each, attributed, the webhook told."""
    bob = SharedUser(
        name="bob",
        public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBobBobBobBobBobBob"
        "BobBobBobBobBobBobBobBobBob",
    )
    async with running_worker(env.client, login_messages=True) as fake:
        state = make_state("replay-shared", inactivity=2 * H)
        state.spec.owner = "alice"
        state.spec.notify_webhook = "wh-" + "2" * 24
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.login is not None)
        await handle.execute_update(WF.change, Change(shared_with=[bob], by="alice"))
        await wait_for(handle, lambda s: s.login is not None and bool(s.login.shared_keys))
        await handle.execute_update(
            WF.change, Change(inactivity=DurationSetting(seconds=3 * H), extend=H, by="bob")
        )
        await wait_for(handle, lambda s: len(fake.notices) == 2)
        return await _runs(env.client, handle, "shared_change")


async def auto_threshold(env: WorkflowEnvironment) -> Runs:
    """``inactivity_duration: auto``: the owner's breaks read once (owner_breaks, the
    adaptive-idleness patch), three breaks move the threshold, then it ends idle."""
    began = utc(await env.get_current_time())
    other = OwnerBreaks(breaks=[Break(ended=began - timedelta(days=1), seconds=600)])
    tuning = Tuning(search_attributes=False, monitor=False, keepalive_bound_seconds=10 * H)
    async with running_worker(env.client, owner_breaks=other) as fake:
        state = make_state("replay-auto", inactivity=4 * H, tuning=tuning)
        state.spec.owner = "alice"
        state.spec.inactivity_auto = InactivityBounds(min=900, max=4 * H)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.auto is not None and s.auto.others_read)
        for users in (1, 0, 1, 0, 1, 0, 1, 0):
            await env.sleep(timedelta(minutes=5))
            now = utc(await env.get_current_time())
            await handle.signal(WF.record_presence, report(users, now))
            await wait_for(handle, lambda s, users=users: s.connections == users)  # type: ignore[misc]
        return await _runs(env.client, handle, "auto_threshold")


async def idle_budget(env: WorkflowEnvironment) -> Runs:
    """``idle_budget`` $2 at a configured $30/h: it ends 4 minutes after the last user."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-budget", inactivity=H)
        state.spec.price_per_hour = 30.0
        state.spec.idle_budget = 2.0
        handle = await start(env.client, fake, state)
        return await _runs(env.client, handle, "idle_budget")


async def suspend_idle_resume(env: WorkflowEnvironment) -> Runs:
    """Idle with on_idle: suspend: suspended, resumed on request (a new port), then
    stopped (the monitor's stop and restart: ``suspend_memo``)."""
    async with running_worker(env.client) as fake:
        state = make_state(
            "replay-suspend", inactivity=H, on_idle="suspend", suspendable=True, delete_after=None
        )
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=1, minutes=1))
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_resume, "back")
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "suspend_idle_resume")


async def suspend_delete_after(env: WorkflowEnvironment) -> Runs:
    """Suspended on request; warned a day ahead (webhook), then deleted by delete_after."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-delete-after", suspendable=True, delete_after=3 * 86_400)
        state.spec.notify_webhook = "wh-" + "4" * 24
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, "lunch")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        return await _runs(env.client, handle, "suspend_delete_after")


async def suspend_storage_cost(env: WorkflowEnvironment) -> Runs:
    """A priced instance (running and storage) suspended, warned with what its storage
    costs against running and what suspension saved, then deleted by delete_after."""
    async with running_worker(
        env.client, price_per_hour=1.006, storage_price_per_hour=0.011
    ) as fake:
        state = make_state("replay-storage-cost", suspendable=True, delete_after=3 * 86_400)
        state.spec.notify_webhook = "wh-" + "5" * 24
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, "lunch")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        return await _runs(env.client, handle, "suspend_storage_cost")


async def suspend_free_machine(env: WorkflowEnvironment) -> Runs:
    """A machine that costs nothing ($0/h, as local) suspended, warned without cost words,
    then deleted by delete_after."""
    async with running_worker(env.client, price_per_hour=0.0) as fake:
        state = make_state("replay-free-machine", suspendable=True, delete_after=3 * 86_400)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, "lunch")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        return await _runs(env.client, handle, "suspend_free_machine")


async def suspend_idle_warning(env: WorkflowEnvironment) -> Runs:
    """``on_idle: suspend``: warned (webhook) that it is suspended, then suspended, then
    stopped."""
    async with running_worker(env.client) as fake:
        state = make_state(
            "replay-idle-warning", inactivity=H, on_idle="suspend", suspendable=True,
            delete_after=None,
        )  # fmt: skip
        state.spec.notify_webhook = "wh-" + "6" * 24
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=1, minutes=1))
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "suspend_idle_warning")


async def suspended_stop(env: WorkflowEnvironment) -> Runs:
    """A resume asked while suspending, a suspend again, then a stop of the suspended one;
    garbage inputs refused along the way."""
    gate = asyncio.Event()
    async with running_worker(env.client, suspend_gate=gate) as fake:
        state = make_state("replay-suspended-stop", suspendable=True, max_duration=24 * H)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: bool(fake.suspends))
        await handle.execute_update(WF.request_resume, None)
        gate.set()
        await wait_for(handle, lambda s: s.status == Status.RUNNING and bool(fake.resumes))
        for garbage in (42, "r" * 5000):
            with contextlib.suppress(WorkflowUpdateFailedError):
                await handle.execute_update(WF.request_resume, garbage)  # type: ignore[arg-type]
        await handle.execute_update(WF.request_suspend, "again")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_stop, "done")
        return await _runs(env.client, handle, "suspended_stop")


async def suspended_continue_as_new(env: WorkflowEnvironment) -> Runs:
    """Suspended, its history grown past the cap by changes: it continues as new while
    suspended, then is resumed and stopped in the second run."""
    tuning = Tuning(search_attributes=False, monitor=False, max_history_events=40)
    async with running_worker(env.client) as fake:
        state = make_state("replay-suspended-can", suspendable=True, tuning=tuning)
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        minutes = 0
        while (await handle.query(WF.status)).runs == 1:  # until it continued as new once
            minutes += 1
            threshold = DurationSetting(seconds=3600 + 60 * minutes)
            await handle.execute_update(WF.change, Change(inactivity=threshold))
        latest = env.client.get_workflow_handle_for(WF.run, handle.id)
        await latest.execute_update(WF.request_resume, None)
        await wait_for(latest, lambda s: s.status == Status.RUNNING)
        await latest.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "suspended_continue_as_new")


async def suspend_memo(env: WorkflowEnvironment) -> Runs:
    """Dev server: suspended and resumed with the memo and search attributes kept current;
    the monitor stops with the suspension and starts again with the resume."""
    async with running_worker(env.client) as fake:
        state = make_state(
            "replay-suspend-memo",
            inactivity=2 * H,
            suspendable=True,
            tuning=Tuning(keepalive_seconds=5),
        )
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: len(fake.monitors) == 1)
        await handle.execute_update(WF.request_suspend, None)
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        assert fake.running_monitors == 0
        await handle.execute_update(WF.request_resume, None)
        await wait_for(handle, lambda s: s.status == Status.RUNNING and len(fake.monitors) == 2)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "suspend_memo")


async def org_policy(env: WorkflowEnvironment) -> Runs:
    """An admin's policy: max_duration off -> 2d and a daily stop, a version sent twice (the second
    refused, unrecorded), then a lowered idle bound on an environment already idle past
    it: its warning, then the end."""
    async with running_worker(env.client) as fake:
        handle = await start(env.client, fake, make_state("replay-org-policy", inactivity=12 * H))
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        assert running.ready_at is not None
        first = OrgPolicy(
            version=1,
            max_inactivity=24 * H,
            max_duration=48 * H,
            stop_at_daily="20:00",
            next_stop=running.ready_at + timedelta(hours=30),
        )
        await handle.execute_update(WF.apply_org_policy, first)
        with contextlib.suppress(WorkflowUpdateFailedError):
            await handle.execute_update(WF.apply_org_policy, first)
        await env.sleep(timedelta(hours=9))
        await handle.execute_update(WF.apply_org_policy, OrgPolicy(version=2, max_inactivity=8 * H))
        return await _runs(env.client, handle, "org_policy")


async def org_policy_suspended(env: WorkflowEnvironment) -> Runs:
    """A policy version reaching a suspended environment (its threshold lowered while it
    sleeps), then the resume and an idle suspension at the lowered threshold, then a stop."""
    async with running_worker(env.client) as fake:
        state = make_state(
            "replay-org-policy-suspended",
            inactivity=12 * H,
            on_idle="suspend",
            suspendable=True,
            delete_after=None,
        )
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.request_suspend, "lunch")
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.apply_org_policy, OrgPolicy(version=1, max_inactivity=8 * H))
        await handle.execute_update(WF.request_resume, "back")
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await env.sleep(timedelta(hours=8, minutes=1))
        await wait_for(handle, lambda s: s.status == Status.SUSPENDED)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "org_policy_suspended")


async def org_policy_memo(env: WorkflowEnvironment) -> Runs:
    """Dev server: two policy versions that change the environment (the memo row then
    carries ``policy_changes``), one that changes nothing, then a stop."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-org-policy-memo", inactivity=12 * H, tuning=Tuning())
        handle = await start(env.client, fake, state)
        await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(WF.apply_org_policy, OrgPolicy(version=1, max_inactivity=8 * H))
        await handle.execute_update(WF.apply_org_policy, OrgPolicy(version=2, max_inactivity=9 * H))
        await handle.execute_update(WF.apply_org_policy, OrgPolicy(version=3, max_inactivity=9 * H))
        await wait_for(handle, lambda s: s.policy_changes == 2)
        await handle.execute_update(WF.request_stop, None)
        return await _runs(env.client, handle, "org_policy_memo")


async def policy_workflow(env: WorkflowEnvironment) -> Runs:
    """Dev server: the policy workflow sets a scope, fans it out, and sets another."""
    home = f"tq-{uuid.uuid4().hex[:8]}"
    sent: list[int] = []

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def fan_out_policy(policies: PolicySet) -> FanOutResult:
        sent.append(policies.version)
        return FanOutResult(version=policies.version, environments=2, changed=1, already=1)

    async with Worker(
        env.client, task_queue=home, workflows=[PolicyWorkflow], activities=[fan_out_policy]
    ):
        handle = await env.client.start_workflow(
            PolicyWorkflow.run,
            PolicyStatus(),
            id=f"replay-policy-{home}",
            task_queue=home,
        )
        await handle.execute_update(
            PolicyWorkflow.set_policy, PolicyChange(keys={"max_inactivity": 8 * H}, by="admin")
        )
        await handle.execute_update(
            PolicyWorkflow.set_policy,
            PolicyChange(user="alice", keys={"no_off": True, "default_inactivity": H}),
        )
        while not sent or sent[-1] < 2:
            await asyncio.sleep(0.1)
        while (await handle.query(PolicyWorkflow.policy)).reached is None:
            await asyncio.sleep(0.1)
        await handle.terminate("recorded")
        latest = (await handle.describe()).run_id
        return [("policy_workflow", handle.id, latest)]


async def org_policy_budget(env: WorkflowEnvironment) -> Runs:
    """An idle budget spent: the threshold tightened to the floor, the webhook told."""
    async with running_worker(env.client) as fake:
        state = make_state("replay-org-policy-budget", inactivity=2 * H)
        state.spec.owner = "alice"
        state.spec.notify_webhook = "team"
        handle = await start(env.client, fake, state)
        await wait_running(handle)
        tightened = OrgPolicy(
            version=2,
            max_inactivity=900,
            idle_budget_weekly=50.0,
            floor_inactivity=900,
            budget_spent=51.2,
            scopes={"max_inactivity": "idle budget"},
        )
        await handle.execute_update(WF.apply_org_policy, tightened)
        while not fake.notices:
            await asyncio.sleep(0.05)
        return await _runs(env.client, handle, "org_policy_budget")


async def policy_idle_budget(env: WorkflowEnvironment) -> Runs:
    """An idle budget: checked right after the change (under it), then by the timer
    (passed: a new version with alice over, fanned out)."""
    home = f"tq-{uuid.uuid4().hex[:8]}"
    spend = {"alice": 10.0}
    sent: list[int] = []
    checks: list[int] = []

    @activity.defn(name=Activity.CHECK_IDLE_BUDGETS)
    async def check_idle_budgets(policies: PolicySet) -> IdleSpends:
        checks.append(policies.version)
        return IdleSpends(spends=dict(spend), checked_at=datetime.now(UTC))

    @activity.defn(name=Activity.FAN_OUT_POLICY)
    async def fan_out_policy(policies: PolicySet) -> FanOutResult:
        sent.append(policies.version)
        return FanOutResult(version=policies.version, environments=1, changed=1)

    async with Worker(
        env.client,
        task_queue=home,
        workflows=[PolicyWorkflow],
        activities=[check_idle_budgets, fan_out_policy],
    ):
        handle = await env.client.start_workflow(
            PolicyWorkflow.run, PolicyStatus(), id=f"replay-budget-{home}", task_queue=home
        )
        await handle.execute_update(
            PolicyWorkflow.set_policy,
            PolicyChange(keys={"idle_budget_weekly": 50.0, "floor_inactivity": 900}, by="admin"),
        )
        while not checks:
            await asyncio.sleep(0.05)
        spend["alice"] = 51.2
        await env.sleep(timedelta(minutes=6))
        while not sent or sent[-1] < 2:
            await asyncio.sleep(0.05)
        while (await handle.query(PolicyWorkflow.policy)).reached.version < 2:  # type: ignore[union-attr]
            await asyncio.sleep(0.05)
        await handle.terminate("recorded")
        return [("policy_idle_budget", handle.id, (await handle.describe()).run_id)]


TIME_SKIPPING: list[Scenario] = [
    idle_timeout,
    user_activity_and_updates,
    silent_monitor,
    max_duration,
    lowered_threshold,
    stop,
    stop_signal,
    workflow_cancelled,
    stopped_while_provisioning,
    cancelled_while_provisioning,
    provisioning_failure,
    instance_lost,
    continue_as_new,
    failsafe_policy,
    warning_extend,
    extend_capped,
    scheduled_stop,
    login_messages,
    shared_change,
    coerced_signals,
    garbage_signals,
    auto_threshold,
    idle_budget,
    suspend_idle_resume,
    suspend_delete_after,
    suspend_storage_cost,
    suspend_free_machine,
    suspend_idle_warning,
    suspended_stop,
    suspended_continue_as_new,
    org_policy,
    policy_idle_budget,
    org_policy_budget,
    org_policy_suspended,
]
DEV_SERVER: list[Scenario] = [
    web_ui,
    probe_idle,
    probe_local,
    probe_waiting,
    probe_late_login,
    connected_idle_probe,
    gpu_underutilized,
    listing_memo,
    watch_moved,
    worker_lease,
    suspend_memo,
    policy_workflow,
    group_keep_alive,
    org_policy_memo,
]


async def _record(env: WorkflowEnvironment, scenarios: list[Scenario]) -> list[Path]:
    written = []
    for scenario in scenarios:
        for stem, workflow_id, run_id in await scenario(env):
            handle = env.client.get_workflow_handle(workflow_id, run_id=run_id)
            history = await handle.fetch_history()
            path = HISTORIES / f"{stem}.json"
            path.write_text(history.to_json() + "\n")
            written.append(path)
    return written


async def main(only: set[str]) -> int:
    """Record every scenario, or only those named on the command line."""
    time_skipping = [s for s in TIME_SKIPPING if not only or s.__name__ in only]
    dev_server = [s for s in DEV_SERVER if not only or s.__name__ in only]
    # The fakes fail on purpose; their tracebacks would only bury the list of files written.
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)
    HISTORIES.mkdir(parents=True, exist_ok=True)
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binaries.test_server()),
    ) as env:
        written = await _record(env, time_skipping)
    async with await start_test_dev_server() as env:
        written += await _record(env, dev_server)
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(set(sys.argv[1:]))))
