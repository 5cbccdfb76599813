"""devenv's presence agent: how many authenticated SSH connections a Unix account has.

Copied to sshd hosts and run there as the environment's own account, as the forced
command of devenv's internal key, so it needs no privilege and nothing but the
standard library of Python 3.8+. It never reads SSH_ORIGINAL_COMMAND: whatever the
client asks for, the same stream runs.

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
tested against recorded process tables; the thin layer at the end reads /proc.

``failsafe`` (run as root, one per account) is the machine's own end when its control
plane is gone: it re-reads a policy file, watches the account's users and whether a
control plane still reads the stream, and runs an action (``shutdown -h now``) once
nobody has read the stream for ``failsafe_after_seconds`` and the policy's idle or
maximum duration has passed. A policy it cannot read never acts.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import pwd
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

AGENT_VERSION = "4"
AGENT_SCRIPT = "presence_agent.py"
DEFAULT_INTERVAL = 0.25
FAILSAFE_INTERVAL = 5.0
_ACTION_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

LOGINS_FOLDER = ".cache/devenv/logins"
"""Under the account's home: one empty file per user session, written by ``~/.ssh/rc``
(sshd runs it for shell and exec sessions of every key but devenv's own, which has
``restrict``, so no-user-rc), read by every stream, removed a minute later."""
KIND_SESSION = "session"
"""A session ~/.ssh/rc recorded that ended before the agent's next look."""
_CLOCK_SLACK = 0.05
"""Seconds between a session process's start (/proc, ticks) and its rc's file time."""

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
# timezone.utc (the same object), spelled so that pyupgrade rules for newer Pythons do not
# rewrite it to datetime.UTC, which Python 3.8 to 3.10 lack.
_UTC = timezone(timedelta(0))
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


# --- pure functions over process tables ----------------------------------------


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


def _address(hex_address: str) -> str:
    host_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(host_hex)
    # /proc/net/tcp{,6} prints each 32-bit word of the address in host (little endian) order.
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    port = int(port_hex, 16)
    if len(raw) == 4:
        return f"{ipaddress.IPv4Address(raw)}:{port}"
    address = ipaddress.IPv6Address(raw)
    if address.ipv4_mapped is not None:
        return f"{address.ipv4_mapped}:{port}"
    return f"[{address}]:{port}"


def parse_net_tcp(text: str) -> dict[int, str]:
    """Socket inode -> remote ``ip:port``, from /proc/net/tcp or /proc/net/tcp6."""
    peers: dict[int, str] = {}
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            inode = int(fields[9])
            if inode:
                peers[inode] = _address(fields[2])
        except ValueError:
            continue
    return peers


def peer_from_environ(environ: bytes) -> str | None:
    """``ip:port`` of the client from SSH_CONNECTION in a /proc/PID/environ blob."""
    for entry in environ.split(b"\0"):
        if entry.startswith(b"SSH_CONNECTION="):
            parts = entry[len(b"SSH_CONNECTION=") :].decode(errors="replace").split()
            if len(parts) == 4:
                host, port = parts[0], parts[1]
                return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return None


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, tz=_UTC).isoformat(timespec="microseconds")


def report(
    connections: Sequence[Connection],
    peers: Mapping[int, str | None],
    boot_wall: float,
    last_change: str,
    jobs: int | None = None,
) -> dict[str, Any]:
    """One line of the stream; ``boot_wall`` is the wall-clock time of boot. ``jobs``
    (running devenv-keepalive jobs) is in every line the agent writes."""
    line: dict[str, Any] = {
        "connections": sum(1 for c in connections if c.counted),
        "waiting": sum(1 for c in connections if not c.counted),
        "last_change": last_change,
        "sessions": [
            {
                "pid": c.pid,
                "from": peers.get(c.pid),
                "since": iso(boot_wall + c.start),
                "kind": c.kind,
            }
            for c in connections
        ],
    }
    if jobs is not None:
        line["jobs"] = jobs
    return line


# --- the failsafe: pure decisions ------------------------------------------------


class FailsafePolicy(NamedTuple):
    """The policy file (devenv.workflows.messages.FailsafePolicy), in seconds."""

    inactivity: float | None
    max_duration: float | None
    started_at: float
    """Wall-clock (epoch) seconds."""
    failsafe_after: float


