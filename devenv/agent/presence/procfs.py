"""Reading /proc: the account's processes and sshd's, the boot clock, a connection's peer."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from .lines import parse_net_tcp, peer_from_environ
from .table import Proc, ancestry


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
