"""The account's side: ``probe`` (one line) and ``stream`` (a line per change), run as the
account by the forced command of devenv's internal key."""

from __future__ import annotations

import json
import math
import os
import select
from collections.abc import Sequence
from typing import Any

from . import AGENT_SCRIPT
from .lines import iso, now_iso, report
from .procfs import ProcReader, boot_clock, boot_wall_time, read_ancestry, read_peer
from .signs import CpuMeter, GpuWatch, last_input, read_cpu_ticks
from .table import (
    Connection,
    Proc,
    children_of,
    count_jobs,
    descendants,
    find_connections,
    is_agent_process,
    next_count_change,
    session_ttys,
    settle_logins,
)

DEFAULT_INTERVAL = 0.25
DEFAULT_BUSY_PERCENT = 5.0
"""Percent of one core the account's processes must use to count as busy."""
BUSY_RESOLUTION_SECONDS = 5.0
"""The busy time moves at most this often: a build does not write a line per window."""
LOGINS_FOLDER = ".cache/devenv/logins"
"""Under the account's home: one empty file per user session, written by ``~/.ssh/rc``
(sshd runs it for shell and exec sessions of every key but devenv's own, which has
``restrict``, so no-user-rc), read by every stream, removed a minute later."""
KIND_SESSION = "session"
"""A session ~/.ssh/rc recorded that ended before the agent's next look."""


class Agent:
    """Observes one account; remembers peers found so /proc/net is read once per connection."""

    def __init__(
        self,
        user: str,
        uid: int,
        min_duration: float,
        script: str = AGENT_SCRIPT,
        busy_percent: float = DEFAULT_BUSY_PERCENT,
        gpus: GpuWatch | None = None,
    ) -> None:
        self.user = user
        self.uid = uid
        self.min_duration = min_duration
        self.reader = ProcReader(uid, os.sysconf("SC_CLK_TCK"))
        self.own_ancestry = read_ancestry(os.getpid())
        self.boot_wall = boot_wall_time()
        self.script = script
        """The file name the agent runs as (``presence_agent-5.py``): its own processes'."""
        self._peers: dict[tuple[int, float], str] = {}
        self.jobs = 0
        """Running jobs (devenv-keepalive) at the last ``observe``."""
        self.busy_percent = busy_percent
        self.cpu = CpuMeter(float(os.sysconf("SC_CLK_TCK")))
        self.busy_at: float | None = None
        """Wall-clock time the account's processes last used ``busy_percent`` of a core."""
        self.gpus = gpus
        """Samples the GPUs when ``utilization_policy`` is set (``--gpu-min``)."""
        self.inputs: dict[int, float] = {}
        """Each connection's last terminal input (wall clock), by pid, at the last look."""

    def observe(self) -> tuple[list[Connection], dict[int, str | None], float]:
        """(connections, peer per pid, now in seconds after boot); ``self.jobs`` too."""
        procs = self.reader.read()
        now = boot_clock()
        connections = find_connections(
            procs, self.user, self.uid, self.own_ancestry, now, self.min_duration, self.script
        )
        self.jobs = count_jobs(procs, self.uid)
        children = children_of(procs)
        peers: dict[int, str | None] = {}
        alive = set()
        for connection in connections:
            key = (connection.pid, connection.start)
            alive.add(key)
            if key not in self._peers:
                peer = read_peer(connection.pid, descendants(connection.pid, children))
                if peer is None:
                    peers[connection.pid] = None
                    continue
                self._peers[key] = peer
            peers[connection.pid] = self._peers[key]
        for key in set(self._peers) - alive:
            del self._peers[key]
        self._signs(procs, connections, now)
        return connections, peers, now

    def gpu_state(self) -> tuple[float | None, str | None] | None:
        """(quiet since, error) of the GPUs when watched, else None."""
        return None if self.gpus is None else (self.gpus.quiet_since, self.gpus.error)

    def _signs(self, procs: Sequence[Proc], connections: Sequence[Connection], now: float) -> None:
        """Terminal input of each connection (its ttys' access times) and the account's CPU."""
        titles = {proc.pid: proc.title for proc in procs}
        self.inputs = {}
        for connection in connections:
            ttys = session_ttys(titles.get(connection.pid, ""), self.user) or ""
            moment = last_input(tty for tty in ttys.split(",") if tty and tty != "notty")
            if moment is not None:
                self.inputs[connection.pid] = moment
        mine = [
            proc.pid
            for proc in procs
            if proc.uid == self.uid
            and proc.pid not in self.own_ancestry
            and not is_agent_process(proc, self.script)
        ]
        if self.gpus is not None:
            self.gpus.poll(self.boot_wall + now)
        percent = self.cpu.sample(read_cpu_ticks(mine), now)
        if percent is not None and percent >= self.busy_percent:
            wall = self.boot_wall + now
            if self.busy_at is None or wall - self.busy_at >= BUSY_RESOLUTION_SECONDS:
                self.busy_at = wall