class FailsafeSeen(NamedTuple):
    """Monotonic seconds when a control plane, and a user, were last seen (the failsafe's
    own start until then: never earlier)."""

    control: float
    user: float


def _policy_seconds(data: Mapping[str, Any], key: str, nullable: bool) -> float | None:
    if key not in data:
        raise ValueError(f"{key} is missing")
    value = data[key]
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{key} must be a number of seconds{' or null' if nullable else ''}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{key} must be finite and not negative")
    return float(value)


def parse_timestamp(text: str) -> float:
    """Epoch seconds of an ISO-8601 time; ``Z`` and naive times are UTC."""
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_UTC)
    return moment.timestamp()


def parse_policy(text: str) -> FailsafePolicy:
    """The policy in ``text``, or ValueError saying what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    started = data.get("started_at")
    if not isinstance(started, str):
        raise ValueError("started_at must be an ISO-8601 time")
    try:
        started_at = parse_timestamp(started)
    except (ValueError, OverflowError):
        raise ValueError(f"started_at {started!r} is not an ISO-8601 time") from None
    after = _policy_seconds(data, "failsafe_after_seconds", nullable=False)
    assert after is not None
    return FailsafePolicy(
        inactivity=_policy_seconds(data, "inactivity_seconds", nullable=True),
        max_duration=_policy_seconds(data, "max_duration_seconds", nullable=True),
        started_at=started_at,
        failsafe_after=after,
    )


def failsafe_seen(seen: FailsafeSeen, now: float, control: bool, users: int) -> FailsafeSeen:
    """``seen`` after an observation at ``now``: a control plane reading, ``users`` counted."""
    return FailsafeSeen(now if control else seen.control, now if users > 0 else seen.user)


def failsafe_reason(
    policy: FailsafePolicy | None,
    seen: FailsafeSeen,
    now: float,
    wall: float,
    users: int,
    control: bool,
) -> str | None:
    """Why the machine must end now, or None (the common answer).

    ``now`` is monotonic like ``seen``; ``wall`` is epoch seconds (for ``started_at``);
    ``users`` the account's user connections now, waiting ones included; ``control``
    whether a control plane reads the stream now. Without a policy, or while a control
    plane reads, or before none has for ``failsafe_after``: never.
    """
    if policy is None or control:
        return None
    unread = now - seen.control
    if unread < policy.failsafe_after:
        return None
    why = f"no control plane for {unread:.0f}s (failsafe_after {policy.failsafe_after:g}s)"
    if policy.max_duration is not None and wall >= policy.started_at + policy.max_duration:
        return (
            f"max_duration {policy.max_duration:g}s reached (started {iso(policy.started_at)}), "
            f"{why}"
        )
    if policy.inactivity is not None and users == 0:
        idle = now - seen.user
        if idle >= policy.inactivity:
            return (
                f"inactivity: nobody connected for {idle:.0f}s (inactivity "
                f"{policy.inactivity:g}s), {why}"
            )
    return None


# --- reading /proc ---------------------------------------------------------------


def boot_clock() -> float:
    """Seconds since boot on the clock process start times use (suspend included)."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        with open("/proc/uptime") as uptime:
            return float(uptime.read().split()[0])


def boot_wall_time() -> float:
    """Wall-clock time of boot. /proc/stat's btime is whole seconds, too coarse to say
    when a connection reaches min-connection-duration, so it is only the fallback."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        with open("/proc/stat") as stat:
            for line in stat:
                if line.startswith("btime "):
                    return float(line.split()[1])
        raise


def _read_stat(pid: int) -> tuple[str, int, int]:
    """(comm, ppid, start ticks) from /proc/PID/stat (comm may hold spaces and parens)."""
    with open(f"/proc/{pid}/stat") as stat:
        text = stat.read()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return comm, int(fields[1]), int(fields[19])


def _read_real_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    raise ValueError(f"no Uid in /proc/{pid}/status")


def _read_argv(pid: int) -> tuple[str, ...]:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        raw = cmdline.read()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def read_ancestry(pid: int) -> list[int]:
    """The agent's own pid and ancestors, read once: its connection never changes."""
    parents: dict[int, int] = {}
    current = pid
    for _ in range(256):
        try:
            parents[current] = _read_stat(current)[1]
        except (OSError, ValueError, IndexError):
            break
        current = parents[current]
        if current <= 1:
            break
    return ancestry(parents, pid)


