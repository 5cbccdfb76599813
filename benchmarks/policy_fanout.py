"""How fast an admin's policy reaches N running environments, and whether a worker
killed mid-way loses or doubles anything.

A private world in a temp dir (``benchmarks.scale``'s: the real embedded Temporal dev
server, K real worker processes with the benchmark backend, whose instances cost
nothing): starts N idle environments with a 12h idle threshold, then

  1. ``AsyncClient.set_policy(max_inactivity="8h")`` and waits until the policy
     workflow says its fan-out reached every running environment  -> fan-out time;
  2. checks every environment: its listed threshold is 8h (the memo each workflow
     publishes itself) and its events hold the "lowered ... by policy" line exactly once;
  3. with ``--kill-worker-at S`` (and ``--workers 2``): the worker running the fan-out
     gets ``kill -9`` S seconds in; the other takes over the retried activity, and the
     same checks say what was lost (no 8h) or doubled (two lines).

``progress_seen`` lists the progress ``policy show`` read while it was being sent
(seconds in, environments answered so far), one entry per new heartbeat.

With ``--floor``, first two versions that change nothing (max-inactivity 24h, then
23h, above every environment's 12h): the second one's fan-out is the floor of any
design in which every workflow applies a version, one accepted update per environment
that records only its accepted and completed events (``floor_s``, ``floor_cpu_ms_per_env``);
every environment is then checked to hold that version with its 12h untouched.

Prints one JSON object (``--json``) or a short summary.

    nice -n 19 python -m benchmarks.policy_fanout --envs 1000 [--json]
    nice -n 19 python -m benchmarks.policy_fanout --envs 1000 --workers 2 --kill-worker-at 2
    nice -n 19 python -m benchmarks.policy_fanout --envs 10000 --floor --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from temporalio.client import Client

from benchmarks import bench_backend, scale
from devenv.backends import registry
from devenv.client.async_client import AsyncClient
from devenv.models.names import Query
from devenv.models.state import WORKFLOW_TYPE, EnvState
from devenv.workflows.policy import POLICY_WORKFLOW_ID

H = 3600
LOWERED = "inactivity threshold lowered from 12h to 8h by policy (max-inactivity 8h)"
CHECK_CONCURRENCY = 32


async def start_idle(client: AsyncClient, n: int, concurrency: int) -> float:
    """N environments nobody connects to, idle threshold 12h; seconds taken."""
    gate = asyncio.Semaphore(concurrency)
    began = time.monotonic()

    async def one(index: int) -> None:
        config = {
            "type": "dev-environment",
            "backend": bench_backend.NAME,
            "inactivity_duration": 12 * H,
            "bench": {"connect_at": None, "leave_at": None},
        }
        async with gate:
            await client.start(config, wait=False, name=f"{scale.NAME_PREFIX}{index:05d}")

    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - began


async def until_running(temporal: Client, n: int, timeout: float) -> None:
    give_up = time.monotonic() + timeout
    while await scale.count(temporal, "running") < n:
        if time.monotonic() > give_up:
            raise RuntimeError(f"not all {n} environments running after {timeout:.0f}s")
        await asyncio.sleep(0.5)


async def fan_out_worker(temporal: Client) -> str | None:
    """The identity (``PID@host``) of the worker running the fan-out activity now."""
    description = await temporal.get_workflow_handle(POLICY_WORKFLOW_ID).describe()
    for pending in description.raw_description.pending_activities:
        if pending.last_worker_identity:
            return pending.last_worker_identity
    return None


async def judged(
    temporal: Client, ids: list[str], verdicts: tuple[str, ...], judge: Callable[[EnvState], str]
) -> dict[str, int]:
    """How many environments got each verdict: every one's own state (its query), judged."""
    gate = asyncio.Semaphore(CHECK_CONCURRENCY)
    counts = dict.fromkeys(verdicts, 0)

    async def one(workflow_id: str) -> None:
        async with gate:
            handle = temporal.get_workflow_handle(workflow_id, result_type=EnvState)
            state: EnvState = await handle.query(Query.STATUS, result_type=EnvState)
        counts[judge(state)] += 1

    await asyncio.gather(*(one(w) for w in ids))
    return counts


def lowered_once(state: EnvState) -> str:
    """Threshold 8h and one "lowered" line (ok), none (lost), two (doubled)."""
    lines = sum(1 for event in state.events if event.message == LOWERED)
    if state.spec.inactivity_duration != 8 * H or lines == 0:
        return "lost"
    return "doubled" if lines > 1 else "ok"


async def check_all(temporal: Client, ids: list[str]) -> dict[str, int]:
    """Per environment: threshold 8h and one "lowered" line (ok), none (lost), two (doubled)."""
    return await judged(temporal, ids, ("ok", "lost", "doubled"), lowered_once)


