"""Finding and killing processes through /proc (Linux), safe against pid reuse.

Used by the local backend to stop an instance and everything started in it, and by
the instance server to clean up after itself (it is a child subreaper: every orphan
of its process tree is reparented to it).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

PROC = Path("/proc")
PR_SET_CHILD_SUBREAPER = 36


def is_running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie is as good as gone)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    # Field 3, after the command in parentheses (which may contain spaces).
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The argv of ``pid``, empty if gone or unreadable."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _stat_fields(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid``, None if gone."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[0], int(fields[1])


def parent(pid: int) -> int | None:
    """The parent pid of ``pid``, None if gone."""
    fields = _stat_fields(pid)
    return None if fields is None else fields[1]


def environ_has(pid: int, entry: bytes) -> bool:
    """Whether ``pid``'s initial environment contains ``NAME=value`` exactly."""
    try:
        raw = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return entry in raw.split(b"\0")


def ancestors(pid: int | None = None) -> set[int]:
    """``pid`` (default: this process) and its parents: never to be killed by a scan."""
    found: set[int] = set()
    current = pid or os.getpid()
    while current > 0 and current not in found:
        found.add(current)
        try:
            stat = (PROC / str(current) / "stat").read_text()
        except OSError:
            break
        current = int(stat.rsplit(")", 1)[-1].split()[1])
    return found


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes of this user whose environment has ``name=value``, except ourselves."""
    entry = f"{name}={value}".encode()
    uid = os.getuid()
    spared = ancestors()
    found = []
    for child in PROC.iterdir():
        if not child.name.isdigit():
            continue
        pid = int(child.name)
        if pid in spared:
            continue
        try:
            if child.stat().st_uid != uid:
                continue
        except OSError:
            continue
        if environ_has(pid, entry) and is_running(pid):
            found.append(pid)
    return found


def wait_gone(pids: Iterable[int], timeout: float) -> set[int]:
    """Wait until every pid is gone (or a zombie); return the ones still running."""
    remaining = {pid for pid in pids if is_running(pid)}
    deadline = time.monotonic() + timeout
    while remaining and time.monotonic() < deadline:
        time.sleep(0.05)
        remaining = {pid for pid in remaining if is_running(pid)}
    return remaining


def send(pid: int, sig: signal.Signals) -> None:
    """``kill`` that ignores processes already gone or not ours."""
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def kill_processes(pids: Iterable[int], grace: float = 3.0) -> None:
    """SIGHUP and SIGTERM, then SIGKILL whatever is still there after ``grace`` seconds."""
    targets = {pid for pid in pids if is_running(pid)}
    for pid in targets:
        send(pid, signal.SIGHUP)
        send(pid, signal.SIGTERM)
        send(pid, signal.SIGCONT)
    for pid in wait_gone(targets, grace):
        send(pid, signal.SIGKILL)
    wait_gone(targets, 1.0)


def become_subreaper() -> None:
    """Make this process a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``).

    Every process orphaned below it (setsid, double fork, nohup, ``env -i``...) is then
    reparented to it rather than to init, so it can find and kill them all. Raises
    OSError where the kernel does not support it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def _parents() -> dict[int, tuple[str, int]]:
    """Every visible process: pid -> (state, parent pid)."""
    table = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                table[int(entry.name)] = fields
    return table


def descendants(root: int | None = None) -> set[int]:
    """Live (non-zombie) processes below ``root`` (default: this process), not ``root``."""
    root = root or os.getpid()
    children: dict[int, list[int]] = {}
    live: set[int] = set()
    for pid, (state, ppid) in _parents().items():
        children.setdefault(ppid, []).append(pid)
        if state not in ("Z", "X"):
            live.add(pid)
    found: set[int] = set()
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found and child != root:
                found.add(child)
                stack.append(child)
    return found & live


def zombie_children(pid: int | None = None) -> list[int]:
    """Children of ``pid`` (default: this process) that have exited and wait to be reaped."""
    pid = pid or os.getpid()
    return sorted(
        child for child, (state, ppid) in _parents().items() if ppid == pid and state == "Z"
    )