class ProcReader:
    """Reads the process records that matter, cheaply enough to run four times a second.

    Only processes whose /proc/PID belongs to the account, or to root with a command
    name starting with "sshd", are read in full; which root processes are not sshd is
    remembered per pid (comm changes only on exec, and sshd's children are forked).
    """

    def __init__(self, uid: int, ticks_per_second: int) -> None:
        self.uid = uid
        self.ticks = float(ticks_per_second)
        self._root_not_sshd: set[int] = set()

    def read(self) -> list[Proc]:
        pids = [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
        self._root_not_sshd.intersection_update(pids)
        procs = []
        for pid in pids:
            try:
                owner = os.stat(f"/proc/{pid}").st_uid
                if owner != self.uid and (owner != 0 or pid in self._root_not_sshd):
                    continue
                comm, ppid, start = _read_stat(pid)
                if owner != self.uid and not comm.startswith("sshd"):
                    self._root_not_sshd.add(pid)
                    continue
                procs.append(self._record(pid, ppid, start))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not ours to read
        # A session-like title whose parent was skipped (not sshd): read that parent,
        # so a look-alike process reparented to init is seen as what it is.
        seen = {proc.pid for proc in procs}
        for proc in list(procs):
            if proc.ppid not in seen and proc.title.startswith("sshd"):
                try:
                    _, ppid, start = _read_stat(proc.ppid)
                    procs.append(self._record(proc.ppid, ppid, start))
                    seen.add(proc.ppid)
                except (OSError, ValueError, IndexError):
                    continue  # hidden (hidepid) or gone
        return procs

    def _record(self, pid: int, ppid: int, start_ticks: int) -> Proc:
        return Proc(pid, ppid, _read_real_uid(pid), _read_argv(pid), start_ticks / self.ticks)


def _socket_inodes(pid: int) -> list[int]:
    """Socket inodes of ``pid``, its stdin/stdout first (where sshd puts the connection)."""
    fd_dir = f"/proc/{pid}/fd"
    fds = sorted(int(fd) for fd in os.listdir(fd_dir) if fd.isdigit())
    fds.sort(key=lambda fd: (fd > 1, fd))
    inodes = []
    for fd in fds:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.append(int(target[len("socket:[") : -1]))
    return inodes


def read_peer(pid: int, below: Sequence[Proc]) -> str | None:
    """The client's ``ip:port``: the session's own socket if readable (sshd usually makes
    it non-dumpable), else SSH_CONNECTION in a child's environment, else None."""
    try:
        inodes = _socket_inodes(pid)
    except OSError:
        inodes = []
    if inodes:
        peers: dict[int, str] = {}
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(table) as text:
                    peers.update(parse_net_tcp(text.read()))
            except OSError:
                continue
        for inode in inodes:
            if inode in peers:
                return peers[inode]
    for proc in below:
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as environ:
                peer = peer_from_environ(environ.read())
        except OSError:
            continue
        if peer is not None:
            return peer
    return None


class Agent:
    """Observes one account; remembers peers found so /proc/net is read once per connection."""

    def __init__(self, user: str, uid: int, min_duration: float) -> None:
        self.user = user
        self.uid = uid
        self.min_duration = min_duration
        self.reader = ProcReader(uid, os.sysconf("SC_CLK_TCK"))
        self.own_ancestry = read_ancestry(os.getpid())
        self.boot_wall = boot_wall_time()
        self.script = os.path.basename(__file__)
        self._peers: dict[tuple[int, float], str] = {}
        self.jobs = 0
        """Running jobs (devenv-keepalive) at the last ``observe``."""

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
        return connections, peers, now


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


# --- the commands ------------------------------------------------------------------


class _Stop(BaseException):
    """Raised by SIGTERM/SIGHUP/SIGINT: leave quietly with status 0."""


def _stop(signum: int, frame: object) -> None:
    raise _Stop()


def _write(out: Any, line: dict[str, Any]) -> bool:
    """False when the reader has gone (the SSH channel closed)."""
    try:
        out.write(json.dumps(line) + "\n")
        out.flush()
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _now_iso() -> str:
    return datetime.now(_UTC).isoformat(timespec="microseconds")


def probe(agent: Agent, out: Any) -> int:
    connections, peers, _ = agent.observe()
    _write(out, report(connections, peers, agent.boot_wall, _now_iso(), agent.jobs))
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
    last_change = _now_iso()
    looked: float | None = None
    while True:
        connections, peers, now = agent.observe()
        line = report(connections, peers, agent.boot_wall, last_change, agent.jobs)
        in_use = (line["connections"], line["jobs"])
        if counted is not None and in_use != counted:
            last_change = _now_iso()
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
        key = (line["connections"], line["waiting"], line["sessions"], line["jobs"])
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


class FailsafeWatcher:
    """What the failsafe sees of one account: (user connections, counted ones, control).

    The agent's own view of the account (its reader, its ancestry), without peers."""

    def __init__(self, user: str, uid: int, min_duration: float) -> None:
        self.agent = Agent(user, uid, min_duration)

    def observe(self) -> tuple[int, int, bool]:
        """(user connections and jobs, the counted ones, whether a control plane reads):
        a running job keeps the machine in use like a connected user."""
        agent = self.agent
        procs = agent.reader.read()
        connections = find_connections(
            procs,
            agent.user,
            agent.uid,
            agent.own_ancestry,
            boot_clock(),
            agent.min_duration,
            agent.script,
        )
        counted = sum(1 for connection in connections if connection.counted)
        control = control_plane_present(procs, agent.user, agent.uid, agent.script)
        jobs = count_jobs(procs, agent.uid)
        return len(connections) + jobs, counted + jobs, control


def load_policy(path: str) -> tuple[FailsafePolicy | None, str]:
    """(the policy, "") or (None, why it cannot be used)."""
    try:
        with open(path, encoding="utf-8") as policy_file:
            text = policy_file.read(65536)
    except (OSError, UnicodeDecodeError) as error:
        return None, f"cannot read {path} ({getattr(error, 'strerror', None) or error})"
    try:
        return parse_policy(text), ""
    except ValueError as error:
        return None, f"invalid policy {path}: {error}"


def describe_policy(policy: FailsafePolicy) -> str:
    def seconds(value: float | None) -> str:
        return "off" if value is None else f"{value:g}s"

    return (
        f"inactivity {seconds(policy.inactivity)}, max_duration {seconds(policy.max_duration)}, "
        f"started {iso(policy.started_at)}, failsafe_after {policy.failsafe_after:g}s"
    )


def _log(err: Any, message: str) -> None:
    try:
        err.write(f"{AGENT_SCRIPT} failsafe {_now_iso()}: {message}\n")
        err.flush()
    except (OSError, ValueError):
        pass


def run_action(action: str, err: Any) -> int:
    """``/bin/sh -c ACTION`` as root, once; its output goes to the failsafe's log.

    Its environment is fixed (not the failsafe's own), the same under systemd and setsid.
    """
    env = {"PATH": _ACTION_PATH, "HOME": "/"}
    try:
        err.flush()
        done = subprocess.run(
            ["/bin/sh", "-c", action],
            stdin=subprocess.DEVNULL,
            stdout=err.fileno(),
            stderr=err.fileno(),
            cwd="/",
            env=env,
            check=False,
        )
    except (OSError, ValueError) as error:
        _log(err, f"the action could not run: {error}")
        return 127
    return done.returncode


def failsafe(
    watcher: FailsafeWatcher, policy_path: str, action: str, interval: float, err: Any
) -> int:
    """Observe every ``interval`` seconds; run ``action`` once when the policy says so."""
    start = time.monotonic()
    seen = FailsafeSeen(start, start)
    logged_policy: object = None
    logged_state: object = None
    _log(err, f"watching {watcher.agent.user} (policy {policy_path}, every {interval:g}s)")
    while True:
        policy, problem = load_policy(policy_path)
        if (policy, problem) != logged_policy:
            logged_policy = (policy, problem)
            if policy is None:
                _log(err, f"{problem}: the failsafe will not act")
            else:
                _log(err, f"policy: {describe_policy(policy)}")
        users, counted, control = watcher.observe()
        now = time.monotonic()
        seen = failsafe_seen(seen, now, control, counted)
        state = (users, control)
        if state != logged_state:
            logged_state = state
            _log(err, f"users={users} control={'yes' if control else 'no'}")
        reason = failsafe_reason(policy, seen, now, time.time(), users, control)
        if reason is not None:
            _log(err, f"acting on {watcher.agent.user}: {reason}; running the action")
            status = run_action(action, err)
            _log(err, f"the action exited with status {status}; the failsafe is done")
            return 0
        time.sleep(interval)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=AGENT_SCRIPT, description="devenv presence agent: who is connected over SSH"
    )
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("stream", "a JSON line now, then one per change"),
        ("probe", "one JSON line, then exit"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--user", required=True, help="the account to watch")
        command.add_argument(
            "--min-connection-duration",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="connections younger than this are waiting, not counted",
        )
        if name == "stream":
            command.add_argument(
                "--interval", type=float, default=DEFAULT_INTERVAL, metavar="SECONDS"
            )
            command.add_argument(
                "--count-recorded-logins",
                action="store_true",
                help=f"count every session ~/.ssh/rc recorded in ~/{LOGINS_FOLDER}, "
                "however short (min_connection_duration 0)",
            )
    command = commands.add_parser(
        "failsafe", help="as root: run an action once the control plane is gone and idle"
    )
    command.add_argument("--user", required=True, help="the account to watch")
    command.add_argument("--policy", required=True, metavar="FILE", help="the policy JSON")
    actions = command.add_mutually_exclusive_group(required=True)
    actions.add_argument("--action", metavar="COMMAND", help="run with /bin/sh -c, once")
    actions.add_argument(
        "--action-file", metavar="FILE", help="read the action from FILE (at start)"
    )
    command.add_argument("--interval", type=float, default=FAILSAFE_INTERVAL, metavar="SECONDS")
    command.add_argument(
        "--min-connection-duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="user connections younger than this do not renew the idle time",
    )
    return parser


def _read_action(args: argparse.Namespace) -> str | None:
    if args.action is not None:
        action: str = args.action
    else:
        try:
            with open(args.action_file, encoding="utf-8") as action_file:
                action = action_file.read(65536)
        except (OSError, UnicodeDecodeError) as error:
            print(f"{AGENT_SCRIPT}: cannot read {args.action_file}: {error}", file=sys.stderr)
            return None
    if not action.strip():
        print(f"{AGENT_SCRIPT}: the action is empty", file=sys.stderr)
        return None
    return action


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        uid = pwd.getpwnam(args.user).pw_uid
    except KeyError:
        print(f"{AGENT_SCRIPT}: no such user: {args.user}", file=sys.stderr)
        return 2
    if args.min_connection_duration < 0 or getattr(args, "interval", 1.0) <= 0:
        print(f"{AGENT_SCRIPT}: durations must be positive", file=sys.stderr)
        return 2
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, _stop)
    if args.command == "failsafe":
        action = _read_action(args)
        if action is None:
            return 2
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # detached: a hang-up is no reason to stop
        try:
            watcher = FailsafeWatcher(args.user, uid, args.min_connection_duration)
            return failsafe(watcher, args.policy, action, max(0.01, args.interval), sys.stderr)
        except _Stop:
            return 0
    try:
        agent = Agent(args.user, uid, args.min_connection_duration)
        if args.command == "probe":
            status = probe(agent, sys.stdout)
        else:
            logins = None
            if args.count_recorded_logins:
                home = pwd.getpwnam(args.user).pw_dir
                logins = LoginRecords(os.path.join(home, LOGINS_FOLDER))
            status = stream(agent, sys.stdout, max(0.01, args.interval), logins)
    except _Stop:
        status = 0
    # Whatever is left in stdout's buffer has nowhere to go: do not let the flush at
    # exit complain about a closed pipe.
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ConnectionResetError, _Stop):
        pass
    finally:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return status


if __name__ == "__main__":
    sys.exit(main())
