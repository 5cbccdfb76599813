"""The local instance itself: an SSH server on 127.0.0.1 that knows who is connected.

Run detached by the local backend as ``python -m devenv.backends.local.server
INSTANCE_DIR``. It reads ``server.json``, listens on a free loopback port and writes
``ready.json``. The user's key gets a shell/PTY, exec, sftp, scp and local forwarding;
devenv's internal key gets only the ``devenv-activity`` subsystem, which streams the
number of user connections (and jobs) as JSON lines; ``devenv-keepalive`` jobs register
on an abstract Unix socket (see ``jobs``). It is a child subreaper, so every process
started in it stays in its process tree however it daemonised; it reaps the orphans
it adopts, and on SIGTERM it kills its whole tree.

One such process runs per environment, so it imports asyncssh and the standard library
only: no pydantic, no workflow models (``files.ServerConfig`` reads ``server.json``;
tests/local_backend/test_local_files.py checks what this module loads).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import asyncssh
from asyncssh.channel import SSHChannel

from devenv import logging_redact
from devenv.backends.local import proctools
from devenv.backends.local.counter import ConnectionCounter, Session, utc_now
from devenv.backends.local.cpu_watch import watch_cpu, watch_gpus
from devenv.backends.local.files import (
    ACTIVITY_SUBSYSTEM,
    BANNER_FILE,
    CONFIG_FILE,
    LOG_FILE,
    READY_FILE,
    SHARED_KEYS_FILE,
    ServerConfig,
    ready_json,
    write_atomic,
)
from devenv.backends.local.jobs import install_tools, serve_jobs
from devenv.backends.local.sessions import Children, SessionProcess, run_session
from devenv.models.sharing import SHARED_MARK, USER_NAME

log = logging.getLogger("devenv.local_server")

LISTEN_HOST = "127.0.0.1"
INTERNAL_OPTION = "devenv-internal"
"""authorized_keys option marking the control-plane key."""
MEMBER_OPTION = "devenv-member"
"""authorized_keys option naming the colleague a shared key belongs to."""
LOG_MAX_BYTES = 1_000_000
FORWARD_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where ``ssh -L`` may connect: services of the instance itself."""


@dataclass
class Instance:
    """What every connection of this server shares."""

    config: ServerConfig
    counter: ConnectionCounter
    children: Children
    authorized_keys: asyncssh.SSHAuthorizedKeys
    instance_dir: Path
    connections: set[asyncssh.SSHServerConnection] = field(default_factory=set)
    terminals: set[SessionProcess] = field(default_factory=set)
    """User sessions with a PTY: where a warning is written (like ``wall``)."""
    tools: Path | None = None
    """Where sessions find devenv-keepalive if their PATH does not."""

    shared_seen: tuple[int, int] | None = None
    """(mtime_ns, size) of the shared keys file last read."""

    def current_keys(self) -> asyncssh.SSHAuthorizedKeys:
        """The authorized keys, reread when the workflow changed who it is shared with
        (a stat per login; a member added or removed counts from the next login)."""
        path = self.instance_dir / SHARED_KEYS_FILE
        try:
            info = path.stat()
            seen: tuple[int, int] | None = (info.st_mtime_ns, info.st_size)
        except OSError:
            seen = None
        if seen != self.shared_seen:
            try:
                lines = path.read_text().splitlines() if seen is not None else []
            except OSError:
                lines = []
            self.authorized_keys = authorized_keys(self.config, lines)
            self.shared_seen = seen
        return self.authorized_keys

    def banner(self) -> bytes:
        """The login banner as a terminal wants it (CR LF); empty until one is written."""
        try:
            text = (self.instance_dir / BANNER_FILE).read_text()
        except OSError:
            return b""
        return text.replace("\n", "\r\n").encode()

    def tell(self, text: str) -> int:
        """Write ``text`` into every open terminal; how many got it."""
        data = text.encode()
        told = 0
        for process in list(self.terminals):
            if process.is_closing():
                continue
            with contextlib.suppress(OSError, asyncssh.Error):
                process.stdout.write(data)
                told += 1
        return told


async def user_session(process: SessionProcess, instance: Instance) -> None:
    """A user's shell or command; an interactive shell first gets the login banner, and
    every session with a terminal can be told a warning while it runs."""
    if process.term_type is None:
        await run_session(process, instance.config, instance.children, instance.tools)
        return
    if process.command is None:
        with contextlib.suppress(OSError, asyncssh.Error):
            process.stdout.write(instance.banner())
    instance.terminals.add(process)
    conn = process.get_extra_info("connection")
    owner = conn.get_owner() if conn is not None else None
    counter = instance.counter
    try:
        await run_session(
            process,
            instance.config,
            instance.children,
            instance.tools,
            on_input=None if owner is None else lambda: counter.input_seen(owner),
        )
    finally:
        instance.terminals.discard(process)


