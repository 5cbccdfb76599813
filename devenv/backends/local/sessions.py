"""Shell and exec sessions of the local instance, behaving like sshd's.

A session with a PTY gets a real pseudo-terminal (the child is a session leader with
the pty as its controlling terminal; window changes are applied; when the client
goes away the pty is hung up). Without a PTY the child gets pipes, and as with sshd
the session ends when the child has exited *and* its output is closed. Every child
starts a new session (its own process group), so shutdown can kill them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import subprocess
import termios
from asyncio.subprocess import Process
from typing import Any

import asyncssh
from asyncssh import BreakReceived, SignalReceived, TerminalSizeChanged
from asyncssh.misc import SoftEOFReceived

from devenv.backends.local import proctools
from devenv.backends.local.files import ENV_MARKER, ServerConfig
from devenv.backends.local.terminal import (
    apply_modes,
    set_window_size,
    take_controlling_tty,
)

log = logging.getLogger(__name__)

CHUNK = 65536
PTY_DRAIN_SECONDS = 0.5
"""After a PTY child exits, how long the pty may stay quiet before the session ends."""
ACCEPTED_CLIENT_ENV = ("LANG", "LC_")
"""Client-sent variables passed on, as sshd's default AcceptEnv."""

SessionProcess = asyncssh.SSHServerProcess[bytes]


class SpawnError(Exception):
    """The shell could not be started (reported to the client as exit status 127)."""


class Children:
    """The process groups this server started, so it can kill them all on shutdown."""

    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id
        self._procs: dict[int, Process] = {}

    def add(self, proc: Process) -> None:
        self._procs[proc.pid] = proc

    def discard(self, proc: Process) -> None:
        self._procs.pop(proc.pid, None)

    async def kill_all(self, grace: float = 2.0) -> None:
        """HUP+TERM every group, KILL what is left after ``grace``, then any escapee."""
        procs = list(self._procs.values())
        for proc in procs:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, sig)
        if procs:
            await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs], timeout=grace)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        # Processes that left their group (setsid, double fork) still carry the marker.
        escaped = proctools.processes_with_env(ENV_MARKER, self._instance_id)
        if escaped:
            await asyncio.to_thread(proctools.kill_processes, escaped, grace)


def child_env(config: ServerConfig, process: SessionProcess, term: str | None) -> dict[str, str]:
    """The server's environment (already cleaned by the backend) plus what sshd sets."""
    env = dict(os.environ)
    env.update(
        USER=config.username,
        LOGNAME=config.username,
        SHELL=config.shell,
        PWD=str(config.workspace),
    )
    env[ENV_MARKER] = config.instance_id
    env.setdefault("HOME", os.path.expanduser("~"))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    for name, value in process.env.items():
        if (
            isinstance(name, str)
            and isinstance(value, str)
            and name.startswith(ACCEPTED_CLIENT_ENV)
        ):
            env[name] = value
    peer = process.get_extra_info("peername") or ("127.0.0.1", 0)
    sock = process.get_extra_info("sockname") or ("127.0.0.1", 0)
    env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {sock[1]}"
    env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {sock[0]} {sock[1]}"
    env.pop("TERM", None)
    env.pop("SSH_TTY", None)
    if term:
        env["TERM"] = term
    return env


def session_argv(config: ServerConfig, command: str | None) -> list[str]:
    """A login shell, or ``shell -c command`` as sshd runs commands."""
    if command is None:
        return [config.shell, "-l"]
    return [config.shell, "-c", command]


async def run_session(process: SessionProcess, config: ServerConfig, children: Children) -> None:
    """The process factory of user sessions (shell and exec; sftp/scp are asyncssh's)."""
    command = process.command
    term = process.term_type
    argv = session_argv(config, command)
    env = child_env(config, process, term)
    log.info("session: %s, pty=%s", "shell" if command is None else "exec", term is not None)
    try:
        if term is not None:
            await _run_with_pty(process, argv, env, config, children)
        else:
            await _run_with_pipes(process, argv, env, config, children)
    except SpawnError as exc:
        log.warning("%s", exc)
        if not process.is_closing():
            with contextlib.suppress(OSError):
                process.stderr.write(f"devenv: {exc}\n".encode())
            process.exit(127)


def _report_exit(process: SessionProcess, returncode: int) -> None:
    """Exit status (or signal) to the client, which closes the channel."""
    if process.is_closing():
        return
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name.removeprefix("SIG")
        except ValueError:
            name = "KILL"
        process.exit_with_signal(name)
    else:
        process.exit(returncode)


def _forget_when_done(children: Children, proc: Process) -> asyncio.Task[int]:
    children.add(proc)
    waiter = asyncio.ensure_future(proc.wait())
    waiter.add_done_callback(lambda _: children.discard(proc))
    return waiter


def _signal_group(pgid: int, name: str) -> None:
    try:
        sig = signal.Signals[f"SIG{name}"]
    except KeyError:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# --- raw, non-blocking file descriptor I/O (pty master or pipes) ----------------------


async def _wait_fd(fd: int, writable: bool) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        await ready
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def _read_fd(fd: int) -> bytes:
    """Next chunk; b"" at end of file, or once every pty slave is closed (EIO)."""
    while True:
        try:
            return os.read(fd, CHUNK)
        except BlockingIOError:
            await _wait_fd(fd, writable=False)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return b""
            raise


