"""Shell and exec sessions of the local instance, behaving like sshd's.

A session with a PTY gets a real pseudo-terminal (the child is a session leader with
the pty as its controlling terminal; window changes are applied; when the client
goes away the pty is hung up). Without a PTY the child gets pipes, and as with sshd
the session ends when the child has exited *and* its output is closed. Every child
starts a new session (its own process group). The server is a child subreaper, so
whatever a session leaves behind (setsid, double fork, nohup) stays in its process
tree: ``Children`` reaps those orphans when they exit and kills the whole tree on
shutdown. A child's environment is built from an allow-list, never inherited whole
from the worker that started the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import pwd
import signal
import subprocess
import termios
from asyncio.subprocess import Process
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh import BreakReceived, SignalReceived, TerminalSizeChanged
from asyncssh.misc import SoftEOFReceived

from devenv.backends.local import proctools
from devenv.backends.local.files import ENV_MARKER, ServerConfig
from devenv.backends.local.jobs import session_path
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
PASSED_SERVER_ENV = ("LANG", "TZ")
PASSED_SERVER_ENV_PREFIXES = ("LC_",)
"""The only variables of the server's own environment a session inherits (locale and
time zone); everything else is set explicitly, so an SSH agent socket, cloud
credentials or tokens of the shell that started the worker never reach a session."""
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
OWNED_BY_LOGIN = frozenset({"HOME", "USER", "LOGNAME", "SHELL", "PATH", "PWD", "OLDPWD", "TERM"})
"""What the configuration's ``env`` never overrides (the model refuses them already)."""
TERM_GRACE_SECONDS = 2.0
"""On shutdown, how long processes have after SIGHUP/SIGTERM before SIGKILL."""
KILL_TIMEOUT_SECONDS = 2.0
"""How long SIGKILL is repeated on the process tree before giving up (with a warning)."""

SessionProcess = asyncssh.SSHServerProcess[bytes]


class SpawnError(Exception):
    """The shell could not be started (reported to the client as exit status 127)."""


class Children:
    """This server's process tree: the sessions it started and the orphans it adopted.

    asyncio's child watcher owns the exit status of every session it started (their
    pids are kept here while they run); any other child of the server is an orphan
    reparented to it as subreaper, reaped by ``reap_orphans`` so it does not stay a
    zombie. ``kill_all`` ends the whole tree on shutdown.
    """

    def __init__(self, instance_id: str) -> None:
        self._instance_id = instance_id
        self._procs: dict[int, Process] = {}
        self._spawning = 0
        self._reap_deferred = False

    def add(self, proc: Process) -> None:
        self._procs[proc.pid] = proc

    def discard(self, proc: Process) -> None:
        self._procs.pop(proc.pid, None)

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        """Around the start of a session: until ``add``, its pid is asyncio's but unknown
        here, so no orphan is reaped meanwhile (the pass runs once the spawn is over)."""
        self._spawning += 1
        try:
            yield
        finally:
            self._spawning -= 1
            if not self._spawning and self._reap_deferred:
                self.reap_orphans()

    def reap_orphans(self) -> None:
        """Reap the exited children that are not asyncio's (run on SIGCHLD)."""
        if self._spawning:
            self._reap_deferred = True
            return
        self._reap_deferred = False
        try:
            # Without reaping anything: is any child waiting to be reaped at all?
            exited = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if exited is None:
            return
        for pid in proctools.zombie_children():
            if pid in self._procs:
                continue  # a session: asyncio collects its exit status
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            log.debug("reaped orphan %d", pid)

    async def kill_all(
        self, grace: float = TERM_GRACE_SECONDS, kill_timeout: float = KILL_TIMEOUT_SECONDS
    ) -> None:
        """End every process of this server's tree, then any escapee with the marker.

        HUP+TERM+CONT to every session's group and every descendant (the server being a
        subreaper, the tree holds every orphan too, whoever it was started by and
        whatever its environment), for at most ``grace`` seconds; then KILL what is
        left, again and again until nothing remains, so that nothing forked meanwhile
        survives either.
        """
        loop = asyncio.get_running_loop()
        groups = [proc.pid for proc in self._procs.values()]
        for pgid in groups:
            for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pgid, sig)
        signalled: set[int] = set()
        deadline = loop.time() + grace
        while tree := proctools.descendants():
            for pid in tree - signalled:
                for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGCONT):
                    proctools.send(pid, sig)
            signalled |= tree
            if loop.time() >= deadline:
                break
            await asyncio.sleep(0.05)
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
        deadline = loop.time() + kill_timeout
        while tree := proctools.descendants():
            if loop.time() >= deadline:
                log.warning("processes still running after SIGKILL: %s", sorted(tree))
                break
            log.info("%d process(es) still running after SIGTERM: SIGKILL", len(tree))
            for pid in tree:
                proctools.send(pid, signal.SIGKILL)
            await asyncio.sleep(0.02)
        # Outside the tree only if started before this server was a subreaper.
        escaped = proctools.processes_with_env(ENV_MARKER, self._instance_id)
        if escaped:
            await asyncio.to_thread(proctools.kill_processes, escaped, min(grace, 1.0))


