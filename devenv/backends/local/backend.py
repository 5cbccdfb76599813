"""The ``local`` backend: each instance is a detached SSH server process on this host.

Layout under ``settings.envs_dir``::

    <name>/workspace/                   kept after terminate, reused by the next <name>
    <name>/instances/<token>/           server.json, ready.json, server.pid, host key, log
    <name>/instances/<token>/terminated written by terminate: this token never starts again
    <name>/instances/<token>/suspended  written by suspend, removed by resume

Suspend ends every process of the instance as terminate does but keeps the host key and
server.json; resume starts the server again (a new port, the same host key).

Provision is idempotent per token (an flock on the instance folder serialises
retries and concurrent attempts), and the server is started through an intermediate
process so it outlives the worker and never becomes the worker's zombie.

``leftovers`` (``devenv gc``) are the instance folders with processes still running:
the server, or anything carrying the instance's ``DEVENV_ENV`` marker. The folder
names the environment (so its workflow) and the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from devenv import dead_peer
from devenv.backends.base import (
    Backend,
    InstanceGoneError,
    Leftover,
    ProvisioningError,
    Suspendable,
)
from devenv.backends.local import proctools
from devenv.backends.local.files import (
    BANNER_FILE,
    CONFIG_FILE,
    ENV_MARKER,
    HOST_KEY_FILE,
    LOCK_FILE,
    LOG_FILE,
    PID_FILE,
    PRESENCE_SUBSYSTEM,
    READY_FILE,
    SERVER_MODULE,
    SESSION_ENV_FILE,
    SHARED_KEYS_FILE,
    SUSPENDED_FILE,
    TERMINATED_FILE,
    ReadyInfo,
    ServerConfig,
    local_username,
    login_shell,
    write_atomic,
)
from devenv.backends.local.init_run import run_init
from devenv.backends.local.jobs import tell_instance
from devenv.backends.presence_stream import ssh_presence
from devenv.env_secrets import session_env
from devenv.keys import ensure_keypair, internal_public_key, private_dir, write_private_file
from devenv.models.messages import (
    PROVISIONING_ERROR,
    ProvisionInput,
    SuspendInput,
    TerminateInput,
)
from devenv.models.state import InstanceInfo, LoginSettings, PresenceReport, workflow_id_for
from devenv.settings import Settings, SettingsError, host_task_queue

BACKEND = "local"
M = TypeVar("M", bound=ReadyInfo)
__all__ = ["PROVISIONING_ERROR", "LocalBackend", "LocalInstanceData"]
SAFE_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KEEPALIVE_INTERVAL_VAR = "DEVENV_LOCAL_KEEPALIVE_INTERVAL"
KEEPALIVE_COUNT_MAX_VAR = "DEVENV_LOCAL_KEEPALIVE_COUNT_MAX"
DEFAULT_KEEPALIVE_INTERVAL = float(dead_peer.INTERVAL_SECONDS)
DEFAULT_KEEPALIVE_COUNT_MAX = dead_peer.asyncssh_count_max()
SERVER_ENV = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TZ", "PYTHONPATH")
SERVER_ENV_PREFIXES = ("LC_",)
"""What the instance server inherits from the worker (an allow-list): a session can read
the server's environment in /proc, so nothing else of the worker's (API keys, cloud
credentials, agent sockets) may be there."""


def server_environment(worker: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in worker.items()
        if key in SERVER_ENV or key.startswith(SERVER_ENV_PREFIXES)
    }


READY_POLL_SECONDS = 0.005
"""How often a start looks for ready.json (a failed open and a stat of /proc each time)."""


# Started by the worker; starts the server in a new session, prints its pid and exits,
# so the server is reparented away from the worker (no zombie, survives the worker).
_LAUNCHER = """\
import subprocess, sys
proc = subprocess.Popen(
    sys.argv[1:], stdin=subprocess.DEVNULL, stdout=2, stderr=2, start_new_session=True
)
print(proc.pid, flush=True)
"""


def provisioning_error(message: str) -> ProvisioningError:
    return ProvisioningError(message)


class LocalInstanceData(BaseModel):
    """``InstanceInfo.data`` of a local instance: which process serves it, where it lives."""

    pid: int | None = None
    workspace: str | None = None

    @classmethod
    def of(cls, instance: InstanceInfo) -> LocalInstanceData:
        return cls.model_validate(instance.data)


def _has_env(request: ProvisionInput) -> bool:
    return bool(request.spec.env) or request.spec.env_secrets is not None


def _safe(kind: str, value: str) -> str:
    """Names and tokens become folder names: refuse anything that could escape."""
    if not SAFE_COMPONENT.fullmatch(value) or value in (".", ".."):
        raise provisioning_error(f"invalid {kind} for the local backend: {value!r}")
    return value


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _read_config(path: Path) -> ServerConfig | None:
    try:
        return ServerConfig.from_json(path.read_text())
    except (OSError, ValueError):
        return None


def _read_model(path: Path, model: type[M]) -> M | None:
    try:
        return model.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def _locked(instance_dir: Path) -> Iterator[None]:
    """Exclusive flock, held across threads and processes, released even on crash."""
    fd = os.open(instance_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LocalBackend(Backend, Suspendable):
    """Instances as detached processes of this host (see the module docstring)."""

    name = BACKEND

    def __init__(
        self,
        settings: Settings,
        *,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        login_timeout: float = 30.0,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        keepalive_count_max: int = DEFAULT_KEEPALIVE_COUNT_MAX,
    ) -> None:
        super().__init__(settings)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.login_timeout = login_timeout
        self.keepalive_interval = keepalive_interval
        self.keepalive_count_max = keepalive_count_max

    @classmethod
    def for_worker(cls, settings: Settings) -> LocalBackend:
        """The backend with the keepalive of new instances from the worker's environment.

        ``DEVENV_LOCAL_KEEPALIVE_INTERVAL`` (seconds) and ``DEVENV_LOCAL_KEEPALIVE_COUNT_MAX``
        bound how long a user whose network died without closing TCP still counts:
        interval x (count + 1). Tests lower them; production keeps 15 s and 3 (60 s).
        """
        interval = _number_variable(KEEPALIVE_INTERVAL_VAR, DEFAULT_KEEPALIVE_INTERVAL, float)
        count = _number_variable(KEEPALIVE_COUNT_MAX_VAR, DEFAULT_KEEPALIVE_COUNT_MAX, int)
        return cls(settings, keepalive_interval=interval, keepalive_count_max=count)

    # --- paths -----------------------------------------------------------------------

    def env_dir(self, name: str) -> Path:
        return self.settings.envs_dir / _safe("environment name", name)

    def workspace(self, name: str) -> Path:
        return self.env_dir(name) / "workspace"

    def instance_dir(self, name: str, token: str) -> Path:
        return self.env_dir(name) / "instances" / _safe("instance token", token)

    def _find_instance_dir(self, instance: InstanceInfo) -> Path | None:
        token = _safe("instance token", instance.instance_id)
        workspace = LocalInstanceData.of(instance).workspace
        if workspace:
            candidate = Path(workspace).parent / "instances" / token
            if candidate.is_dir():
                return candidate
        return next(iter(self.settings.envs_dir.glob(f"*/instances/{token}")), None)

    # --- Backend protocol ------------------------------------------------------------

    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        """Start (or find) the server of ``request.instance_token``; returns once it listens
        and the ``init`` commands ran (once per instance: a retry does not run them again)."""
        configured, hidden = self._session_env(request)
        info = await asyncio.to_thread(self._provision, request, configured)
        spec = request.spec
        await run_init(
            spec.name,
            spec.init,
            self.workspace(spec.name),
            self.instance_dir(spec.name, request.instance_token),
            configured,
            hidden,
        )
        return info

    def _session_env(self, request: ProvisionInput) -> tuple[dict[str, str], list[str]]:
        try:
            return session_env(self.settings, request.spec)
        except LookupError as problem:
            raise provisioning_error(str(problem)) from None

    async def is_alive(self, instance: InstanceInfo) -> bool:
        """Whether the server process of this instance still runs (pid reuse checked)."""
        instance_dir = self._find_instance_dir(instance)
        if instance_dir is None or (instance_dir / TERMINATED_FILE).exists():
            return False
        pid = LocalInstanceData.of(instance).pid
        return pid is not None and _is_server(pid, instance_dir)

    def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        """The server's own count of authenticated user connections, over SSH."""
        return ssh_presence(
            instance,
            self.settings.internal_key,
            subsystem=PRESENCE_SUBSYSTEM,
            connect_timeout=connect_timeout,
        )

    async def terminate(self, request: TerminateInput) -> None:
        """Stop the server and every process of the instance; keep the workspace."""
        await asyncio.to_thread(self._terminate, request)

    async def suspend(self, request: SuspendInput) -> InstanceInfo:
        """End the server and every process of the instance; keep the workspace, the host
        key and the server's configuration (idempotent)."""
        return await asyncio.to_thread(self._suspend, request)

    async def resume(self, request: SuspendInput) -> InstanceInfo:
        """Start the server again on a new port with the same host key; returns once it
        listens (idempotent: a running server is answered as is)."""
        return await asyncio.to_thread(self._resume, request)

    async def apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        """Write the banner the server prints when a user opens a shell, and the keys of
        the colleagues it is shared with (the server rereads them at the next login)."""
        instance_dir = self._find_instance_dir(instance)
        if instance_dir is None or (instance_dir / TERMINATED_FILE).exists():
            raise InstanceGoneError(f"instance {instance.instance_id} is gone")
        write_atomic(instance_dir / SHARED_KEYS_FILE, "".join(f"{k}\n" for k in login.shared_keys))
        write_atomic(instance_dir / BANNER_FILE, login.banner)

    async def tell_terminals(self, instance: InstanceInfo, text: str) -> int:
        """Ask the server (on its jobs socket) to write ``text`` into its terminals."""
        try:
            return await tell_instance(instance.instance_id, text)
        except (OSError, ValueError, KeyError) as problem:
            if not await self.is_alive(instance):
                raise InstanceGoneError(f"instance {instance.instance_id} is gone") from None
            raise RuntimeError(f"the instance did not take the message: {problem}") from None

    async def leftovers(self) -> list[Leftover]:
        """Every instance of this host's DEVENV_HOME with a process still running."""
        return await asyncio.to_thread(self._leftovers)

    async def remove_leftover(self, leftover: Leftover) -> None:
        """Terminate the instance as ``terminate`` does (its workspace is kept)."""
        name = str(leftover.data.get("name", ""))
        token = str(leftover.data.get("token", ""))
        await asyncio.to_thread(self._end_instance, name, token, None)

    # --- provision ---------------------------------------------------------------------

    def _provision(self, request: ProvisionInput, configured: dict[str, str]) -> InstanceInfo:
        spec = request.spec
        token = request.instance_token
        workspace = self.workspace(spec.name)
        instance_dir = self.instance_dir(spec.name, token)
        private_dir(self.settings.envs_dir)
        private_dir(self.env_dir(spec.name))
        private_dir(instance_dir.parent)
        private_dir(instance_dir)
        workspace.mkdir(mode=0o700, exist_ok=True)
        with _locked(instance_dir):
            if (instance_dir / TERMINATED_FILE).exists():
                raise provisioning_error(
                    f"instance {token} of {spec.name} was terminated; it is not started again"
                )
            if configured:
                write_private_file(instance_dir / SESSION_ENV_FILE, json.dumps(configured).encode())
            config = self._write_config(request, instance_dir, workspace)
            ready = self._running_server(instance_dir)
            if ready is None:
                ready = self._start_server(instance_dir, token)
            return self._instance_info(request, config, ready)

    def _write_config(
        self, request: ProvisionInput, instance_dir: Path, workspace: Path
    ) -> ServerConfig:
        """server.json and the host key; reused as is when a retry finds them."""
        existing = _read_config(instance_dir / CONFIG_FILE)
        if existing is not None and (instance_dir / HOST_KEY_FILE).exists():
            return existing
        host_key = instance_dir / HOST_KEY_FILE
        ensure_keypair(host_key, comment=f"devenv-{request.instance_token}")
        config = ServerConfig(
            instance_id=request.instance_token,
            workspace=workspace,
            username=local_username(),
            user_public_key=request.spec.user_public_key,
            internal_public_key=internal_public_key(self.settings),
            host_key=host_key,
            owner=request.spec.owner,
            min_connection_duration=request.spec.min_connection_duration,
            busy_cpu_percent=request.spec.connected_idle_cpu,
            gpu_min_percent=(
                None
                if request.spec.utilization_policy is None
                else float(request.spec.utilization_policy.min_gpu_utilization)
            ),
            shell=login_shell(),
            login_timeout=self.login_timeout,
            keepalive_interval=self.keepalive_interval,
            keepalive_count_max=self.keepalive_count_max,
            env_file=str(instance_dir / SESSION_ENV_FILE) if _has_env(request) else None,
        )
        write_atomic(instance_dir / CONFIG_FILE, config.to_json())
        return config

    def _running_server(self, instance_dir: Path) -> ReadyInfo | None:
        """The live server of this instance, waiting for one that is still starting."""
        ready = _read_model(instance_dir / READY_FILE, ReadyInfo)
        if ready is not None and _is_server(ready.pid, instance_dir):
            return ready
        pid = _read_pid(instance_dir)
        if pid is not None and _is_server(pid, instance_dir):
            # Started by an attempt that died before it saw ready.json.
            return self._wait_ready(instance_dir, pid)
        servers = _unrecorded_servers(instance_dir)
        if servers:
            # Started by attempts that died (kill -9) before they wrote the pidfile:
            # adopt one, so that there is never a second instance.
            for extra in servers[1:]:
                _stop_server(extra, self.stop_timeout)
            write_atomic(instance_dir / PID_FILE, str(servers[0]))
            return self._wait_ready(instance_dir, servers[0])
        return None

    def _start_server(self, instance_dir: Path, token: str) -> ReadyInfo:
        for stale in (READY_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (instance_dir / stale).unlink()
        env = server_environment(os.environ)
        env[ENV_MARKER] = token
        argv = [sys.executable, "-m", SERVER_MODULE, str(instance_dir)]
        log_fd = os.open(instance_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            launcher = subprocess.run(
                [sys.executable, "-c", _LAUNCHER, *argv],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_fd,
                env=env,
                cwd=instance_dir,
                timeout=self.start_timeout,
                check=False,
            )
            pid = int(launcher.stdout.decode().strip())
        except (OSError, ValueError, subprocess.SubprocessError):
            self._cleanup_failed(instance_dir, token, None)
            raise provisioning_error(
                f"could not start the instance server:\n{_tail(instance_dir / LOG_FILE)}"
            ) from None
        finally:
            os.close(log_fd)
        write_atomic(instance_dir / PID_FILE, str(pid))
        return self._wait_ready(instance_dir, pid)

    def _wait_ready(self, instance_dir: Path, pid: int) -> ReadyInfo:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            ready = _read_model(instance_dir / READY_FILE, ReadyInfo)
            if ready is not None and ready.pid == pid:
                return ready
            if not proctools.is_running(pid):
                break
            time.sleep(READY_POLL_SECONDS)
        token = instance_dir.name
        self._cleanup_failed(instance_dir, token, pid)
        raise provisioning_error(
            f"the instance server did not become ready:\n{_tail(instance_dir / LOG_FILE)}"
        )

    def _cleanup_failed(self, instance_dir: Path, token: str, pid: int | None) -> None:
        if pid is not None and _is_server(pid, instance_dir):
            _stop_server(pid, self.stop_timeout)
        proctools.kill_processes(proctools.processes_with_env(ENV_MARKER, token), grace=1.0)
        for stale in (READY_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (instance_dir / stale).unlink()

    def _instance_info(
        self, request: ProvisionInput | SuspendInput, config: ServerConfig, ready: ReadyInfo
    ) -> InstanceInfo:
        host_key = Path(str(config.host_key) + ".pub").read_text().strip()
        return InstanceInfo(
            instance_id=request.instance_token,
            backend=BACKEND,
            host="127.0.0.1",
            port=ready.port,
            username=config.username,
            host_public_key=host_key,
            task_queue=request.spec.host_task_queue or host_task_queue(),
            folder=str(config.workspace),
            data=LocalInstanceData(pid=ready.pid, workspace=str(config.workspace)).model_dump(),
            price_per_hour=0.0,
            login_messages=True,
        )

    # --- terminate -----------------------------------------------------------------------

    def _terminate(self, request: TerminateInput) -> None:
        known = None if request.instance is None else LocalInstanceData.of(request.instance).pid
        self._end_instance(request.spec.name, request.instance_token, known)
        if request.purge_workspace:
            shutil.rmtree(self.workspace(request.spec.name), ignore_errors=True)

    def _end_instance(self, name: str, token: str, known_pid: int | None) -> None:
        """Stop the server and every process of instance ``token`` of ``name`` for good."""
        instance_dir = self.instance_dir(name, token)
        private_dir(self.env_dir(name))
        private_dir(instance_dir.parent)
        private_dir(instance_dir)
        with _locked(instance_dir):
            # First, so that no retried provision can start this token again.
            (instance_dir / TERMINATED_FILE).touch()
            self._stop_processes(instance_dir, token, known_pid)
            for leftover in (HOST_KEY_FILE, SUSPENDED_FILE, SESSION_ENV_FILE):
                with contextlib.suppress(FileNotFoundError):
                    (instance_dir / leftover).unlink()

    def _stop_processes(self, instance_dir: Path, token: str, known_pid: int | None) -> None:
        """Stop the server and every process carrying the instance's marker (lock held)."""
        candidates = {_read_pid(instance_dir), known_pid}
        ready = _read_model(instance_dir / READY_FILE, ReadyInfo)
        if ready is not None:
            candidates.add(ready.pid)
        for pid in candidates:
            if pid is not None and _is_server(pid, instance_dir):
                _stop_server(pid, self.stop_timeout)
        proctools.kill_processes(proctools.processes_with_env(ENV_MARKER, token))
        for leftover in (READY_FILE, PID_FILE):
            with contextlib.suppress(FileNotFoundError):
                (instance_dir / leftover).unlink()

    # --- suspend / resume ----------------------------------------------------------------

    def _suspendable_dir(self, request: SuspendInput) -> Path:
        """The instance's folder, or InstanceGoneError when it was terminated or is gone."""
        instance_dir = self.instance_dir(request.spec.name, request.instance_token)
        if not (instance_dir / HOST_KEY_FILE).exists() or (instance_dir / TERMINATED_FILE).exists():
            raise InstanceGoneError(f"instance {request.instance_token} is gone")
        return instance_dir

    def _suspend(self, request: SuspendInput) -> InstanceInfo:
        instance_dir = self._suspendable_dir(request)
        data = LocalInstanceData.of(request.instance)
        with _locked(instance_dir):
            self._suspendable_dir(request)  # a terminate may have won the lock
            (instance_dir / SUSPENDED_FILE).touch()
            self._stop_processes(instance_dir, request.instance_token, data.pid)
        suspended = LocalInstanceData(pid=None, workspace=data.workspace)
        return request.instance.model_copy(update={"data": suspended.model_dump()})

    def _resume(self, request: SuspendInput) -> InstanceInfo:
        instance_dir = self._suspendable_dir(request)
        with _locked(instance_dir):
            self._suspendable_dir(request)
            config = _read_config(instance_dir / CONFIG_FILE)
            if config is None:
                raise InstanceGoneError(f"instance {request.instance_token} has no configuration")
            ready = self._running_server(instance_dir)
            if ready is None:
                ready = self._start_server(instance_dir, request.instance_token)
            with contextlib.suppress(FileNotFoundError):
                (instance_dir / SUSPENDED_FILE).unlink()
            return self._instance_info(request, config, ready)

    # --- leftovers -------------------------------------------------------------------------

    def _leftovers(self) -> list[Leftover]:
        envs = self.settings.envs_dir
        if not envs.is_dir():
            return []
        marked = _marked_processes()
        where = socket.gethostname()
        found = []
        for instance_dir in sorted(envs.glob("*/instances/*")):
            name, token = instance_dir.parent.parent.name, instance_dir.name
            if not instance_dir.is_dir() or not all(
                SAFE_COMPONENT.fullmatch(part) for part in (name, token)
            ):
                continue
            pids = set(marked.get(token, ()))
            server = _server_of(instance_dir, pids)
            if server is not None:
                pids.add(server)
            if not pids:
                continue
            ready = _read_model(instance_dir / READY_FILE, ReadyInfo)
            count = f"{len(pids)} process{'' if len(pids) == 1 else 'es'}"
            if server is None:
                detail = f"no server, {count} left"
            elif ready is not None and ready.pid == server:
                detail = f"server on 127.0.0.1:{ready.port}, {count}"
            else:
                detail = f"server starting, {count}"
            found.append(
                Leftover(
                    backend=BACKEND,
                    id=str(server if server is not None else min(pids)),
                    where=where,
                    name=name,
                    workflow_id=workflow_id_for(name),
                    instance_token=token,
                    detail=detail,
                    data={"name": name, "token": token, "pids": sorted(pids)},
                )
            )
        return found


N = TypeVar("N", int, float)


def _number_variable(name: str, default: N, kind: type[N]) -> N:
    """A positive number (at most an hour) from the environment; SettingsError otherwise."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = kind(0)
    if not 0 < value <= 3600:
        accepted = "a whole number 1-3600" if kind is int else "seconds, above 0 and at most 3600"
        raise SettingsError(f"{name}: invalid value {raw[:40]!r}: accepted: {accepted}")
    return value


def _read_pid(instance_dir: Path) -> int | None:
    try:
        return int((instance_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def _is_server(pid: int, instance_dir: Path) -> bool:
    """``pid`` runs this instance's server (not a reused pid, not a zombie)."""
    if not proctools.is_running(pid):
        return False
    argv = proctools.cmdline(pid)
    return SERVER_MODULE in argv and str(instance_dir) in argv


def _marked_processes() -> dict[str, list[int]]:
    """Live processes of this user carrying the instance marker, by token (one /proc scan).

    This process and its parents are left out: ``devenv gc`` run from a shell inside an
    instance must not count itself.
    """
    prefix = f"{ENV_MARKER}=".encode()
    uid = os.getuid()
    spared = proctools.ancestors()
    found: dict[str, list[int]] = {}
    for entry in proctools.PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) in spared:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            raw = (entry / "environ").read_bytes()
        except OSError:
            continue
        for variable in raw.split(b"\0"):
            if variable.startswith(prefix):
                pid = int(entry.name)
                if proctools.is_running(pid):
                    token = variable[len(prefix) :].decode(errors="replace")
                    found.setdefault(token, []).append(pid)
                break
    return found


def _server_of(instance_dir: Path, marked: set[int]) -> int | None:
    """The running server of ``instance_dir``: the one its files name, else one found."""
    ready = _read_model(instance_dir / READY_FILE, ReadyInfo)
    for pid in (None if ready is None else ready.pid, _read_pid(instance_dir)):
        if pid is not None and _is_server(pid, instance_dir):
            return pid
    argv = ["-m", SERVER_MODULE, str(instance_dir)]
    servers = [pid for pid in marked if proctools.cmdline(pid)[1:4] == argv]
    roots = sorted(pid for pid in servers if proctools.parent(pid) not in servers)
    return roots[0] if roots else None


def _unrecorded_servers(instance_dir: Path) -> list[int]:
    """Server processes of this instance that no file names, found by their marker.

    Forks of the server (children between fork and exec) carry the same argv; only a
    process whose parent is not itself such a process is the server.
    """
    argv = ["-m", SERVER_MODULE, str(instance_dir)]
    found = {
        pid
        for pid in proctools.processes_with_env(ENV_MARKER, instance_dir.name)
        if proctools.cmdline(pid)[1:4] == argv
    }
    return sorted(pid for pid in found if proctools.parent(pid) not in found)


def _stop_server(pid: int, timeout: float) -> None:
    """SIGTERM (the server then kills its whole tree), SIGKILL if it does not exit.

    The tree is read first: a server killed before it finished would hand its adopted
    processes to init, where those without the marker (``env -i``) could escape.
    """
    tree = proctools.descendants(pid)
    proctools.send(pid, signal.SIGTERM)
    if proctools.wait_gone([pid], timeout):
        proctools.send(pid, signal.SIGKILL)
        proctools.wait_gone([pid], 1.0)
    leftovers = [child for child in tree if proctools.is_running(child)]
    if leftovers:
        proctools.kill_processes(leftovers, grace=1.0)