async def run(args: argparse.Namespace, root: Path, report: dict[str, Any]) -> None:
    options = scale.parse(["--envs", str(args.envs), "--workers", str(args.workers)])
    world = scale.World(root, options)
    report.update(envs=args.envs, workers=args.workers, cores=os.cpu_count())
    try:
        temporal = await world.start()
        registry.register(bench_backend.ENTRY)
        client = AsyncClient(settings=world.settings)
        took = await start_idle(client, args.envs, args.concurrency)
        await until_running(temporal, args.envs, timeout=max(120.0, args.envs * 0.2))
        report["start_s"] = round(took, 1)
        ids = [
            execution.id
            async for execution in temporal.list_workflows(
                f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
            )
        ]
        report["running"] = len(ids)

        if args.floor:
            await reach(world, client, "24h")  # the first version also records the patch
            floor, meter = await reach(world, client, "23h")
            report["floor_s"] = round(floor, 2)
            report["floor_per_s"] = round(len(ids) / floor, 1)
            report["floor_cpu_ms_per_env"] = meter.per_item_ms(len(ids))
            report["floor_checked"] = await check_unchanged(temporal, ids, version=2)

        meter = scale.CpuMeter(dict(world.pids))
        meter.start()
        began = time.monotonic()
        status = await client.set_policy(max_inactivity="8h")
        report["set_ms"] = round((time.monotonic() - began) * 1000)
        version = status.policies.version
        killed: str | None = None
        seen: dict[int, float] = {}  # progress shown while sending: answered -> seconds in
        while status.reached is None or status.reached.version < version:
            world.group.check_alive()
            if args.kill_worker_at is not None and killed is None:
                if time.monotonic() - began >= args.kill_worker_at:
                    killed = await kill_fan_out_worker(world, temporal)
                    report["killed"] = killed
                    report["killed_at_s"] = round(time.monotonic() - began, 2)
            await asyncio.sleep(0.05)
            status = await client.policies()
            if status.sending is not None and status.sending.answered not in seen:
                seen[status.sending.answered] = round(time.monotonic() - began, 1)
        fan_out = time.monotonic() - began
        report["fan_out_s"] = round(fan_out, 2)
        report["per_s"] = round(len(ids) / fan_out, 1)
        report["fan_out_cpu_pct_by_process"] = meter.stop()
        report["fan_out_cpu_ms_per_env"] = meter.per_item_ms(len(ids))
        report["progress_seen"] = [[s, n] for n, s in sorted(seen.items(), key=lambda i: i[1])]
        report["peak_rss_mb"] = world.peak_rss()
        report["reached"] = status.reached.model_dump() if status.reached else None
        report["checked"] = await check_all(temporal, ids)
        report["target_met"] = (
            args.envs >= 10_000 and fan_out <= 30 and report["checked"]["ok"] == len(ids)
        )
    finally:
        world.group.stop_all()


async def reach(
    world: scale.World, client: AsyncClient, bound: str
) -> tuple[float, scale.CpuMeter]:
    """Set max-inactivity ``bound`` and wait until its fan-out reached every environment;
    seconds taken and the CPU meter of the processes meanwhile."""
    meter = scale.CpuMeter(dict(world.pids))
    meter.start()
    began = time.monotonic()
    status = await client.set_policy(max_inactivity=bound)
    version = status.policies.version
    while status.reached is None or status.reached.version < version:
        world.group.check_alive()
        await asyncio.sleep(0.05)
        status = await client.policies()
    took = time.monotonic() - began
    meter.stop()
    return took, meter


async def check_unchanged(temporal: Client, ids: list[str], version: int) -> dict[str, int]:
    """Per environment: it holds policy ``version`` (ok) or not (lost), its 12h threshold
    untouched and no policy line in its events (else changed)."""

    def judge(state: EnvState) -> str:
        held = state.org_policy.version if state.org_policy is not None else 0
        moved = any("by policy" in event.message for event in state.events)
        if held != version:
            return "lost"
        return "changed" if state.spec.inactivity_duration != 12 * H or moved else "ok"

    return await judged(temporal, ids, ("ok", "lost", "changed"), judge)


async def kill_fan_out_worker(world: scale.World, temporal: Client) -> str:
    """``kill -9`` the worker whose identity runs the fan-out (else worker0)."""
    identity = await fan_out_worker(temporal)
    pid = identity.split("@", 1)[0] if identity else ""
    chosen = next((n for n, p in world.worker_pids().items() if str(p) == pid), "worker0")
    world.kill(chosen)
    return chosen


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--envs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=32, help="SDK starts in flight")
    parser.add_argument(
        "--kill-worker-at", type=float, help="kill -9 the fan-out's worker this many s in"
    )
    parser.add_argument(
        "--floor", action="store_true", help="first measure a version that changes nothing"
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="abort after (s)")
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


async def bounded(args: argparse.Namespace, root: Path, report: dict[str, Any]) -> None:
    try:
        async with asyncio.timeout(args.timeout):
            await run(args, root, report)
    except TimeoutError:
        report["aborted"] = f"timeout after {args.timeout:.0f}s"
    except Exception as error:  # the report so far is still worth printing
        traceback.print_exc()
        report["aborted"] = f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="devenv-policy-fanout-"))
    os.environ["HOME"] = str(root / "user")  # the SDK reads the user's key from HOME
    report: dict[str, Any] = {}
    try:
        asyncio.run(bounded(args, root, report))
    except KeyboardInterrupt:
        report["aborted"] = "interrupted"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(report))
    else:
        checked = report.get("checked", {})
        print(
            f"{report.get('running', 0)} environments: policy reached all in "
            f"{report.get('fan_out_s')} s ({report.get('per_s')}/s); ok {checked.get('ok')}, "
            f"lost {checked.get('lost')}, doubled {checked.get('doubled')}"
        )
        print(json.dumps(report, indent=1))
    return 1 if "aborted" in report else 0


if __name__ == "__main__":
    sys.exit(main())