async def _write_fd(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            await _wait_fd(fd, writable=True)


class _Progress:
    """How far an output pump got: tells a quiet pty from a slow client."""

    def __init__(self) -> None:
        self.chunks = 0
        self.waiting_for_client = False


async def _forward_output(
    fd: int, writer: asyncssh.SSHWriter[bytes], progress: _Progress | None = None
) -> None:
    """Child output to the channel, at the pace the client reads it."""
    progress = progress or _Progress()
    while data := await _read_fd(fd):
        progress.chunks += 1
        writer.write(data)
        progress.waiting_for_client = True
        await writer.drain()
        progress.waiting_for_client = False


async def _drain_pty(
    output: asyncio.Future[None], closed: asyncio.Future[None], progress: _Progress
) -> None:
    """After the child exits: forward the rest, stop once the pty has been quiet a while.

    Background jobs still holding the pty must not keep the session open (as with
    sshd), but a slow client must still get all of the output.
    """
    while not output.done() and not closed.done():
        before = progress.chunks
        await asyncio.wait(
            [output, closed], timeout=PTY_DRAIN_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if progress.chunks == before and not progress.waiting_for_client:
            return


async def _forward_input(process: SessionProcess, fd: int, pgid: int, pty: bool) -> None:
    """Channel input to the child; window changes and signals applied on the way."""
    while True:
        try:
            data = await process.stdin.read(CHUNK)
        except TerminalSizeChanged as exc:
            if pty:
                set_window_size(fd, *exc.term_size)
            continue
        except SignalReceived as exc:
            _signal_group(pgid, exc.signal)
            continue
        except (BreakReceived, SoftEOFReceived):
            continue
        if not data:
            return
        try:
            await _write_fd(fd, data)
        except OSError:  # the child closed its input (EPIPE) or the pty is gone
            return


class _Fds:
    """File descriptors of one session, closed exactly once."""

    def __init__(self) -> None:
        self._open: set[int] = set()

    def add(self, fd: int) -> int:
        self._open.add(fd)
        return fd

    def close(self, fd: int) -> None:
        if fd in self._open:
            self._open.discard(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)


async def _spawn(
    argv: list[str],
    env: dict[str, str],
    config: ServerConfig,
    pty: bool,
    stdio: tuple[int, int, int],
) -> Process:
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=stdio[0],
            stdout=stdio[1],
            stderr=stdio[2],
            cwd=config.workspace,
            env=env,
            start_new_session=True,
            preexec_fn=take_controlling_tty if pty else None,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpawnError(f"cannot start {argv[0]}: {exc}") from exc


async def _run_with_pty(
    process: SessionProcess,
    argv: list[str],
    env: dict[str, str],
    config: ServerConfig,
    children: Children,
) -> None:
    fds = _Fds()
    master, slave = (fds.add(fd) for fd in os.openpty())
    try:
        try:
            apply_modes(slave, process.term_modes)
            set_window_size(master, *process.term_size)
        except (termios.error, OSError, ValueError) as exc:
            log.warning("terminal settings not applied: %s", exc)
        env["SSH_TTY"] = os.ttyname(slave)
        proc = await _spawn(argv, env, config, True, (slave, slave, slave))
    except BaseException:
        fds.close_all()
        raise
    fds.close(slave)
    log.info("pty child %d started", proc.pid)
    os.set_blocking(master, False)
    exited = _forget_when_done(children, proc)
    progress = _Progress()
    output = asyncio.ensure_future(_forward_output(master, process.stdout, progress))
    feeder = asyncio.ensure_future(_forward_input(process, master, proc.pid, pty=True))
    closed = asyncio.ensure_future(process.channel.wait_closed())
    try:
        await asyncio.wait([exited, closed], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            await _drain_pty(output, closed, progress)
            _report_exit(process, exited.result())
        else:
            log.info("client left the pty session of %d: hanging up", proc.pid)
    finally:
        for task in (output, feeder, closed):
            task.cancel()
        await asyncio.gather(output, feeder, closed, return_exceptions=True)
        # Closing the master hangs the pty up: its session gets SIGHUP, as under sshd.
        fds.close_all()


async def _run_with_pipes(
    process: SessionProcess,
    argv: list[str],
    env: dict[str, str],
    config: ServerConfig,
    children: Children,
) -> None:
    fds = _Fds()
    in_r, in_w = (fds.add(fd) for fd in os.pipe())
    out_r, out_w = (fds.add(fd) for fd in os.pipe())
    err_r, err_w = (fds.add(fd) for fd in os.pipe())
    try:
        proc = await _spawn(argv, env, config, False, (in_r, out_w, err_w))
    except BaseException:
        fds.close_all()
        raise
    for fd in (in_r, out_w, err_w):
        fds.close(fd)
    for fd in (in_w, out_r, err_r):
        os.set_blocking(fd, False)
    log.info("child %d started", proc.pid)
    exited = _forget_when_done(children, proc)
    output = asyncio.ensure_future(
        asyncio.gather(
            _forward_output(out_r, process.stdout), _forward_output(err_r, process.stderr)
        )
    )
    feeder = asyncio.ensure_future(_forward_input(process, in_w, proc.pid, pty=False))
    feeder.add_done_callback(lambda _: fds.close(in_w))  # EOF to the child
    closed = asyncio.ensure_future(process.channel.wait_closed())
    both: list[asyncio.Future[Any]] = [exited, output]
    finished = asyncio.ensure_future(asyncio.wait(both))
    try:
        # Like sshd: the session ends when the child has exited and its output is
        # closed; if the client leaves first, the child gets EOF / EPIPE.
        await asyncio.wait([finished, closed], return_when=asyncio.FIRST_COMPLETED)
        if finished.done() and output.exception() is None:
            _report_exit(process, exited.result())
    finally:
        for task in (output, feeder, closed, finished):
            task.cancel()
        await asyncio.gather(output, feeder, closed, finished, return_exceptions=True)
        fds.close_all()
