"""The real devenv worker with the benchmark backend registered: one process of
``benchmarks.scale`` (``--workers K`` starts K of them).

Reads the usual ``DEVENV_*`` variables, registers ``benchmarks.bench_backend``, then
runs ``devenv.worker.worker.run_until`` until SIGTERM or SIGINT.

``DEVENV_BENCH_WORKER_TUNING`` (JSON, benchmark experiments only) overrides keyword
arguments of every ``temporalio.worker.Worker`` devenv builds, e.g.
``{"max_cached_workflows": 100, "max_concurrent_activities": 100}``;
``workflow_task_pollers`` / ``activity_task_pollers`` set the poller maximum;
``passthrough_modules`` (a list) passes those modules through the workflow sandbox;
keys ending in ``_timeout`` or ``_interval`` are seconds.

``DEVENV_BENCH_MONITOR_HEARTBEAT`` (seconds, benchmark experiments only) replaces the
heartbeat timeout the workflow gives monitors on their instance's own queue (since
monitors of shared-queue instances, the benchmark's, run on a worker's watch queue
without heartbeats, only a worker without a watch queue uses it: ``MONITOR_HEARTBEAT`` of
``devenv/workflows/policies.py``, read by ``devenv/workflows/monitoring.py``, a module
the workflow sandbox passes through): the SDK sends a monitor's heartbeats at most every
``min(0.8 x heartbeat timeout, max_heartbeat_throttle_interval)``, so a longer throttle
than 24 s needs both this and ``max_heartbeat_throttle_interval`` in the tuning.
``DEVENV_BENCH_HEARTBEAT_EVERY`` (seconds) replaces how often the activities call
``activity.heartbeat()`` (``HEARTBEAT_SECONDS`` of ``devenv/activities/activities.py``,
5 s; the SDK only forwards what its throttle lets through). Keep it under the 30 s
heartbeat timeout of provision and terminate.

    python -m benchmarks.scale_worker
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import timedelta
from typing import Any

from temporalio.worker import PollerBehaviorSimpleMaximum, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import devenv.worker.worker as devenv_worker
from benchmarks import bench_backend
from devenv.activities import activities
from devenv.backends import registry
from devenv.settings import Settings
from devenv.worker.temporal_connection import wait_reachable
from devenv.workflows import monitoring

TUNING_VAR = "DEVENV_BENCH_WORKER_TUNING"
MONITOR_HEARTBEAT_VAR = "DEVENV_BENCH_MONITOR_HEARTBEAT"
HEARTBEAT_EVERY_VAR = "DEVENV_BENCH_HEARTBEAT_EVERY"
POLLER_KEYS = {
    "workflow_task_pollers": "workflow_task_poller_behavior",
    "activity_task_pollers": "activity_task_poller_behavior",
}


def tuning_overrides(raw: str | None) -> dict[str, Any]:
    """The Worker keyword arguments of ``DEVENV_BENCH_WORKER_TUNING``."""
    overrides: dict[str, Any] = {}
    for key, value in (json.loads(raw) if raw else {}).items():
        if key in POLLER_KEYS:
            overrides[POLLER_KEYS[key]] = PollerBehaviorSimpleMaximum(maximum=int(value))
        elif key.endswith(("_timeout", "_interval")):
            overrides[key] = timedelta(seconds=float(value))
        elif key == "passthrough_modules":
            restrictions = SandboxRestrictions.default.with_passthrough_modules(*value)
            overrides["workflow_runner"] = SandboxedWorkflowRunner(restrictions=restrictions)
        else:
            overrides[key] = value
    return overrides


def install_tuning(overrides: dict[str, Any]) -> None:
    """Make devenv's ``build_workers`` pass ``overrides`` to every Worker it builds."""
    if not overrides:
        return

    class TunedWorker(Worker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(overrides)
            super().__init__(*args, **kwargs)

    devenv_worker.__dict__["Worker"] = TunedWorker


def install_monitor_heartbeat(raw: str | None, every: str | None) -> None:
    """Make the workflows this worker runs schedule monitors with this heartbeat timeout,
    and its activities call ``activity.heartbeat()`` this often."""
    if raw:
        monitoring.__dict__["MONITOR_HEARTBEAT"] = timedelta(seconds=float(raw))
    if every:
        activities.__dict__["HEARTBEAT_SECONDS"] = float(every)


async def serve() -> None:
    """Connect, run the workers, stop gracefully on SIGTERM/SIGINT."""
    settings = Settings.load()
    client = await wait_reachable(settings, 60.0)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await devenv_worker.run_until(client, settings, stop)


def main() -> int:
    registry.register(bench_backend.ENTRY)
    install_tuning(tuning_overrides(os.environ.get(TUNING_VAR)))
    install_monitor_heartbeat(
        os.environ.get(MONITOR_HEARTBEAT_VAR), os.environ.get(HEARTBEAT_EVERY_VAR)
    )
    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
