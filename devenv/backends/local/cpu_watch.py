"""The local instance's CPU as a sign of life (``connected_idle_cpu``), and the host's
GPUs for ``utilization_policy``.

Every ``WINDOW_SECONDS`` the server sums the CPU its process tree (every session and
whatever they left behind: it is a subreaper) used, and tells the counter when that was
at least the busy share, so a connected session running a build is not "idle".
"""

from __future__ import annotations

import asyncio
import os
import time

from devenv.agent.presence.signs import (
    GPU_INTERVAL_SECONDS,
    WINDOW_SECONDS,
    CpuMeter,
    GpuWatch,
    read_cpu_ticks,
)
from devenv.backends.local import proctools
from devenv.backends.local.counter import ConnectionCounter


async def watch_cpu(
    counter: ConnectionCounter, busy_percent: float, window: float = WINDOW_SECONDS
) -> None:
    """Until cancelled: ``counter.busy()`` after each window the tree used the share."""
    meter = CpuMeter(float(os.sysconf("SC_CLK_TCK")), window)
    while True:
        ticks = await asyncio.to_thread(lambda: read_cpu_ticks(proctools.descendants()))
        percent = meter.sample(ticks, time.monotonic())
        if percent is not None and percent >= busy_percent:
            counter.busy()
        await asyncio.sleep(window / 2)


async def watch_gpus(
    counter: ConnectionCounter, minimum: float, interval: float = GPU_INTERVAL_SECONDS
) -> None:
    """Until cancelled: sample every GPU (nvidia-smi), tell the counter since when all
    were under ``minimum`` percent (or why they could not be read)."""
    watch = GpuWatch(minimum, interval)
    while True:
        await asyncio.to_thread(watch.poll, time.time())
        counter.gpus(watch.quiet_since, watch.error)
        await asyncio.sleep(interval)