def _home() -> str:
    home = os.environ.get("HOME")
    if home:
        return home
    with contextlib.suppress(KeyError):
        return pwd.getpwuid(os.getuid()).pw_dir
    return "/"


def child_env(
    config: ServerConfig, process: SessionProcess, term: str | None, tools: Path | None = None
) -> dict[str, str]:
    """What a session's process gets, from an allow-list, as sshd builds it.

    The user, their home, shell and PATH; the server's locale and time zone; what sshd
    sets (SSH_CLIENT, SSH_CONNECTION, SSH_TTY with a PTY and TERM from its request); the
    instance marker; and the LANG/LC_* the client sent. ``tools`` (devenv-keepalive) is
    appended to PATH when PATH does not find it already. Nothing else of the server's
    environment (which is the worker's) is passed on.
    """
    env = {
        "HOME": _home(),
        "USER": config.username,
        "LOGNAME": config.username,
        "SHELL": config.shell,
        "PATH": session_path(os.environ.get("PATH") or DEFAULT_PATH, tools),
        "PWD": str(config.workspace),
    }
    for name, value in os.environ.items():
        if name in PASSED_SERVER_ENV or name.startswith(PASSED_SERVER_ENV_PREFIXES):
            env[name] = value
    for name, value in process.env.items():
        if (
            isinstance(name, str)
            and isinstance(value, str)
            and name.startswith(ACCEPTED_CLIENT_ENV)
        ):
            env[name] = value
    env.update(configured_env(config))
    peer = process.get_extra_info("peername") or ("127.0.0.1", 0)
    sock = process.get_extra_info("sockname") or ("127.0.0.1", 0)
    env["SSH_CLIENT"] = f"{peer[0]} {peer[1]} {sock[1]}"
    env["SSH_CONNECTION"] = f"{peer[0]} {peer[1]} {sock[0]} {sock[1]}"
    if term:
        env["TERM"] = term
    env[ENV_MARKER] = config.instance_id
    return env


def configured_env(config: ServerConfig) -> dict[str, str]:
    """The configuration's ``env`` (``config.env_file``), read at each session so that it
    never sits in the server's own environment; names the login owns are skipped."""
    if config.env_file is None:
        return {}
    try:
        data = json.loads(Path(config.env_file).read_text())
    except (OSError, ValueError):
        log.warning("the session environment file could not be read")
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        name: value
        for name, value in data.items()
        if isinstance(name, str)
        and isinstance(value, str)
        and name not in OWNED_BY_LOGIN
        and not name.startswith(("SSH_", ENV_MARKER))
    }


def session_argv(config: ServerConfig, command: str | None) -> list[str]:
    """A login shell, or ``shell -c command`` as sshd runs commands."""
    if command is None:
        return [config.shell, "-l"]
    return [config.shell, "-c", command]


async def run_session(
    process: SessionProcess,
    config: ServerConfig,
    children: Children,
    tools: Path | None = None,
    on_input: Callable[[], None] | None = None,
) -> None:
    """The process factory of user sessions (shell and exec; sftp/scp are asyncssh's)."""
    command = process.command
    term = process.term_type
    argv = session_argv(config, command)
    env = child_env(config, process, term, tools)
    log.info("session: %s, pty=%s", "shell" if command is None else "exec", term is not None)
    try:
        if term is not None:
            await _run_with_pty(process, argv, env, config, children, on_input)
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


async def _forward_input(
    process: SessionProcess,
    fd: int,
    pgid: int,
    pty: bool,
    on_input: Callable[[], None] | None = None,
) -> None:
    """Channel input to the child; window changes and signals applied on the way;
    ``on_input`` told of every chunk typed (a terminal's sign of life)."""
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
        if on_input is not None:
            on_input()
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
    children: Children,
    pty: bool,
    stdio: tuple[int, int, int],
) -> Process:
    """Start a session's child, known to ``children`` before anything can reap it."""
    try:
        with children.spawning():
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=stdio[0],
                stdout=stdio[1],
                stderr=stdio[2],
                cwd=config.workspace,
                env=env,
                start_new_session=True,
                preexec_fn=take_controlling_tty if pty else None,
            )
            children.add(proc)
            return proc
    except (OSError, subprocess.SubprocessError) as exc:
        raise SpawnError(f"cannot start {argv[0]}: {exc}") from exc


async def _run_with_pty(
    process: SessionProcess,
    argv: list[str],
    env: dict[str, str],
    config: ServerConfig,
    children: Children,
    on_input: Callable[[], None] | None = None,
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
        proc = await _spawn(argv, env, config, children, True, (slave, slave, slave))
    except BaseException:
        fds.close_all()
        raise
    fds.close(slave)
    log.info("pty child %d started", proc.pid)
    os.set_blocking(master, False)
    exited = _forget_when_done(children, proc)
    progress = _Progress()
    output = asyncio.ensure_future(_forward_output(master, process.stdout, progress))
    feeder = asyncio.ensure_future(
        _forward_input(process, master, proc.pid, pty=True, on_input=on_input)
    )
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
        proc = await _spawn(argv, env, config, children, False, (in_r, out_w, err_w))
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