def authorized_keys(config: ServerConfig, shared: Sequence[str] = ()) -> asyncssh.SSHAuthorizedKeys:
    """The user key unrestricted; the internal key marked and denied pty and forwarding;
    the keys of colleagues it is shared with (``shared``) like the user's.

    Each key must be exactly one OpenSSH public-key line and is re-exported in
    canonical form, so no option or second line smuggled into a spec (anyone who
    can start a workflow writes one) can grant a key the internal role.
    """
    members = []
    for line in shared:
        _, _, name = line.strip().rpartition(SHARED_MARK)
        try:
            if not USER_NAME.fullmatch(name):
                raise ValueError
            exported = asyncssh.import_public_key(line.strip()).export_public_key().decode()
        except (asyncssh.KeyImportError, ValueError):
            log.warning("a shared key is not an OpenSSH public key line of a member; ignored")
            continue
        members.append(f'{MEMBER_OPTION}="{name}" {exported}')
    canonical = {}
    for what, line in (("user", config.user_public_key), ("internal", config.internal_public_key)):
        try:
            if len(line.strip().splitlines()) != 1:
                raise ValueError
            key = asyncssh.import_public_key(line.strip())
        except (asyncssh.KeyImportError, ValueError):
            # asyncssh would skip a bad line silently and nobody could ever log in.
            raise ValueError(
                f"the {what} public key is not an OpenSSH public key line (exactly one line)"
            ) from None
        canonical[what] = key.export_public_key().decode().strip()
    internal_options = (
        f"{INTERNAL_OPTION},no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding"
    )
    return asyncssh.import_authorized_keys(
        f"{canonical['user']}\n{''.join(members)}{internal_options} {canonical['internal']}\n"
    )


class WorkspaceSFTPServer(asyncssh.SFTPServer):
    """Plain filesystem access, relative paths from the workspace (the server's cwd)."""

    def exit(self) -> None:
        # Report success like sshd's sftp-server; scp in SFTP mode fails without it.
        if not self.channel.is_closing():
            self.channel.exit(0)


def _sftp_server(chan: SSHChannel[bytes]) -> asyncssh.SFTPServer:
    return WorkspaceSFTPServer(cast("asyncssh.SSHServerChannel[bytes]", chan))


class UserSession(SessionProcess):
    """Shell, exec, sftp and scp; no other subsystem (in particular not the activity one)."""

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == "sftp" and super().subsystem_requested(subsystem)


class ActivitySession(SessionProcess):
    """The internal key's only door: the activity subsystem."""

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def subsystem_requested(self, subsystem: str) -> bool:
        return subsystem == ACTIVITY_SUBSYSTEM


async def serve_activity(process: SessionProcess, counter: ConnectionCounter) -> None:
    """Stream one JSON line per change of the user connection count, current state first."""
    queue = counter.subscribe()

    async def pump() -> None:
        while True:
            snapshot = await queue.get()
            process.stdout.write(snapshot.to_line())
            await process.stdout.drain()

    sender = asyncio.ensure_future(pump())
    closed = asyncio.ensure_future(process.channel.wait_closed())
    try:
        await asyncio.wait([sender, closed], return_when=asyncio.FIRST_COMPLETED)
    finally:
        counter.unsubscribe(queue)
        sender.cancel()
        closed.cancel()
        await asyncio.gather(sender, closed, return_exceptions=True)
        if not process.is_closing():
            process.exit(0)


