"""The control plane at scale: N environments on one machine, deadlines spread over S seconds.

A private world in a temp dir: the real embedded Temporal dev server (its own port,
its own SQLite file), K real devenv worker processes (``benchmarks.scale_worker``:
the product's worker with the benchmark backend registered) and this driver, which

  1. starts N environments through the SDK (``AsyncClient.start(..., wait=False)``,
     ``backend: bench``): each one's scripted user connects at once and leaves a
     moment later, and its inactivity threshold is chosen so that the deadlines of
     all N fall evenly over [anchor, anchor + S]  -> start rate;
  2. once all run: ``AsyncClient.list()``, the first page of the listing and the real
     ``devenv ps --json`` / ``devenv ps`` processes  -> ps time and rows;
  3. while nothing is due: CPU (utime+stime from /proc) of server and workers over
     ~10 s, and their RSS  -> idle CPU, memory;
  4. lets every deadline pass: the backend records the wall-clock time each
     terminate ran; lateness = that time - the deadline the workflow computed (from
     its final state: idle_since + inactivity_duration); for a sample, where the
     time went (history events after the deadline). With ``--kill-worker-at S`` (and
     ``--workers 2`` or more) worker0 gets ``kill -9`` S seconds into the deadlines, and
     ``takeover`` reports lateness around the kill, lost and doubled terminations, and
     how long the survivor took to take over workflows and monitors.

Prints one JSON object (``--json``) or a short summary. Every process runs in its
own process group and is killed, and the temp dir removed, even on Ctrl-C/SIGTERM.

    nice -n 19 python -m benchmarks.scale --envs 300 --spread 30 [--workers 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from benchmarks import bench_backend
from benchmarks.scale_worker import HEARTBEAT_EVERY_VAR, MONITOR_HEARTBEAT_VAR, TUNING_VAR
from devenv.backends import registry
from devenv.client.async_client import AsyncClient
from devenv.client.autostart import has_host_worker
from devenv.models.names import SHARED_TASK_QUEUE, Activity
from devenv.models.state import WORKFLOW_TYPE, EnvState, TerminationReason
from devenv.settings import Settings
from devenv.worker.devserver import dev_server_command
from devenv.worker.temporal_connection import wait_reachable

ROOT = Path(__file__).resolve().parents[1]
DEVENV_CLI = str(Path(sys.executable).parent / "devenv")
CLK_TCK = os.sysconf("SC_CLK_TCK")
ASSUMED_START_RATE = 15.0
"""Starts per second assumed when choosing the lead before the first deadline (measured:
~17/s at 300 environments on 2 cores, falling as the monitors' heartbeats grow)."""
PR_SET_PDEATHSIG = 1
PY_SPY_RECORD = [str(Path(sys.executable).parent / "py-spy"), "record", "-f", "raw", "-r", "50"]
PY_SPY_RECORD += ["--nonblocking", "--nolineno"]
NAME_PREFIX = "scale-"


# ------------------------------------------------------------------ processes


def _die_with_parent() -> None:
    """Linux: a child gets SIGTERM when this driver dies, even by SIGKILL."""
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Group:
    """Child processes, each the leader of its own process group."""

    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    killed: set[str] = field(default_factory=set)
    """Killed on purpose (``--kill-worker-at``): not an error when found dead."""

    def spawn(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> int:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                env=env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        self.procs[name] = proc
        return proc.pid

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if name not in self.killed and proc.poll() is not None:
                raise RuntimeError(f"{name} (pid {proc.pid}) exited with {proc.returncode}")

    def kill(self, name: str) -> float:
        """``kill -9`` one child's process group, now; returns when (epoch seconds)."""
        self.killed.add(name)
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        return time.time()

    def stop(self, names: Iterable[str], timeout: float = 20.0) -> None:
        """SIGTERM each group, wait, then SIGKILL what is left."""
        chosen = [self.procs[n] for n in names if n in self.procs]
        for proc in chosen:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        give_up = time.monotonic() + timeout
        for proc in chosen:
            try:
                proc.wait(max(give_up - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        workers = [n for n in self.procs if n.startswith("worker")]
        self.stop(workers)
        self.stop([n for n in self.procs if n not in workers])


_LAST_CPU: dict[int, float] = {}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc/PID/stat; for a process
    gone since (a killed worker), the last value read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return _LAST_CPU.get(pid, 0.0)
    _LAST_CPU[pid] = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return _LAST_CPU[pid]


def memory_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class CpuMeter:
    """CPU of chosen processes between ``start`` and ``stop``, as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.began: dict[str, float] = {}
        self.used: dict[str, float] = {}
        self.wall = 0.0

    def start(self) -> None:
        self.began = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self.wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        """% of one core per process since ``start``; ``self.used`` keeps the seconds."""
        wall = time.monotonic() - self.wall
        self.used = {n: cpu_seconds(pid) - self.began[n] for n, pid in self.pids.items()}
        return {name: round(100 * used / wall, 2) for name, used in self.used.items()}

    def per_item_ms(self, items: int) -> dict[str, float]:
        """CPU milliseconds per item (environment) of each process, after ``stop``."""
        return {name: round(1000 * used / max(items, 1), 1) for name, used in self.used.items()}


class Profiler:
    """``py-spy record`` (collapsed stacks) of chosen processes during one phase."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.running: list[subprocess.Popen[bytes]] = []
        self.files: dict[str, Path] = {}

    def start(self, phase: str, pids: dict[str, int]) -> None:
        if self.out_dir is None:
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in pids.items():
            path = self.out_dir / f"{name}-{phase}.txt"
            self.files[f"{name}-{phase}"] = path
            self.running.append(
                subprocess.Popen(
                    [*PY_SPY_RECORD, "-p", str(pid), "-o", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            )

    def stop(self) -> None:
        for proc in self.running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        for proc in self.running:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.running = []

    def summary(self, top: int = 12) -> dict[str, Any]:
        return {name: top_frames(path, top) for name, path in self.files.items()}


def top_frames(path: Path, top: int) -> dict[str, Any]:
    """The functions with the most samples on-CPU: self (leaf) and inclusive, in %."""
    if not path.exists():
        return {}
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in path.read_text().splitlines():
        stack, _, number = line.rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        frames = stack.split(";")
        total += samples
        own[_short(frames[-1])] += samples
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += samples

    def ranked(counts: dict[str, int]) -> dict[str, float]:
        best = sorted(counts.items(), key=lambda item: -item[1])[:top]
        return {frame: round(100 * n / total, 1) for frame, n in best}

    return {"samples": total, "self_pct": ranked(own), "inclusive_pct": ranked(inclusive)}


def _short(frame: str) -> str:
    """``function (path/to/module.py)`` with the path shortened to the package part."""
    function, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in where:
            where = where.split(marker, 1)[1]
    return f"{function} ({where})"


# ------------------------------------------------------------------ server metrics

COUNTED = ("service_requests", "persistence_requests")


def scrape(port: int) -> dict[str, float]:
    """The dev server's request counters by operation (``metric:Operation``).

    ``service_requests`` counts the frontend's only: the history service counts the
    RPCs the frontend forwards to it under the same operation name, so summing every
    service counted a heartbeat (and a workflow task completion...) twice. Figures in
    benchmarks/README.md measured before 2026-12-01 carry that double count."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = defaultdict(float)
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name not in COUNTED:
            continue
        labels, _, value = rest.rpartition("} ")
        if name == "service_requests" and 'service_name="frontend"' not in labels:
            continue
        operation = labels.split('operation="', 1)[-1].split('"', 1)[0]
        totals[f"{name}:{operation}"] += float(value)
    return totals


def rates(
    before: dict[str, float], after: dict[str, float], per: float, top: int = 10
) -> dict[str, float]:
    """The ``top`` counters that grew most, divided by ``per`` (seconds or items)."""
    grown = {key: after[key] - before.get(key, 0.0) for key in after}
    best = sorted(grown.items(), key=lambda item: -item[1])[:top]
    return {key: round(value / max(per, 1e-9), 2) for key, value in best if value > 0}


# ------------------------------------------------------------------ figures


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    """p50, p99, max (and count) of ``values``, rounded."""
    if not values:
        return {"p50": None, "p99": None, "max": None, "count": 0}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)]
    return {
        "p50": round(statistics.median(ordered), 1),
        "p99": round(p99, 1),
        "max": round(ordered[-1], 1),
        "count": len(ordered),
    }


@dataclass(frozen=True)
class Record:
    kind: str
    workflow_id: str
    at: float
    pid: int
    attempt: int


class Records:
    """What the bench backend recorded (``KIND WORKFLOW_ID EPOCH ATTEMPT`` in one file per
    worker process), read incrementally: the first time of each kind per workflow, and
    every record (``all``)."""

    def __init__(self, directory: Path, every: float = 0.1) -> None:
        self.directory = directory
        self.every = every
        self.read_at = 0.0
        self.offsets: dict[Path, int] = {}
        self.first: dict[str, dict[str, float]] = defaultdict(dict)
        self.all: list[Record] = []

    def refresh(self, force: bool = False) -> None:
        """Read what was appended since the last call (at most every ``every`` s)."""
        if not force and time.monotonic() - self.read_at < self.every:
            return
        self.read_at = time.monotonic()
        for path in self.directory.glob("events-*.log"):
            offset = self.offsets.get(path, 0)
            with path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            complete = data.rfind(b"\n") + 1  # a line being written waits for next time
            self.offsets[path] = offset + complete
            pid = int(path.stem.removeprefix("events-"))
            for line in data[:complete].decode().splitlines():
                kind, workflow_id, at, attempt = line.split()
                self.all.append(Record(kind, workflow_id, float(at), pid, int(attempt)))
                seen = self.first[kind]
                if workflow_id not in seen or float(at) < seen[workflow_id]:
                    seen[workflow_id] = float(at)

    def of(self, kind: str) -> dict[str, float]:
        """``{workflow_id: first time}`` of one kind of record."""
        self.refresh()
        return self.first[kind]


def due_of(state: EnvState) -> float | None:
    """The deadline the workflow acted on, from its final state (epoch seconds)."""
    if state.termination_reason == TerminationReason.INACTIVITY_DURATION_EXCEEDED:
        if state.idle_since is None or state.spec.inactivity_duration is None:
            return None
        due = state.idle_since + timedelta(seconds=state.spec.inactivity_duration)
        return due.timestamp()
    if state.termination_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        if state.created_at is None or state.spec.max_duration is None:
            return None
        return (state.created_at + timedelta(seconds=state.spec.max_duration)).timestamp()
    return None


def event_label(event: Any, activity_names: dict[int, str]) -> str:
    """A history event as ``TYPE`` or ``TYPE:activity``."""
    kind = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")
    if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        name = event.activity_task_scheduled_event_attributes.activity_type.name
        activity_names[event.event_id] = name
        return f"{kind}:{name}"
    for attr in (
        "activity_task_started_event_attributes",
        "activity_task_completed_event_attributes",
        "activity_task_cancel_requested_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(attr):
            scheduled = getattr(event, attr).scheduled_event_id
            return f"{kind}:{activity_names.get(scheduled, '?')}"
    return kind


async def where_time_went(
    temporal: Client, samples: list[tuple[str, float, float]]
) -> dict[str, dict[str, float | int | None]]:
    """For sampled environments: each history step after the deadline, ms after it."""
    steps: dict[str, list[float]] = defaultdict(list)
    gate = asyncio.Semaphore(16)

    async def one(workflow_id: str, due: float, ended: float) -> None:
        async with gate:
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        names: dict[int, str] = {}
        counts: dict[str, int] = defaultdict(int)
        for event in history.events:
            label = event_label(event, names)
            at = event.event_time.seconds + event.event_time.nanos / 1e9
            if at < due - 0.001:
                continue
            counts[label] += 1
            key = label if counts[label] == 1 else f"{label}#{counts[label]}"
            steps[key].append((at - due) * 1000)
        steps["(terminate ran: bench backend)"].append((ended - due) * 1000)

    await asyncio.gather(*(one(*sample) for sample in samples))
    ordered = sorted(steps.items(), key=lambda item: statistics.median(item[1]))
    return {label: percentiles(values) for label, values in ordered}


# ------------------------------------------------------------------ kill -9 takeover

TAKEOVER_BIN_S = 5.0


@dataclass
class Kill:
    """One worker killed with SIGKILL while deadlines were due."""

    name: str
    pid: int
    at: float
    """Epoch seconds."""
    workers: dict[str, str]
    """Worker identity pid (as a string) -> worker name, for every worker of the run."""

    def worker_of(self, identity: str) -> str:
        return self.workers.get(identity.partition("@")[0], identity)


@dataclass
class Story:
    """What one environment's history says about the kill."""

    cached_on: str | None = None
    """Worker that completed its last workflow task before the kill (holds it cached)."""
    first_after: tuple[float, str] | None = None
    """First workflow task completed after the kill: when, by which worker."""
    task_timeouts: int = 0
    """Workflow tasks timed out after the kill (a sticky queue nobody polls)."""
    closed_at: float | None = None
    terminates_scheduled: int = 0
    terminate_attempt: int = 0
    probe_attempts: list[int] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    """(epoch seconds, event label, worker or "") of every history event."""


def _seconds(timestamp: Any) -> float:
    return float(timestamp.seconds + timestamp.nanos / 1e9)


async def stories(temporal: Client, workflow_ids: Iterable[str], kill: Kill) -> dict[str, Story]:
    """Each environment's history, read for who ran it before and after the kill."""
    gate = asyncio.Semaphore(16)
    found: dict[str, Story] = {}

    async def one(workflow_id: str) -> None:
        async with gate:
            history = await temporal.get_workflow_handle(workflow_id).fetch_history()
        story = Story()
        names: dict[int, str] = {}
        labels: dict[int, str] = {}
        for event in history.events:
            at = _seconds(event.event_time)
            kind = event.event_type
            identity = next(
                (
                    getattr(event, attr).identity
                    for attr in (
                        "workflow_task_started_event_attributes",
                        "workflow_task_completed_event_attributes",
                        "activity_task_started_event_attributes",
                    )
                    if event.HasField(attr)
                ),
                "",
            )
            worker = kill.worker_of(identity) if identity else ""
            story.events.append((at, event_label(event, labels), worker))
            if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                if at < kill.at:
                    story.cached_on = worker
                elif story.first_after is None:
                    story.first_after = (at, worker)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT and at >= kill.at:
                story.task_timeouts += 1
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                story.closed_at = at
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                name = event.activity_task_scheduled_event_attributes.activity_type.name
                names[event.event_id] = name
                story.terminates_scheduled += name == Activity.TERMINATE
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                started = event.activity_task_started_event_attributes
                name = names.get(started.scheduled_event_id, "?")
                if name == Activity.TERMINATE:
                    story.terminate_attempt = started.attempt
                elif name == Activity.PROBE:
                    story.probe_attempts.append(started.attempt)
        found[workflow_id] = story

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return found


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def takeover_report(
    kill: Kill,
    window: float,
    dues: dict[str, float],
    records: Records,
    found: dict[str, Story],
) -> dict[str, Any]:
    """Lateness before, during and after the takeover; lost and doubled terminations;
    how long the surviving worker took to take over workflows and monitors.

    Buckets by deadline: terminated before the kill; due before it but terminated after
    (``pending_at_kill``); due within ``window`` s after it (``during``, split into
    ``orphaned``: the killed worker held the workflow, and ``other``); due later
    (``after``). ``bound_ms``: the latest terminate of a deadline terminated after the
    kill; ``bound_closed_ms``: the latest close (terminate done, workflow completed) of
    one closed after it. ``worst``: that environment's history after its deadline."""
    records.refresh(force=True)
    terminates: dict[str, list[Record]] = defaultdict(list)
    monitors: dict[str, list[Record]] = defaultdict(list)
    for record in records.all:
        if record.kind == bench_backend.TERMINATED:
            terminates[record.workflow_id].append(record)
        elif record.kind == bench_backend.MONITORED:
            monitors[record.workflow_id].append(record)
    kinds = ("done_before_kill", "pending_at_kill", "during", "orphaned", "other", "after")
    buckets: dict[str, dict[str, list[float]]] = {n: {"ran": [], "closed": []} for n in kinds}
    series: dict[float, list[float]] = defaultdict(list)
    worst: tuple[float, str] | None = None
    closed_after_kill: list[float] = []
    for workflow_id, due in dues.items():
        ran = terminates.get(workflow_id)
        story = found.get(workflow_id, Story())
        if not ran:
            continue
        first = min(r.at for r in ran)
        late = (first - due) * 1000
        closed = None if story.closed_at is None else (story.closed_at - due) * 1000
        relative = due - kill.at
        if first < kill.at:
            names = ["done_before_kill"]
        elif relative < 0:
            names = ["pending_at_kill"]
        elif relative >= window:
            names = ["after"]
        else:
            names = ["during", "orphaned" if story.cached_on == kill.name else "other"]
        if names[0] != "done_before_kill" and (worst is None or late > worst[0]):
            worst = (late, workflow_id)
        if closed is not None and story.closed_at is not None and story.closed_at >= kill.at:
            closed_after_kill.append(closed)
        for name in names:
            buckets[name]["ran"].append(late)
            if closed is not None:
                buckets[name]["closed"].append(closed)
        series[math.floor(relative / TAKEOVER_BIN_S) * TAKEOVER_BIN_S].append(late)
    lateness = {
        name: {"terminate_ran_ms": percentiles(v["ran"]), "closed_ms": percentiles(v["closed"])}
        for name, v in buckets.items()
    }
    affected = ("pending_at_kill", "during", "after")
    worst_steps: list[tuple[str, float, str]] = []
    if worst is not None:
        due = dues[worst[1]]
        worst_steps = [
            (label, round((at - due) * 1000), worker)
            for at, label, worker in found.get(worst[1], Story()).events
            if at >= due - 0.001
        ]

    # Workflows the killed worker held (its last task before the kill) still running then.
    orphans = {
        w: s
        for w, s in found.items()
        if s.cached_on == kill.name and (s.closed_at is None or s.closed_at > kill.at)
    }
    taken = [s.first_after[0] - kill.at for s in orphans.values() if s.first_after is not None]
    by_killed = sum(
        1 for s in orphans.values() if s.first_after is not None and s.first_after[1] == kill.name
    )
    # Monitors that ran on the killed worker and were restarted by another one.
    restarted: list[float] = []
    never = 0
    for attempts in monitors.values():
        before = [r for r in attempts if r.at < kill.at]
        if not before or max(before, key=lambda r: r.at).pid != kill.pid:
            continue
        after = [r.at for r in attempts if r.at >= kill.at and r.pid != kill.pid]
        if after:
            restarted.append(min(after) - kill.at)
        else:
            never += 1
    calls = {w: len(r) for w, r in terminates.items()}
    same_attempt_twice = sum(1 for r in terminates.values() if len({x.attempt for x in r}) < len(r))
    return {
        "killed": kill.name,
        "killed_at_s": round(kill.at - min(dues.values()), 1) if dues else None,
        "window_s": window,
        "deadlines": {name: len(v["ran"]) for name, v in buckets.items()},
        "lateness": lateness,
        "bound_ms": _rounded(max([x for n in affected for x in buckets[n]["ran"]], default=None)),
        "bound_closed_ms": _rounded(max(closed_after_kill, default=None)),
        "worst": {"workflow_id": worst[1], "after_due_ms": worst_steps} if worst else None,
        "lateness_by_due_ms": {
            f"{start:+.0f}s": percentiles(values) for start, values in sorted(series.items())
        },
        "lost": sum(1 for w in dues if w not in terminates),
        "not_closed": sum(1 for w in dues if found.get(w, Story()).closed_at is None),
        "terminate_calls_max": max(calls.values(), default=0),
        "envs_terminate_called_more_than_once": sum(1 for n in calls.values() if n > 1),
        "envs_terminate_retried": sum(1 for s in found.values() if s.terminate_attempt > 1),
        "envs_terminate_same_attempt_twice": same_attempt_twice,
        "envs_terminated_twice": sum(1 for s in found.values() if s.terminates_scheduled > 1),
        "envs_probe_retried": sum(
            1 for s in found.values() if any(a > 1 for a in s.probe_attempts)
        ),
        "orphaned_workflows": len(orphans),
        "orphans_taken_over_s": percentiles(taken),
        "orphans_next_task_by_killed": by_killed,
        "workflow_task_timeouts_after_kill": sum(s.task_timeouts for s in found.values()),
        "orphaned_monitors_restarted_s": percentiles(restarted),
        "orphaned_monitors_not_restarted": never,
    }


# ------------------------------------------------------------------ the run


@dataclass
class Options:
    envs: int
    spread: float
    workers: int
    session: float
    lead: float | None
    concurrency: int
    backlog: int
    idle_seconds: float
    grace: float
    ps_rounds: int
    breakdown: int
    worker_tuning: str | None
    server_flags: list[str]
    keep: bool
    timeout: float
    as_json: bool
    profile: Path | None
    start_budget: float | None
    sample_every: float
    bytecode_cache: bool
    kill_worker_at: float | None = None
    takeover_window: float = 40.0
    monitor_heartbeat: float | None = None
    heartbeat_every: float | None = None
    idle_after: float = 0.0
    idle_only: bool = False


class World:
    """The temp dir, the dev server and the workers of one run."""

    def __init__(self, root: Path, options: Options) -> None:
        self.root = root
        self.options = options
        self.home = root / "home"
        self.user = root / "user"
        self.records = root / "records"
        for path in (self.home, self.user, self.records):
            path.mkdir(mode=0o700)
        self.port = free_port()
        self.metrics_port = free_port()
        self.settings = Settings(
            home=self.home,
            address=f"127.0.0.1:{self.port}",
            namespace="default",
            ssh_include=False,
        )
        self.group = Group()
        self.pids: dict[str, int] = {}

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVENV_")}
        env.update(
            DEVENV_HOME=str(self.home),
            DEVENV_TEMPORAL_ADDRESS=self.settings.address,
            DEVENV_SSH_INCLUDE="0",
            HOME=str(self.user),
            PYTHONPATH=str(ROOT),
            COLUMNS="200",
        )
        env[bench_backend.RECORD_DIR_VAR] = str(self.records)
        if self.options.bytecode_cache:
            # As installed: compiled modules are cached (here in the temp dir, not the
            # checkout), so neither the CLI nor the workflow sandbox, which imports the
            # workflow module afresh for every workflow it creates or replays, compiles
            # source. PYTHONDONTWRITEBYTECODE=1 otherwise makes them compile every time.
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        if self.options.worker_tuning:
            env[TUNING_VAR] = self.options.worker_tuning
        if self.options.monitor_heartbeat is not None:
            env[MONITOR_HEARTBEAT_VAR] = str(self.options.monitor_heartbeat)
        if self.options.heartbeat_every is not None:
            env[HEARTBEAT_EVERY_VAR] = str(self.options.heartbeat_every)
        return env

    async def start(self) -> Client:
        command = dev_server_command(self.settings, None) + self.options.server_flags
        command += ["--metrics-port", str(self.metrics_port)]
        self.pids["server"] = self.group.spawn(
            "server", command, self.env, self.root / "temporal.log"
        )
        temporal = await wait_reachable(self.settings, 60.0)
        for index in range(self.options.workers):
            name = f"worker{index}"
            self.pids[name] = self.group.spawn(
                name,
                [sys.executable, "-m", "benchmarks.scale_worker"],
                self.env,
                self.root / f"{name}.log",
            )
        await self._until_polling(temporal)
        return temporal

    async def _until_polling(self, temporal: Client, timeout: float = 90.0) -> None:
        """Every worker polls the shared queue and one the host queue (else the SDK
        would launch a worker of its own)."""
        give_up = time.monotonic() + timeout
        while True:
            self.group.check_alive()
            response = await temporal.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace="default",
                    task_queue=TaskQueue(name=SHARED_TASK_QUEUE),
                    task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                )
            )
            identities = {poller.identity for poller in response.pollers}
            if len(identities) >= self.options.workers and await has_host_worker(
                temporal, self.settings
            ):
                return
            if time.monotonic() > give_up:
                raise RuntimeError(f"workers not polling after {timeout:.0f}s; see {self.root}")
            await asyncio.sleep(0.2)

    def worker_pids(self) -> dict[str, int]:
        return {n: p for n, p in self.pids.items() if n.startswith("worker")}

    def kill(self, name: str) -> Kill:
        """``kill -9`` one worker; it is no longer measured (CPU, RSS) from then on."""
        workers = {str(pid): n for n, pid in self.worker_pids().items()}
        pid = self.pids.pop(name)
        return Kill(name=name, pid=pid, at=self.group.kill(name), workers=workers)

    def rss(self) -> dict[str, float]:
        return {name: round(memory_mb(pid), 1) for name, pid in self.pids.items()}

    def peak_rss(self) -> dict[str, float]:
        return {name: round(memory_mb(pid, "VmHWM"), 1) for name, pid in self.pids.items()}


class Timeline:
    """Every few seconds: environments provisioned and terminated so far, CPU (% of one
    core) of each process and the server's heartbeat and workflow-task rates since the
    last sample. An aborted or overloaded run still shows where it bent."""

    def __init__(self, world: World, records: Records, began: float) -> None:
        self.world = world
        self.records = records
        self.began = began
        self.samples: list[dict[str, Any]] = []

    async def run(self, every: float) -> None:
        meter = CpuMeter(dict(self.world.pids))
        meter.start()
        counted = scrape(self.world.metrics_port)
        while True:
            await asyncio.sleep(every)
            cpu = meter.stop()
            meter.start()
            now = scrape(self.world.metrics_port)
            grown = rates(counted, now, every, top=50)
            counted = now
            self.samples.append(
                {
                    "t": round(time.time() - self.began),
                    "provisioned": len(self.records.of(bench_backend.PROVISIONED)),
                    "terminated": len(self.records.of(bench_backend.TERMINATED)),
                    "cpu": cpu,
                    "heartbeats_per_s": grown.get(
                        "service_requests:RecordActivityTaskHeartbeat", 0
                    ),
                    "wft_per_s": grown.get("service_requests:RespondWorkflowTaskCompleted", 0),
                    "rss_mb": self.world.rss(),
                }
            )


def auto_lead(options: Options) -> float:
    """Seconds from the first start to the first deadline: room for the starts, ps and
    the idle window at an assumed start rate."""
    n = options.envs
    return n / ASSUMED_START_RATE + 15 + options.idle_seconds + n * 0.003 * options.ps_rounds


async def run_cli(world: World, *args: str) -> tuple[float, str]:
    """Wall time (s) and stdout of one real ``devenv`` process."""
    took, _, out = await run_cli_first_row(world, *args)
    return took, out


async def start_all(
    client: AsyncClient,
    options: Options,
    anchor: float,
    records: Records,
    stop_at: float,
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """Start the environments, never more than ``backlog`` of them not yet provisioned
    (so each is provisioned while its scripted user is still there), and none after
    ``stop_at``; each started one's start time, SDK call latency (s) and planned
    deadline, by workflow id."""
    gate = asyncio.Semaphore(options.concurrency)
    started: dict[str, float] = {}
    latencies: dict[str, float] = {}
    planned: dict[str, float] = {}
    n = options.envs

    async def one(index: int) -> None:
        async with gate:
            while index - len(records.of(bench_backend.PROVISIONED)) >= options.backlog:
                if time.time() > stop_at:
                    return
                await asyncio.sleep(0.05)
            now = time.time()
            if now > stop_at:
                return
            due = anchor + options.spread * index / max(n - 1, 1)
            section: dict[str, float | None]
            if options.session > 0:
                inactivity = max(1, math.floor(due - now - options.session))
                section = {"connect_at": now, "leave_at": due - inactivity}
            else:
                inactivity = max(1, round(due - now))
                section = {"connect_at": None, "leave_at": None}
            name = f"{NAME_PREFIX}{index:05d}"
            workflow_id = f"devenv-{name}"
            planned[workflow_id] = due
            started[workflow_id] = now
            config = {
                "type": "dev-environment",
                "backend": bench_backend.NAME,
                "inactivity_duration": inactivity,
                "bench": section,
            }
            began = time.perf_counter()
            await client.start(config, wait=False, name=name)
            latencies[workflow_id] = time.perf_counter() - began

    await asyncio.gather(*(one(i) for i in range(n)))
    return started, latencies, planned


async def count(temporal: Client, status: str) -> int:
    query = f'WorkflowType="{WORKFLOW_TYPE}" AND DevEnvStatus="{status}"'
    return (await temporal.count_workflows(query)).count


async def measure_ps(
    world: World, client: AsyncClient, temporal: Client, rounds: int
) -> dict[str, Any]:
    """SDK list, its first page and the real CLI, ``rounds`` times each; ``ps`` (the
    table) also timed to its first environment's row, which it prints before the rest
    of a fleet's listing has arrived."""
    figures: dict[str, list[float]] = defaultdict(list)
    rows: dict[str, int] = {}
    await run_cli(world, "ps", "--json")  # untimed: fills the bytecode cache
    for _ in range(rounds):
        began = time.perf_counter()
        async for _page in client.list_pages():
            figures["list_first_page"].append(time.perf_counter() - began)
            break
        began = time.perf_counter()
        listed = await client.list()
        figures["list"].append(time.perf_counter() - began)
        rows["list"] = len(listed)
        took, out = await run_cli(world, "ps", "--json")
        figures["ps_json"].append(took)
        rows["ps_json"] = len(json.loads(out))
        took, first_row, out = await run_cli_first_row(world, "ps")
        figures["ps_table"].append(took)
        figures["ps_first_row"].append(first_row)
        rows["ps_table"] = sum(1 for line in out.splitlines() if NAME_PREFIX in line)

    def ms(name: str) -> float:
        return round(statistics.median(figures[name]) * 1000, 1)

    return {
        "ps_ms": ms("ps_json"),
        "ps_rows": rows["ps_json"],
        "ps_table_ms": ms("ps_table"),
        "ps_table_rows": rows["ps_table"],
        "ps_first_page_ms": ms("ps_first_row"),
        "list_ms": ms("list"),
        "list_rows": rows["list"],
        "list_first_page_ms": ms("list_first_page"),
    }


async def run_cli_first_row(world: World, *args: str) -> tuple[float, float, str]:
    """Wall time (s) of one real ``devenv`` process, the time its stdout showed the first
    environment's row (NaN if none), and its stdout."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        DEVENV_CLI,
        *args,
        env=world.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=2**24,
    )
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []
    first_row = math.nan

    async def read_stdout() -> None:
        nonlocal first_row
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode()
            if math.isnan(first_row) and NAME_PREFIX in line:
                first_row = time.perf_counter() - began
            lines.append(line)

    _, stderr = await asyncio.gather(read_stdout(), proc.stderr.read())
    if await proc.wait() != 0:
        raise RuntimeError(f"devenv {' '.join(args)} failed: {stderr.decode().strip()}")
    return time.perf_counter() - began, first_row, "".join(lines)


async def final_states(
    temporal: Client, workflow_ids: Iterable[str], timeout: float = 30.0
) -> dict[str, EnvState]:
    gate = asyncio.Semaphore(64)
    states: dict[str, EnvState] = {}

    async def one(workflow_id: str) -> None:
        async with gate:
            handle = temporal.get_workflow_handle(workflow_id, result_type=EnvState)
            with contextlib.suppress(Exception):
                states[workflow_id] = await asyncio.wait_for(handle.result(), timeout)

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return states


async def run(options: Options, root: Path, report: dict[str, Any]) -> None:
    world = World(root, options)
    report.update(
        envs=options.envs,
        bytecode_cache=options.bytecode_cache,
        spread_s=options.spread,
        workers=options.workers,
        session_s=options.session,
        kill_worker_at_s=options.kill_worker_at,
        monitor_heartbeat_s=options.monitor_heartbeat,
        heartbeat_every_s=options.heartbeat_every,
        worker_tuning=options.worker_tuning,
        deadline_rate_per_s=round(options.envs / max(options.spread, 1e-9), 2),
        cores=os.cpu_count(),
        load_avg_before=[round(x, 2) for x in os.getloadavg()],
    )
    sampling: asyncio.Task[None] | None = None
    try:
        temporal = await world.start()
        registry.register(bench_backend.ENTRY)
        client = AsyncClient(settings=world.settings)
        report["baseline_rss_mb"] = world.rss()

        # 1. starts
        lead = options.lead if options.lead is not None else auto_lead(options)
        report["lead_s"] = round(lead, 1)
        profiler = Profiler(options.profile)
        profiled = {**world.worker_pids(), "driver": os.getpid()}
        profiler.start("start", profiled)
        start_meter = CpuMeter({**world.pids, "driver": os.getpid()})
        start_meter.start()
        counted = scrape(world.metrics_port)
        records = Records(world.records)
        began = time.time()
        anchor = began + lead
        budget = options.start_budget if options.start_budget is not None else lead - 20
        report["start_budget_s"] = round(budget, 1)
        timeline = Timeline(world, records, began)
        sampling = asyncio.create_task(timeline.run(options.sample_every))
        started, latencies, planned = await start_all(
            client, options, anchor, records, began + budget
        )
        n = len(started)
        report["started"] = n
        report["start_ms"] = percentiles([x * 1000 for x in latencies.values()])
        while len(records.of(bench_backend.PROVISIONED)) < n:
            world.group.check_alive()
            if time.time() > anchor - 2:
                break
            await asyncio.sleep(0.2)
        provisioned = records.of(bench_backend.PROVISIONED)
        if provisioned:
            report["start_rate_per_s"] = round(
                len(provisioned) / (max(provisioned.values()) - began), 1
            )
        report["start_to_provisioned_ms"] = percentiles(
            [(at - started[w]) * 1000 for w, at in provisioned.items()]
        )
        last_leave = max(started.values()) + options.session + 1
        while time.time() < min(last_leave, anchor - 2):
            await asyncio.sleep(0.2)
        running = await count(temporal, "running")
        report["start_cpu_pct_by_process"] = start_meter.stop()
        report["start_cpu_ms_per_env"] = start_meter.per_item_ms(n)
        report["server_requests_per_start"] = rates(counted, scrape(world.metrics_port), n, top=16)
        profiler.stop()
        report["all_running_s"] = round(time.time() - began, 1)
        report["running_before_first_deadline"] = running

        # 2. ps
        report.update(await measure_ps(world, client, temporal, options.ps_rounds))

        # 3. idle (after --idle-after s: the fleet's start leaves timers behind, e.g. each
        # provision's 10-minute start-to-close timer, which the server still fires)
        await asyncio.sleep(1.0 + options.idle_after)
        window = options.idle_seconds
        if not options.idle_only:
            window = min(window, anchor - time.time() - 1.0)
        report["idle_after_s"] = options.idle_after
        report["idle_window_s"] = round(max(window, 0.0), 1)
        if window >= 2.0:
            meter = CpuMeter({n: p for n, p in world.pids.items()})
            counted = scrape(world.metrics_port)
            meter.start()
            await asyncio.sleep(window)
            idle = meter.stop()
            report["idle_server_requests_per_s"] = rates(
                counted, scrape(world.metrics_port), window
            )
            report["idle_cpu_pct"] = round(sum(idle.values()), 2)
            report["idle_cpu_pct_by_process"] = idle
        else:
            report["idle_cpu_pct"] = None
        rss = world.rss()
        report["worker_rss_mb"] = round(sum(v for n, v in rss.items() if n != "server"), 1)
        report["server_rss_mb"] = rss["server"]
        report["rss_mb_by_process"] = rss
        if options.idle_only:
            return

        # 4. deadlines
        last_due = max(planned.values())
        give_up = last_due + options.grace
        meter = CpuMeter(dict(world.pids))
        await asyncio.sleep(max(anchor - time.time(), 0.0))
        meter.start()
        counted = scrape(world.metrics_port)
        profiler.start("deadlines", world.worker_pids())
        killing: asyncio.Task[Kill] | None = None
        if options.kill_worker_at is not None:
            killing = asyncio.create_task(kill_later(world, anchor + options.kill_worker_at))
        ended: dict[str, float] = {}
        while time.time() < give_up:
            world.group.check_alive()
            ended = dict(records.of(bench_backend.TERMINATED))
            if len(ended) >= n:
                break
            await asyncio.sleep(0.5)
        report["termination_cpu_pct_by_process"] = meter.stop()
        report["termination_cpu_ms_per_env"] = meter.per_item_ms(len(ended))
        report["server_requests_per_termination"] = rates(
            counted, scrape(world.metrics_port), len(ended), top=16
        )
        profiler.stop()
        if options.profile is not None:
            report["profile"] = profiler.summary()
        report["peak_rss_mb_by_process"] = world.peak_rss()
        kill = None
        if killing is not None:
            if not killing.done():
                killing.cancel()
            else:
                kill = killing.result()
        states = await final_states(temporal, ended)
        late: list[float] = []
        offsets: list[float] = []
        reasons: dict[str, int] = defaultdict(int)
        samples: list[tuple[str, float, float]] = []
        for workflow_id, state in states.items():
            reasons[str(state.termination_reason)] += 1
            due = due_of(state)
            if due is None:
                continue
            late.append((ended[workflow_id] - due) * 1000)
            offsets.append((due - planned[workflow_id]) * 1000)
            samples.append((workflow_id, due, ended[workflow_id]))
        report["terminated"] = len(ended)
        report["not_terminated"] = n - len(ended)
        report["termination_reasons"] = dict(reasons)
        report["lateness_ms"] = percentiles(late)
        report["deadline_vs_plan_ms"] = percentiles(offsets)
        if ended:
            span = max(ended.values()) - min(ended.values())
            report["terminations_per_s"] = round(len(ended) / max(span, 1e-3), 1)
        if kill is not None:
            dues = dict(planned)
            dues.update({w: due for w, due, _ in samples})
            found = await stories(temporal, planned, kill)
            report["takeover"] = takeover_report(
                kill, options.takeover_window, dues, records, found
            )
        if options.breakdown and samples:
            samples.sort(key=lambda s: s[1])
            step = max(len(samples) // options.breakdown, 1)
            report["after_deadline_ms"] = await where_time_went(temporal, samples[::step])
    finally:
        if sampling is not None:
            sampling.cancel()
            report["timeline"] = timeline.samples
        report["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
        world.group.stop_all()


async def kill_later(world: World, at: float) -> Kill:
    """At ``at`` (epoch seconds), ``kill -9`` worker0."""
    await asyncio.sleep(max(at - time.time(), 0.0))
    return world.kill("worker0")


def summary(report: dict[str, Any]) -> str:
    late = report.get("lateness_ms", {})
    lines = [
        f"devenv scale: {report.get('envs')} environments, deadlines over "
        f"{report.get('spread_s')} s, {report.get('workers')} worker(s), "
        f"{report.get('cores')} cores",
        f"start rate            {report.get('start_rate_per_s')} /s",
        f"ps --json             {report.get('ps_ms')} ms, {report.get('ps_rows')} rows "
        f"(ps: first row {report.get('ps_first_page_ms')} ms)",
        f"idle CPU              {report.get('idle_cpu_pct')} % of one core",
        f"RSS                   worker {report.get('worker_rss_mb')} MB, "
        f"server {report.get('server_rss_mb')} MB",
        f"lateness              p50 {late.get('p50')} ms, p99 {late.get('p99')} ms, "
        f"max {late.get('max')} ms ({report.get('terminated')} terminated)",
    ]
    takeover = report.get("takeover")
    if takeover:
        during = takeover["lateness"]["during"]["terminate_ran_ms"]
        lines += [
            f"kill -9 {takeover['killed']} at +{takeover['killed_at_s']} s: deadlines in the "
            f"next {takeover['window_s']} s late p50 {during['p50']} ms, max {during['max']} "
            f"ms; bound after the kill {takeover['bound_ms']} ms; lost {takeover['lost']}, "
            f"terminated twice {takeover['envs_terminated_twice']}",
        ]
    return "\n".join(lines)


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=100)
    parser.add_argument("--spread", type=float, default=30.0, help="seconds")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--session", type=float, default=8.0, help="seconds each scripted user stays (0: none)"
    )
    parser.add_argument("--lead", type=float, help="seconds to the first deadline (auto)")
    parser.add_argument("--concurrency", type=int, default=32, help="SDK starts in flight")
    parser.add_argument(
        "--backlog", type=int, default=16, help="started but not yet provisioned, at most"
    )
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--idle-after", type=float, default=0.0, help="s to wait before the idle window"
    )
    parser.add_argument(
        "--idle-only", action="store_true", help="end after the idle window (no deadlines)"
    )
    parser.add_argument("--grace", type=float, default=60.0, help="wait past the last deadline")
    parser.add_argument(
        "--start-budget", type=float, help="stop starting after this many s (lead - 20)"
    )
    parser.add_argument("--sample-every", type=float, default=10.0, help="timeline period (s)")
    parser.add_argument("--ps-rounds", type=int, default=3)
    parser.add_argument("--breakdown", type=int, default=100, help="histories to dissect")
    parser.add_argument("--timeout", type=float, default=1500.0, help="abort after (s)")
    parser.add_argument("--worker-tuning", help=f"JSON Worker overrides ({TUNING_VAR})")
    parser.add_argument(
        "--server-flag", action="append", default=[], help="extra dev server argument"
    )
    parser.add_argument(
        "--no-bytecode-cache",
        action="store_true",
        help="let the children honour PYTHONDONTWRITEBYTECODE (compile on every import)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument(
        "--kill-worker-at",
        type=float,
        help="kill -9 worker0 this many s after the first deadline (needs --workers 2+)",
    )
    parser.add_argument(
        "--takeover-window",
        type=float,
        default=40.0,
        help="deadlines due this many s after the kill count as during the takeover",
    )
    parser.add_argument(
        "--monitor-heartbeat",
        type=float,
        help=f"monitor heartbeat timeout in s (experiment; {MONITOR_HEARTBEAT_VAR})",
    )
    parser.add_argument(
        "--heartbeat-every",
        type=float,
        help=f"s between activity.heartbeat() calls (experiment; {HEARTBEAT_EVERY_VAR})",
    )
    parser.add_argument(
        "--profile", type=Path, help="py-spy the worker and driver per phase into this dir"
    )
    args = parser.parse_args(argv)
    if args.kill_worker_at is not None and args.workers < 2:
        parser.error("--kill-worker-at needs --workers 2 or more")
    options = Options(
        envs=args.envs,
        spread=args.spread,
        workers=args.workers,
        session=args.session,
        lead=args.lead,
        concurrency=args.concurrency,
        backlog=args.backlog,
        idle_seconds=args.idle_seconds,
        grace=args.grace,
        ps_rounds=args.ps_rounds,
        breakdown=args.breakdown,
        worker_tuning=args.worker_tuning,
        server_flags=args.server_flag,
        keep=args.keep,
        timeout=args.timeout,
        as_json=args.json,
        profile=args.profile,
        start_budget=args.start_budget,
        sample_every=args.sample_every,
        bytecode_cache=not args.no_bytecode_cache,
        kill_worker_at=args.kill_worker_at,
        takeover_window=args.takeover_window,
        monitor_heartbeat=args.monitor_heartbeat,
        heartbeat_every=args.heartbeat_every,
        idle_after=args.idle_after,
        idle_only=args.idle_only,
    )
    return options


async def bounded(options: Options, root: Path, report: dict[str, Any], timeout: float) -> None:
    """The run, cancelled on SIGTERM or after ``timeout`` seconds."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        async with asyncio.timeout(timeout):
            await run(options, root, report)
    except TimeoutError:
        report["aborted"] = f"timeout after {timeout:.0f}s"
    except asyncio.CancelledError:
        report["aborted"] = "interrupted"
    except Exception as error:  # the report so far is still worth printing
        traceback.print_exc()
        report["aborted"] = f"{type(error).__name__}: {error}"


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    root = Path(tempfile.mkdtemp(prefix="devenv-scale-"))
    os.environ["HOME"] = str(root / "user")  # the SDK reads the user's key from HOME
    report: dict[str, Any] = {}
    try:
        asyncio.run(bounded(options, root, report, options.timeout))
    except KeyboardInterrupt:
        report["aborted"] = "interrupted"
    finally:
        if options.keep:
            report["kept"] = str(root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    if options.as_json:
        print(json.dumps(report))
    else:
        print(summary(report))
        print(json.dumps(report, indent=1))
    return 1 if "aborted" in report else 0


if __name__ == "__main__":
    sys.exit(main())
