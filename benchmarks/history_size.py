"""History per environment per simulated day: idle, connected all day, or a user who
connects and disconnects every minute.

Runs the real ``DevEnvironmentWorkflow`` on the time-skipping test server (the Java
``temporal-test-server`` from its PyPI wheel, as the workflow tests use it), with
devenv's search attributes registered so that the workflow upserts its search
attributes and memo as it does in production. The activities are stand-ins with the
real names (provision, probe, terminate, apply_policy, notify), and the monitor is
played by this driver, which signals ``record_activity`` as the real monitor would: the
time-skipping server stops its clock while any activity is outstanding, so the
workflow runs with ``Tuning(monitor=False)`` (the one monitor activity of a run adds
2-3 events per run in production: scheduled, cancel requested, and its end).

Scenarios, each one environment for ``--hours`` of server time (24 by default; fewer
hours are extrapolated to a day, and the report says so):

  idle       nobody connected (inactivity threshold 2 days, so it lives through the day)
  connected  one user connected all day; the monitor's keepalive every 60 s (``Tuning``)
  churn      a user connects at every minute's start and leaves 30 s later: one connect
             and one disconnect every minute (2,880 signals a day)

For each: history events and bytes (the serialized events of every run, summed) in
the measured span, continue-as-new runs, the longest run (events, bytes), and events
and bytes by type. The workflow continues as new when the server suggests it, which
the test server does at 4,096 events as the real server does by default
(``limit.historyCount.suggestContinueAsNew``; also past 4 MiB), or past its own cap
(``Tuning.max_history_events``, 10,000; ``--max-history-events`` changes it).

    nice -n 19 python -m benchmarks.history_size [--hours 24] [--scenario churn] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devenv.models.state import (
    EnvSpec,
    EnvState,
    PresenceReport,
    SessionInfo,
    Status,
    Tuning,
    workflow_id_for,
)
from devenv.settings import SEARCH_ATTRIBUTES
from devenv.worker import binaries
from devenv.workflows.environment import DevEnvironmentWorkflow
from tests.workflow.fakes import FakeBackend

DAY = 86_400
INACTIVITY = 2 * DAY
"""Longer than the measured span: the idle environment must live through the day."""
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBenchBenchBenchBenchBenchBenchBenchBenchBenchBe bench"
Handle = WorkflowHandle[DevEnvironmentWorkflow, EnvState]


# ------------------------------------------------------------------ stand-in activities


# ------------------------------------------------------------------ scenarios


@dataclass
class Driver:
    """Plays the monitor of one environment on the time-skipping server."""

    env: WorkflowEnvironment
    handle: Handle
    signals: int = 0

    async def now(self) -> datetime:
        moment = await self.env.get_current_time()
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    async def signal(
        self, connections: int, last_change: datetime, keepalive: bool = False
    ) -> None:
        sessions = (
            [SessionInfo(pid=4242, peer="127.0.0.1:50022", since=last_change, kind="shell")]
            if connections
            else []
        )
        report = PresenceReport(
            connections=connections, last_change=last_change, keepalive=keepalive, sessions=sessions
        )
        await self.handle.signal(DevEnvironmentWorkflow.record_presence, report)
        self.signals += 1

    async def sleep(self, seconds: float) -> None:
        await self.env.sleep(timedelta(seconds=seconds))


async def idle(driver: Driver, seconds: int) -> None:
    for _ in range(seconds // 3600):
        await driver.sleep(3600)
    await driver.sleep(seconds % 3600)


async def connected(driver: Driver, seconds: int) -> None:
    """One user all along; the monitor re-reports every ``keepalive_seconds`` (60)."""
    keepalive = Tuning().keepalive_seconds
    since = await driver.now()
    await driver.signal(1, since)
    for _ in range(seconds // keepalive):
        await driver.sleep(keepalive)
        await driver.signal(1, since, keepalive=True)


async def churn(driver: Driver, seconds: int) -> None:
    """Connect at each minute's start, leave 30 s later."""
    for _ in range(seconds // 60):
        await driver.signal(1, await driver.now())
        await driver.sleep(30)
        await driver.signal(0, await driver.now())
        await driver.sleep(30)


SCENARIOS: dict[str, Callable[[Driver, int], Awaitable[None]]] = {
    "idle": idle,
    "connected": connected,
    "churn": churn,
}


# ------------------------------------------------------------------ measuring


def _at(event: HistoryEvent) -> float:
    return float(event.event_time.seconds + event.event_time.nanos / 1e9)


async def chain(client: Client, workflow_id: str, first_run: str) -> list[list[HistoryEvent]]:
    """The events of every run of a continue-as-new chain, oldest run first."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = first_run
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        events = list(history.events)
        runs.append(events)
        run_id = None
        last = events[-1] if events else None
        if (
            last is not None
            and last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        ):
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


def measure(
    runs: list[list[HistoryEvent]], began: float, ended: float, seconds: int
) -> dict[str, Any]:
    """Events and bytes in [began, ended), continue-as-new runs, the longest run."""
    inside = [e for events in runs for e in events if began <= _at(e) < ended]
    count = len(inside)
    size = sum(e.ByteSize() for e in inside)
    scale = DAY / seconds
    by_type: Counter[str] = Counter()
    bytes_by_type: Counter[str] = Counter()
    for event in inside:
        kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
        by_type[kind] += 1
        bytes_by_type[kind] += event.ByteSize()
    continued = sum(
        1
        for e in inside
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    )
    return {
        "simulated_hours": round(seconds / 3600, 2),
        "extrapolated": seconds != DAY,
        "events": count,
        "bytes": size,
        "continued_as_new": continued,
        "events_per_day": round(count * scale),
        "bytes_per_day": round(size * scale),
        "continue_as_new_per_day": round(continued * scale, 1),
        "runs_total": len(runs),
        "max_run_events": max(len(events) for events in runs),
        "max_run_bytes": max(sum(e.ByteSize() for e in events) for events in runs),
        "events_by_type_per_day": {kind: round(n * scale) for kind, n in by_type.most_common()},
        "bytes_by_type_per_day": {
            kind: round(n * scale) for kind, n in bytes_by_type.most_common()
        },
    }


async def wait_running(handle: Handle, timeout: float = 30.0) -> None:
    give_up = time.monotonic() + timeout
    while True:
        state = await handle.query(DevEnvironmentWorkflow.status)
        if state.status == Status.RUNNING:
            return
        if time.monotonic() > give_up:
            raise RuntimeError(f"{handle.id} not running after {timeout:.0f}s: {state.status}")
        await asyncio.sleep(0.05)


async def one_scenario(
    env: WorkflowEnvironment, name: str, seconds: int, max_history_events: int
) -> dict[str, Any]:
    task_queue = f"history-{uuid.uuid4().hex[:10]}"
    stand_ins = FakeBackend(task_queue=task_queue)
    spec = EnvSpec(
        name=f"history-{name}-{uuid.uuid4().hex[:6]}",
        backend="bench",
        inactivity_duration=INACTIVITY,
        user_public_key=KEY,
    )
    tuning = Tuning(monitor=False, max_history_events=max_history_events)
    began_wall = time.perf_counter()
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[DevEnvironmentWorkflow],
        activities=stand_ins.activities(),
    ):
        handle = await env.client.start_workflow(
            DevEnvironmentWorkflow.run,
            EnvState(spec=spec, tuning=tuning),
            id=workflow_id_for(spec.name),
            task_queue=task_queue,
        )
        first_run = handle.result_run_id or ""
        await wait_running(handle)
        driver = Driver(env, handle)
        began = (await driver.now()).timestamp()
        await SCENARIOS[name](driver, seconds)
        ended = (await driver.now()).timestamp()
        latest: Handle = env.client.get_workflow_handle_for(DevEnvironmentWorkflow.run, handle.id)
        await latest.signal(DevEnvironmentWorkflow.stop, "measured")
        final = await latest.result()
    runs = await chain(env.client, handle.id, first_run)
    figures = measure(runs, began, ended, seconds)
    figures.update(
        signals=driver.signals,
        final_status=final.status.value,
        runs_in_state=final.runs,
        wall_s=round(time.perf_counter() - began_wall, 1),
    )
    return figures


async def register_search_attributes(client: Client) -> None:
    """devenv's search attributes, so the workflow upserts them (and its memo)."""
    kinds = {
        key: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for key, kind in SEARCH_ATTRIBUTES.items()
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(namespace="default", search_attributes=kinds)
    )


async def run(names: list[str], seconds: int, max_history_events: int) -> dict[str, Any]:
    report: dict[str, Any] = {
        "server": "time-skipping test server",
        "simulated_hours": round(seconds / 3600, 2),
        "max_history_events": max_history_events,
        "scenarios": {},
    }
    # The SDK core logs warnings to stdout (the test server lacks a capability): errors only.
    quiet = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binaries.test_server()),
        runtime=Runtime(telemetry=TelemetryConfig(logging=quiet)),
    ) as env:
        await register_search_attributes(env.client)
        for name in names:
            report["scenarios"][name] = await one_scenario(env, name, seconds, max_history_events)
    return report


def summary(report: dict[str, Any]) -> str:
    lines = [
        f"history per environment per day ({report['simulated_hours']} h simulated"
        f"{', extrapolated to 24 h' if report['simulated_hours'] != 24 else ''}; "
        f"continue-as-new when suggested or past {report['max_history_events']} events)"
    ]
    for name, s in report["scenarios"].items():
        lines.append(
            f"{name:10} {s['events_per_day']:>7} events/day {s['bytes_per_day'] / 1024:>9.1f} "
            f"KiB/day {s['continue_as_new_per_day']:>5} continue-as-new/day, longest run "
            f"{s['max_run_events']} events / {s['max_run_bytes'] / 1024:.1f} KiB "
            f"({s['signals']} signals, {s['wall_s']} s)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours per scenario")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="default: all"
    )
    parser.add_argument(
        "--max-history-events",
        type=int,
        default=Tuning().max_history_events,
        help="the workflow's own cap (the server suggests continuing at 4,096 events)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    seconds = round(args.hours * 3600)
    names = args.scenario or list(SCENARIOS)
    report = asyncio.run(run(names, seconds, args.max_history_events))
    print(json.dumps(report) if args.json else summary(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
