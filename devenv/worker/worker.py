"""Builds the workers: the shared queue and this host's queue (for local instances)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from temporalio.client import Client
from temporalio.worker import Worker

from devenv.activities.activities import EnvironmentActivities, all_activities
from devenv.activities.policy_fanout import PolicyActivities, policy_activities
from devenv.activities.watching import WatchActivities, watch_activities
from devenv.backends import registry
from devenv.backends.base import Backend
from devenv.errors import UserError
from devenv.keys import ensure_internal_key
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.settings import Settings, host_task_queue, watch_task_queue
from devenv.worker.lease import holding_lease
from devenv.worker.recovery import STICKY_TIMEOUT, recover
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.lease import WorkerLeaseWorkflow
from devenv.workflows.policies import HEARTBEAT_THROTTLE
from devenv.workflows.policy import PolicyWorkflow

log = logging.getLogger(__name__)

MAX_CONCURRENT_ACTIVITIES = 20_000
"""Each running environment holds one monitor activity for its whole life: on the watch
queue's worker (ssh, aws) or the host's (local), which also run provision, probe and
terminate for local instances. Past this many per worker, those would wait behind
monitors that never end (benchmarks/scale.py measured the stall). Sized for 10,000
environments per machine with room to spare; an idle monitor is one sleeping coroutine."""
MAX_CACHED_WORKFLOWS = 10_000
"""Every running environment stays cached (0.32 MB of the worker's RSS each at 10,000
idle: benchmarks/README.md, memory per environment): a timer or signal for an evicted
one replays its whole history in a fresh sandbox, which doubled the worker's CPU per
termination and took deadline -> terminated p99 from 0.3 s to 1.9 s in
benchmarks/scale.py (SDK default: 1,000)."""


def build_backends(settings: Settings) -> dict[str, Backend]:
    """One object per registered backend, shared by every activity of this worker.

    A backend whose optional dependencies are not installed (``aws`` without boto3) is
    left out with a warning; its environments fail to provision saying it is missing.
    """
    backends: dict[str, Backend] = {}
    for name in registry.names():
        try:
            backends[name] = registry.backend_class(name).for_worker(settings)
        except ImportError as problem:
            log.warning(
                "backend %s unavailable (%s); install it: pip install 'devenv[%s]'",
                name,
                problem,
                name,
            )
    return backends


def build_workers(client: Client, settings: Settings, watch_queue: str) -> list[Worker]:
    """The shared queue's worker (workflows and any-host activities), this host's queue
    (local instances) and this process's watch queue (monitors and the lease)."""
    ensure_internal_key(settings)
    acts = EnvironmentActivities(client, settings, build_backends(settings))
    watch = WatchActivities(client, watch_queue)
    activities = all_activities(acts)
    shared = Worker(
        client,
        task_queue=SHARED_TASK_QUEUE,
        workflows=[DevEnvironmentWorkflow, WorkerLeaseWorkflow, PolicyWorkflow],
        activities=activities
        + watch_activities(watch)
        + policy_activities(PolicyActivities(client)),
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    host = Worker(
        client,
        task_queue=host_task_queue(),
        activities=activities,
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    watching = Worker(
        client,
        task_queue=watch_queue,
        activities=[acts.monitor, watch.hold_lease],
        max_concurrent_activities=MAX_CONCURRENT_ACTIVITIES,
        max_heartbeat_throttle_interval=HEARTBEAT_THROTTLE,
    )
    return [shared, host, watching]


class WorkerFailedError(UserError):
    """A worker stopped by itself (a fatal error): better a loud exit than a server that
    looks alive and serves nobody; `devenv start` then starts a fresh one."""


@contextlib.asynccontextmanager
async def running_workers(
    client: Client, settings: Settings, watch_queue: str | None = None
) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run the workers for the duration of the block; shut them down gracefully after.

    Starting, they take over what a crashed predecessor left (see recovery). The lease
    on this process's watch queue is taken before any monitor can be sent there.
    """
    watch_queue = watch_queue or watch_task_queue()
    workers = build_workers(client, settings, watch_queue)
    async with holding_lease(client, watch_queue):
        tasks = [asyncio.create_task(worker.run()) for worker in workers]
        recovering = asyncio.create_task(recover(client, settings))
        try:
            yield tasks
        finally:
            recovering.cancel()
            await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
            await asyncio.gather(*tasks, recovering, return_exceptions=True)


async def run_until(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    """Run the workers until ``stop`` is set; WorkerFailedError if one ends before."""
    async with running_workers(client, settings) as tasks:
        stopping = asyncio.create_task(stop.wait())
        try:
            done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if stopping not in done:
            failed = next(iter(done))
            error = None if failed.cancelled() else failed.exception()
            raise WorkerFailedError(f"the devenv worker stopped by itself: {error or 'no error'}")