class InstanceServer(asyncssh.SSHServer):
    """One per TCP connection: authenticates, decides the role, counts user connections."""

    def __init__(self, instance: Instance) -> None:
        self._instance = instance
        self._conn: asyncssh.SSHServerConnection | None = None
        self._role: str | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        self._instance.connections.add(conn)
        log.info("connection from %s", conn.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is not None:
            self._instance.connections.discard(self._conn)
        if self._role == "user":
            self._instance.counter.user_disconnected(self)
        log.info(
            "connection closed (%s)%s", self._role or "unauthenticated", f": {exc}" if exc else ""
        )

    def begin_auth(self, username: str) -> bool:
        # Called again whenever the client switches login names: keys are trusted only
        # for the expected name, anything else fails auth.
        if self._conn is not None:
            expected = username == self._instance.config.username
            self._conn.set_authorized_keys(self._instance.current_keys() if expected else None)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # only the authorized keys above are accepted

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def host_based_auth_supported(self) -> bool:
        return False

    def auth_completed(self) -> None:
        assert self._conn is not None
        internal = bool(self._conn.get_key_option(INTERNAL_OPTION, False))
        self._role = "internal" if internal else "user"
        log.info("authenticated: %s", self._role)
        if self._role == "user":
            member = self._conn.get_key_option(MEMBER_OPTION, None)
            who = member[0] if isinstance(member, list) and member else self._instance.config.owner
            peer = self._conn.get_extra_info("peername") or ("?", 0)
            session = Session(peer=f"{peer[0]}:{peer[1]}", since=utc_now(), user=who)
            self._instance.counter.user_connected(self, session)

    def session_requested(self) -> SessionProcess:
        if self._role == "internal":
            counter = self._instance.counter
            return ActivitySession(lambda process: serve_activity(process, counter), None, 3, False)
        instance = self._instance
        return UserSession(
            lambda process: user_session(process, instance),
            _sftp_server,
            3,
            True,
        )

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        allowed = self._role == "user" and dest_host in FORWARD_HOSTS
        level = logging.DEBUG if allowed else logging.INFO
        log.log(
            level, "forward to %s:%d %s", dest_host, dest_port, "allowed" if allowed else "refused"
        )
        return allowed

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False


async def serve(instance_dir: Path, config: ServerConfig) -> None:
    """Listen, announce ``ready.json``, and run until SIGTERM/SIGINT."""
    try:
        # Before anything is started: every orphan of the tree is reparented here.
        proctools.become_subreaper()
    except (OSError, AttributeError) as exc:
        log.warning("not a child subreaper, daemonised processes may outlive it: %s", exc)
    os.chdir(config.workspace)  # sftp and scp resolve relative paths from here
    instance = Instance(
        config=config,
        counter=ConnectionCounter(config.min_connection_duration),
        children=Children(config.instance_id),
        authorized_keys=authorized_keys(config),
        instance_dir=instance_dir,
    )
    try:
        instance.tools = install_tools(instance_dir)
    except OSError as exc:
        log.warning("devenv-keepalive not installed for sessions: %s", exc)
    jobs: asyncio.AbstractServer | None = None
    try:
        jobs = await serve_jobs(
            config.instance_id, config.workspace, instance.counter, instance.tell
        )
    except OSError as exc:
        log.warning("jobs are not counted (no jobs socket): %s", exc)
    cpu = asyncio.ensure_future(watch_cpu(instance.counter, config.busy_cpu_percent))
    if config.gpu_min_percent is not None:
        gpus = asyncio.ensure_future(watch_gpus(instance.counter, config.gpu_min_percent))
        cpu.add_done_callback(lambda _: gpus.cancel())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGCHLD, instance.children.reap_orphans)

    acceptor = await asyncssh.listen(
        LISTEN_HOST,
        0,
        server_factory=lambda: InstanceServer(instance),
        server_host_keys=[str(config.host_key)],
        config=None,
        password_auth=False,
        kbdint_auth=False,
        host_based_auth=False,
        gss_host=None,
        agent_forwarding=False,
        x11_forwarding=False,
        line_editor=False,
        encoding=None,
        rdns_lookup=False,
        login_timeout=config.login_timeout,
        keepalive_interval=config.keepalive_interval,
        keepalive_count_max=config.keepalive_count_max,
    )
    port = acceptor.get_port()
    write_atomic(instance_dir / READY_FILE, ready_json(os.getpid(), port))
    log.info("listening on %s:%d (pid %d)", LISTEN_HOST, port, os.getpid())

    await stop.wait()
    log.info("stopping")
    cpu.cancel()
    acceptor.close()
    if jobs is not None:
        jobs.close()
    for conn in list(instance.connections):
        conn.close()
    await instance.children.kill_all()
    with contextlib.suppress(FileNotFoundError):
        (instance_dir / READY_FILE).unlink()
    log.info("stopped")


class BoundedLogHandler(logging.FileHandler):
    """A log file moved aside to ``NAME.1`` (one backup) before a record would take it
    past ``max_bytes``: logging.handlers.RotatingFileHandler's rule, without importing
    logging.handlers (pickle, queue: 0.6 MB more in every instance)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        super().__init__(path, encoding="utf-8")
        self.max_bytes = max_bytes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is not None and os.path.isfile(self.baseFilename):
                self.stream.seek(0, os.SEEK_END)  # the server's stderr appends here too
                if self.stream.tell() + len(self.format(record)) + 1 >= self.max_bytes:
                    full, self.stream = self.stream, None  # FileHandler.emit reopens it
                    full.close()
                    os.replace(self.baseFilename, f"{self.baseFilename}.1")
        except Exception:
            self.handleError(record)
            return
        super().emit(record)


def _setup_logging(instance_dir: Path) -> None:
    # Bounded: an instance may run for weeks with an IDE opening channels all day.
    handler = BoundedLogHandler(instance_dir / LOG_FILE, LOG_MAX_BYTES)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging_redact.install(root)
    # asyncssh at INFO is chatty and names keys; warnings are enough.
    logging.getLogger("asyncssh").setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(f"usage: python -m {__spec__.name if __spec__ else 'local_server'} INSTANCE_DIR")
        return 2
    instance_dir = Path(args[0]).resolve()
    _setup_logging(instance_dir)
    try:
        config = ServerConfig.from_json((instance_dir / CONFIG_FILE).read_bytes())
        asyncio.run(serve(instance_dir, config))
    except Exception:
        log.exception("instance server failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
