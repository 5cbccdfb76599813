"""Connections and jobs in a process table: pure functions over :class:`Proc` records.

How a connection is recognised (OpenSSH 8.x to 10.x): after authentication sshd
forks a process running as the account and retitles it ``sshd: USER`` (no channel
yet, e.g. ``ssh -N -L``), ``sshd: USER@notty`` or ``sshd: USER@pts/0,pts/1``
(``sshd-session:`` since OpenSSH 9.8); its parent is the root monitor
``sshd: USER [priv]`` (``sshd-session: USER [postauth]`` since 10.5). Requiring the
account's real uid, that exact title and that parent means that pre-authentication
processes ([accepted], [net], [preauth], sshd-auth), failed logins, bare TCP
connections, other accounts, the internal-sftp child and look-alikes never count.

Jobs: every line also says how many jobs the account runs (``"jobs": N``), counted as
its processes running devenv-keepalive (``devenv run``, or by hand in tmux), minus those
whose parent is one too; its ``--jobs`` and ``--job-log`` helpers are not jobs. A job
keeps the environment in use like a connected user, for the failsafe too.

The parsing is pure functions over a list of :class:`Proc` records so it can be
tested against recorded process tables; ``procfs`` reads /proc.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from . import AGENT_SCRIPT

KIND_SHELL = "shell"
KIND_SFTP = "sftp"
KIND_EXEC = "exec"
KIND_FORWARD = "forward"
"""Authenticated, no session ever opened: ``ssh -N`` (port forwarding only, or a master
started with -N), or a connection about to open its first session."""
KIND_MASTER = "master"
"""Its sessions have ended and the connection stays open: an OpenSSH ControlMaster kept
by ControlPersist (sshd titles it USER@notty, nothing runs below it)."""

# "sshd: alice", "sshd: alice@notty", "sshd-session: alice@pts/1,pts/2"
_SESSION_TITLE = re.compile(r"^(?:sshd|sshd-session): ([^\s@\[\]]+)(?:@(\S+))?$")
# The root monitor of a connection: "[priv]", and "[postauth]" since OpenSSH 10.5.
_MONITOR_TITLE = re.compile(r"^(?:sshd|sshd-session): ([^\s@\[\]]+) \[(?:priv|postauth)\]$")
_INTERNAL_SFTP = "internal-sftp"
_NO_TTY = "notty"
# Any version of the agent as hosts install it: presence_agent.py, presence_agent-2.py.
_AGENT_FILE = re.compile(r"^presence_agent(?:-[A-Za-z0-9._]+)?\.py$")
# devenv-keepalive as it runs: the wrapper or console script, the file hosts install
# (keepalive-1.py), or the package's own file (.../devenv/agent/keepalive.py).
_KEEPALIVE_FILE = re.compile(r"^(?:devenv-keepalive|keepalive-[A-Za-z0-9._]+\.py)$")
_KEEPALIVE_MODULE = "/devenv/agent/keepalive.py"
_INTERPRETER = re.compile(r"^(?:python[0-9.]*|sh|bash|dash)$")
# Invocations of devenv-keepalive that are not jobs (listing, a log, help).
_KEEPALIVE_HELPERS = ("--jobs", "--job-log", "--help", "-h", "--version")


_CLOCK_SLACK = 0.05
"""Seconds between a session process's start (/proc, ticks) and its rc's file time."""


class Proc(NamedTuple):
    """One process: ``argv`` is /proc/PID/cmdline split on NULs (sshd's title for sshd),
    ``start`` seconds after boot (CLOCK_BOOTTIME, the clock of /proc/PID/stat)."""

    pid: int
    ppid: int
    uid: int
    argv: tuple[str, ...]
    start: float

    @property
    def title(self) -> str:
        return " ".join(self.argv).strip()


class Connection(NamedTuple):
    """One authenticated connection of the account, as seen at one instant."""

    pid: int
    start: float
    kind: str
    counted: bool
    """Lasted at least min-connection-duration; otherwise it is waiting."""


def session_ttys(title: str, user: str) -> str | None:
    """The tty list of ``user``'s post-authentication title ("" before any channel), else None.

    ``USER@internal-sftp`` is the forked internal-sftp server of a connection, not one.
    """
    match = _SESSION_TITLE.match(title)
    if match is None or match.group(1) != user:
        return None
    ttys = match.group(2) or ""
    return None if ttys == _INTERNAL_SFTP else ttys


def has_tty(ttys: str) -> bool:
    return any(tty and tty != _NO_TTY for tty in ttys.split(","))


def is_monitor(proc: Proc, user: str) -> bool:
    """The root-owned ``sshd: USER [priv]`` (10.5+: ``[postauth]``) parent of a session."""
    match = _MONITOR_TITLE.match(proc.title)
    return proc.uid == 0 and match is not None and match.group(1) == user


def session_processes(procs: Sequence[Proc], user: str, uid: int) -> list[Proc]:
    """One process per authenticated connection of ``user`` (real uid ``uid``).

    The parent must be the [priv] monitor. A parent that is itself a session process
    (the internal-sftp child, a session child between fork and exec) is not a
    connection. A parent we cannot see (/proc mounted with hidepid) is accepted, so
    such hosts still count their users rather than terminate them.
    """
    by_pid = {proc.pid: proc for proc in procs}
    found = []
    for proc in procs:
        if proc.uid != uid or session_ttys(proc.title, user) is None:
            continue
        parent = by_pid.get(proc.ppid)
        if parent is not None and not is_monitor(parent, user):
            continue
        found.append(proc)
    return found


def ancestry(parents: Mapping[int, int], pid: int) -> list[int]:
    """``pid`` and its ancestors, nearest first, following ppid links."""
    chain = [pid]
    while len(chain) < 256:
        parent = parents.get(chain[-1])
        if parent is None or parent <= 0 or parent in chain:
            break
        chain.append(parent)
    return chain


def children_of(procs: Iterable[Proc]) -> dict[int, list[Proc]]:
    children: dict[int, list[Proc]] = {}
    for proc in procs:
        children.setdefault(proc.ppid, []).append(proc)
    return children


def descendants(pid: int, children: Mapping[int, list[Proc]]) -> list[Proc]:
    found: list[Proc] = []
    todo = [pid]
    seen = {pid}
    while todo:
        for child in children.get(todo.pop(), []):
            if child.pid not in seen:
                seen.add(child.pid)
                found.append(child)
                todo.append(child.pid)
    return found


def is_sftp_server(proc: Proc) -> bool:
    if proc.title.endswith("@" + _INTERNAL_SFTP):
        return True
    return bool(proc.argv) and os.path.basename(proc.argv[0]).startswith("sftp-server")


def is_agent_process(proc: Proc, script: str = AGENT_SCRIPT) -> bool:
    """A presence agent (``... presence_agent.py stream|probe ...``), ours or a sibling's."""
    argv = proc.argv
    for index in range(len(argv) - 1):
        if os.path.basename(argv[index]) == script and argv[index + 1] in ("stream", "probe"):
            return True
    return False


def connection_kind(ttys: str, below: Sequence[Proc]) -> str:
    """What a connection carries now: shell (a pty), sftp, exec (a command runs), master
    (sessions ended, the connection kept) or forward (no session ever: ``ssh -N``)."""
    if has_tty(ttys):
        return KIND_SHELL
    if any(is_sftp_server(proc) for proc in below):
        return KIND_SFTP
    if below:
        return KIND_EXEC
    return KIND_MASTER if ttys else KIND_FORWARD


def is_agent_connection(ttys: str, below: Sequence[Proc], script: str = AGENT_SCRIPT) -> bool:
    """A connection that runs nothing but presence agents: devenv's, never a user's.

    A probe and a stream may run at the same time; neither may count the other.
    """
    if has_tty(ttys) or not below:
        return False
    parents = {proc.ppid for proc in below}
    leaves = [proc for proc in below if proc.pid not in parents]
    return all(is_agent_process(proc, script) for proc in leaves)


def find_connections(
    procs: Sequence[Proc],
    user: str,
    uid: int,
    own_ancestry: Sequence[int],
    now: float,
    min_duration: float,
    script: str = AGENT_SCRIPT,
) -> list[Connection]:
    """The account's authenticated connections, minus the agent's own and its siblings'.

    ``own_ancestry`` is the agent's pid and its ancestors: the session process among
    them is the agent's own connection. ``now`` and every ``start`` are seconds after
    boot; a connection is counted once ``now - start >= min_duration``, waiting before.
    """
    sessions = session_processes(procs, user, uid)
    own = set(own_ancestry)
    children = children_of(procs)
    found = []
    for proc in sessions:
        if proc.pid in own:
            continue
        ttys = session_ttys(proc.title, user) or ""
        below = descendants(proc.pid, children)
        if is_agent_connection(ttys, below, script):
            continue
        counted = now - proc.start >= min_duration
        found.append(Connection(proc.pid, proc.start, connection_kind(ttys, below), counted))
    found.sort(key=lambda connection: (connection.start, connection.pid))
    return found


def is_stream_process(proc: Proc, script: str = AGENT_SCRIPT) -> bool:
    """A presence agent ``stream`` of any installed version (``script`` or presence_agent*)."""
    argv = proc.argv
    for index in range(len(argv) - 1):
        name = os.path.basename(argv[index])
        if (name == script or _AGENT_FILE.match(name)) and argv[index + 1] == "stream":
            return True
    return False


def _is_any_agent_process(proc: Proc, script: str) -> bool:
    argv = proc.argv
    for index in range(len(argv) - 1):
        name = os.path.basename(argv[index])
        if (name == script or _AGENT_FILE.match(name)) and argv[index + 1] in ("stream", "probe"):
            return True
    return False


def control_plane_present(
    procs: Sequence[Proc], user: str, uid: int, script: str = AGENT_SCRIPT
) -> bool:
    """Whether a control plane reads the account's stream: an authenticated connection
    without a tty that runs nothing but presence agents, one of them a ``stream``."""
    children = children_of(procs)
    for proc in session_processes(procs, user, uid):
        ttys = session_ttys(proc.title, user) or ""
        if has_tty(ttys):
            continue
        below = descendants(proc.pid, children)
        parents = {child.ppid for child in below}
        leaves = [child for child in below if child.pid not in parents]
        if (
            leaves
            and all(_is_any_agent_process(leaf, script) for leaf in leaves)
            and any(is_stream_process(leaf, script) for leaf in leaves)
        ):
            return True
    return False


def keepalive_arguments(argv: Sequence[str]) -> tuple[str, ...] | None:
    """The arguments after the devenv-keepalive script in ``argv`` (it is the program, or
    the script of an interpreter: ``python3 [-options] SCRIPT``, ``sh SCRIPT``), or None
    when ``argv`` is not devenv-keepalive."""
    for index in range(min(len(argv), 3)):
        word = argv[index]
        if index > 0 and not (
            _INTERPRETER.match(os.path.basename(argv[0]))
            and all(option.startswith("-") for option in argv[1:index])
        ):
            return None
        if _KEEPALIVE_FILE.match(os.path.basename(word)) or word.endswith(_KEEPALIVE_MODULE):
            return tuple(argv[index + 1 :])
    return None


def is_job_process(proc: Proc) -> bool:
    """A devenv-keepalive running a job (not its ``--jobs`` listing or a log)."""
    rest = keepalive_arguments(proc.argv)
    return rest is not None and not (rest and rest[0] in _KEEPALIVE_HELPERS)


def count_jobs(procs: Sequence[Proc], uid: int) -> int:
    """Jobs of the account: its devenv-keepalive processes, not counting one whose parent
    is one too (a detaching keepalive and the job it starts, a fork before exec)."""
    jobs = {proc.pid: proc for proc in procs if proc.uid == uid and is_job_process(proc)}
    return sum(1 for proc in jobs.values() if proc.ppid not in jobs)


def next_count_change(connections: Iterable[Connection], min_duration: float) -> float | None:
    """When (seconds after boot) the first waiting connection becomes counted."""
    moments = [c.start + min_duration for c in connections if not c.counted]
    return min(moments) if moments else None


def settle_logins(
    pending: Mapping[str, float], connections: Sequence[Connection], boot_wall: float
) -> tuple[list[float], dict[str, float]]:
    """(times of recorded sessions no connection accounts for, those still pending).

    ``pending`` maps each recorded session to its wall-clock time. One is accounted for
    by a counted connection that began by then (it is that one, or someone counts
    anyway); a waiting connection that began by then keeps it pending (it may close
    before counting); otherwise its connection came and went between two looks.
    """
    short: list[float] = []
    still: dict[str, float] = {}
    for key, moment in pending.items():
        began = [c for c in connections if boot_wall + c.start <= moment + _CLOCK_SLACK]
        if any(c.counted for c in began):
            continue
        if began:
            still[key] = moment
        else:
            short.append(moment)
    return sorted(short), still