class LoginRecords:
    """The sessions ``~/.ssh/rc`` recorded, so that one shorter than the agent's poll
    still counts (min-connection-duration 0).

    Every stream sees every record (a probe and a monitor may run at once), so none
    takes them away: each remembers what it has seen, and records are removed once
    older than ``KEEP_SECONDS``, long after every stream polling then has seen them.
    Records from before a stream started are not its to tell: a probe's only line, or
    a monitor's first, is the state now.
    """

    KEEP_SECONDS = 60.0

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.pending: dict[str, float] = {}
        self.seen: set[str] = set()
        self.primed = False

    def short_sessions(
        self, connections: Sequence[Connection], boot_wall: float, wall: float
    ) -> list[float]:
        """Wall-clock times of recorded sessions that ended unseen since the last call."""
        try:
            names = os.listdir(self.folder)
        except OSError:
            names = []
        present = set()
        for name in names:
            path = os.path.join(self.folder, name)
            try:
                moment = os.lstat(path).st_mtime
                if wall - moment > self.KEEP_SECONDS:
                    os.unlink(path)
                    continue
            except OSError:
                continue
            key = f"{name}@{moment!r}"
            present.add(key)
            if key not in self.seen and self.primed:
                self.pending[key] = moment
        self.seen = present
        self.primed = True
        short, self.pending = settle_logins(self.pending, connections, boot_wall)
        return short


def _write(out: Any, line: dict[str, Any]) -> bool:
    """False when the reader has gone (the SSH channel closed)."""
    try:
        out.write(json.dumps(line) + "\n")
        out.flush()
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def probe(agent: Agent, out: Any) -> int:
    connections, peers, _ = agent.observe()
    line = report(
        connections,
        peers,
        agent.boot_wall,
        now_iso(),
        agent.jobs,
        agent.inputs,
        gpu=agent.gpu_state(),
    )
    _write(out, line)
    return 0


def stream(agent: Agent, out: Any, interval: float, logins: LoginRecords | None = None) -> int:
    """Current state first, then a line per change, until the channel or a signal ends it.

    Between polls it waits on stdout for POLLERR/POLLHUP, so it also leaves when the
    client goes away while nothing changes (instead of lingering until the next write).
    With ``logins``, a recorded session that came and went between two polls while
    nobody counted is told as a connection that opened and closed: two lines.
    """
    poller = select.poll()
    poller.register(out.fileno(), 0)  # no events asked: errors and hang-ups still wake us
    previous: object = None
    counted: tuple[int, int] | None = None
    last_change = now_iso()
    looked: float | None = None
    while True:
        connections, peers, now = agent.observe()
        line = report(
            connections,
            peers,
            agent.boot_wall,
            last_change,
            agent.jobs,
            agent.inputs,
            agent.busy_at,
            agent.gpu_state(),
        )
        in_use = (line["connections"], line["jobs"])
        if counted is not None and in_use != counted:
            last_change = now_iso()
            line["last_change"] = last_change
        counted = in_use
        wall = agent.boot_wall + now
        short = logins.short_sessions(connections, agent.boot_wall, wall) if logins else []
        if short and in_use == (0, 0):
            since = iso(short[0])
            opened = dict(line, connections=1, last_change=since)
            unseen = {"pid": None, "from": None, "since": since, "kind": KIND_SESSION}
            opened["sessions"] = [unseen, *line["sessions"]]
            if not _write(out, opened):
                return 0
            # It ended by this look; no earlier than the previous one (or its own start).
            last_change = iso(max([short[-1]] + ([looked] if looked is not None else [])))
            line["last_change"] = last_change
            previous = None
        looked = wall
        key = (
            line["connections"],
            line["waiting"],
            line["sessions"],
            line["jobs"],
            line.get("busy_at"),
            line.get("gpu_quiet_since"),
            line.get("gpu_error"),
        )
        if key != previous:
            if not _write(out, line):
                return 0
            previous = key
        wake = now + interval
        change = next_count_change(connections, agent.min_duration)
        if change is not None:
            wake = min(wake, change + 0.001)
        timeout_ms = max(0, math.ceil((wake - boot_clock()) * 1000))
        if poller.poll(timeout_ms):
            return 0
