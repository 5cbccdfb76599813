"""Nothing started in an environment outlives it, however it daemonised.

The instance server is a child subreaper: every orphaned descendant (setsid, double
fork, ``env -i`` that drops the DEVENV_ENV marker, nohup) is reparented to it, it
reaps those that exit, and on shutdown it kills its whole process tree.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devenv.backends.local import proctools
from devenv.backends.local.files import READY_FILE, ReadyInfo
from tests.local_backend.conftest import Instance, Lab, Result, wait_until

PROC = Path("/proc")


def server_pid(lab: Lab, instance: Instance) -> int:
    name = instance.request.spec.name
    ready_file = lab.backend.instance_dir(name, instance.token) / READY_FILE
    return ReadyInfo.model_validate_json(ready_file.read_text()).pid


def state(pid: int) -> str | None:
    """The process state letter (R, S, Z...), None once the pid is gone entirely."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0]


def pids_with_last_arg(arg: str) -> list[int]:
    """Live processes whose last argument is ``arg`` (the tests' unique sleeps)."""
    found = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            argv = proctools.cmdline(pid)
            if argv and argv[-1] == arg and proctools.is_running(pid):
                found.append(pid)
    return found


class Escapees:
    """Unique ``sleep`` arguments for one test, and a sweep of whatever is left of them."""

    def __init__(self) -> None:
        self.nonce = f"{secrets.randbelow(10**6):06d}"
        self.used: list[str] = []

    def arg(self, seconds: int) -> str:
        arg = f"{seconds}.{self.nonce}"  # GNU sleep takes fractions: unique and harmless
        self.used.append(arg)
        return arg

    def running(self) -> dict[str, list[int]]:
        return {arg: pids for arg in self.used if (pids := pids_with_last_arg(arg))}

    def kill_leftovers(self) -> None:
        for pids in self.running().values():
            for pid in pids:
                proctools.send(pid, signal.SIGKILL)


@pytest.fixture
async def escapees() -> AsyncIterator[Escapees]:
    tracker = Escapees()
    try:
        yield tracker
    finally:
        tracker.kill_leftovers()


async def test_daemonised_processes_end_with_the_environment(lab: Lab, escapees: Escapees) -> None:
    instance = await lab.provision("escapes")
    server = server_pid(lab, instance)
    quiet = "</dev/null >/dev/null 2>&1"
    plain = escapees.arg(6001)
    session_leader = escapees.arg(6002)
    double_fork = escapees.arg(6003)
    nohup = escapees.arg(6004)
    stubborn = escapees.arg(6005)
    commands = [
        # No marker (env -i), same process group as the session's shell.
        f"env -i /bin/sleep {plain} {quiet} &",
        # No marker, own session and process group.
        f"setsid env -i /bin/sleep {session_leader} {quiet} &",
        # Double fork: the parent is gone before the session ends.
        f"sh -c '(env -i /bin/sleep {double_fork} {quiet} &) &'",
        f"nohup env -i /bin/sleep {nohup} {quiet} &",
        # Left its session, ignores SIGTERM and SIGHUP: only SIGKILL ends it.
        f"setsid env -i /bin/sh -c \"trap '' TERM HUP; exec /bin/sleep {stubborn}\" {quiet} &",
    ]
    for command in commands:
        started = await instance.ssh(instance.alias, f"{command}\necho started")
        assert (started.returncode, started.out) == (0, "started\n"), (command, started.err)

    # Each one is orphaned and adopted by the instance server, the subreaper.
    def adopted() -> bool:
        running = escapees.running()
        return len(running) == len(escapees.used) and all(
            proctools.parent(pid) == server for pids in running.values() for pid in pids
        )

    await wait_until(adopted)
    [stubborn_pid] = escapees.running()[stubborn]
    os.kill(stubborn_pid, signal.SIGTERM)
    os.kill(stubborn_pid, signal.SIGHUP)
    assert proctools.wait_gone([stubborn_pid], 0.3) == {stubborn_pid}  # really ignores them

    await lab.backend.terminate(instance.terminate_request())
    assert not proctools.is_running(server)
    assert escapees.running() == {}


async def test_orphans_that_exit_are_reaped(lab: Lab, escapees: Escapees) -> None:
    """An adopted process that ends does not stay a zombie of the server."""
    instance = await lab.provision("reaper")
    server = server_pid(lab, instance)
    arg = escapees.arg(6006)
    started = await instance.ssh(
        instance.alias, f"setsid env -i /bin/sleep {arg} </dev/null >/dev/null 2>&1 & echo ok"
    )
    assert started.out == "ok\n", started.err
    await wait_until(
        lambda: any(proctools.parent(pid) == server for pid in pids_with_last_arg(arg))
    )
    [orphan] = pids_with_last_arg(arg)
    os.kill(orphan, signal.SIGKILL)
    await wait_until(lambda: state(orphan) is None)  # reaped, not a zombie
    # The server still works and still reports exit codes (its own children's statuses
    # were not taken by the reaper).
    result = await instance.ssh(instance.alias, "exit 5")
    assert result.returncode == 5, result.err


async def test_reaping_orphans_does_not_steal_session_exit_codes(lab: Lab) -> None:
    """Sessions and orphans ending at the same moment: every session gets its own code."""
    instance = await lab.provision("busy-reaper")
    command = (
        "for i in 1 2 3; do setsid sh -c 'exit 1' </dev/null >/dev/null 2>&1 & done;"
        " (sh -c 'exit 2' &) ; exit {code}"
    )
    for _ in range(2):
        results: list[Result] = await asyncio.gather(
            *(instance.ssh(instance.alias, command.format(code=code)) for code in range(3, 13))
        )
        assert [r.returncode for r in results] == list(range(3, 13)), [r.err for r in results]
