"""What the local backend and its instance server share: file names and their contents.

The backend (in the worker) and the server (a detached process) only talk through
these files, so both sides import their shapes from here. The server runs once per
instance, so this module imports the standard library only (pydantic alone would add
about 7 MB to every instance): ``server.json`` is ``ServerConfig``, a dataclass the
backend writes (``to_json``) and the server reads and checks by hand (``from_json``);
the server writes ``ready.json`` with ``ready_json`` and the backend reads it through the
pydantic ``ReadyInfo`` (``devenv.backends.local.models``, re-exported here on first use).
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devenv import dead_peer

if TYPE_CHECKING:  # re-exported lazily (PEP 562): see __getattr__
    from devenv.backends.local.models import ReadyInfo as ReadyInfo

_MODELS = frozenset({"ReadyInfo"})

SERVER_MODULE = "devenv.backends.local.server"
PRESENCE_SUBSYSTEM = "devenv-activity"
"""The internal key's only door: the presence stream (wire name kept for running instances)."""
ACTIVITY_SUBSYSTEM = PRESENCE_SUBSYSTEM
ENV_MARKER = "DEVENV_ENV"
"""Set in every process of an instance, so terminate can find them all in /proc."""

CONFIG_FILE = "server.json"
READY_FILE = "ready.json"
PID_FILE = "server.pid"
LOG_FILE = "server.log"
HOST_KEY_FILE = "host_ed25519"
LOCK_FILE = "lock"
TERMINATED_FILE = "terminated"
SUSPENDED_FILE = "suspended"
SHARED_KEYS_FILE = "shared_keys"
"""Keys of the colleagues the environment is shared with, one line each (the workflow's)."""
BANNER_FILE = "banner.txt"
"""The login banner the workflow keeps current; printed when a user opens a shell."""
SESSION_ENV_FILE = "session_env.json"
"""The configuration's ``env`` (secrets included), 0600: every session and job gets it."""
INIT_DONE_FILE = "init-done"
"""Written once the ``init`` commands succeeded: a retried provision never runs them again."""


def __getattr__(name: str) -> Any:
    """The pydantic model of ready.json, imported on first use (never by the server)."""
    if name in _MODELS:
        from devenv.backends.local import models

        return getattr(models, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError("a string")
    return value


def _path(value: object) -> Path:
    return Path(_text(value))


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("a number")
    return float(value)


def _optional_number(value: object) -> float | None:
    return None if value is None else _number(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("an integer")
    return value


_READERS: dict[str, Callable[[object], object]] = {
    "str": _text,
    "Path": _path,
    "str | None": _optional_text,
    "float": _number,
    "float | None": _optional_number,
    "int": _integer,
}
"""How each annotation of ``ServerConfig`` is read from JSON."""


def _check_bounds(name: str, value: float, bounds: Mapping[str, float]) -> None:
    # Written so that NaN is out of every bound, as for pydantic.
    if "ge" in bounds and not value >= bounds["ge"]:
        raise ValueError(f"{CONFIG_FILE}: {name} must be >= {bounds['ge']}")
    if "gt" in bounds and not value > bounds["gt"]:
        raise ValueError(f"{CONFIG_FILE}: {name} must be > {bounds['gt']}")


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """``server.json``: everything the instance server needs; public keys only.

    Written by the backend, read by the server with the standard library: unknown keys
    are ignored; a missing required key, a value of the wrong type or out of its bounds
    (``metadata``) is a ValueError naming the key.
    """

    instance_id: str
    workspace: Path
    username: str
    """The only login name accepted (the worker's user, as in InstanceInfo)."""
    user_public_key: str
    """OpenSSH public key line of the user: shell, exec, sftp, scp, forwarding."""
    internal_public_key: str
    """OpenSSH public key line of devenv's control plane: the presence subsystem only."""
    host_key: Path
    owner: str | None = None
    """Who logs in with ``user_public_key`` (``devenv ps NAME -v`` names them)."""
    min_connection_duration: float = field(default=0.0, metadata={"ge": 0})
    busy_cpu_percent: float = field(default=5.0, metadata={"ge": 0})
    """Percent of one core the instance's processes must use to count as busy."""
    gpu_min_percent: float | None = None
    """``utilization_policy``: sample the host's GPUs, report since when all were under
    this percent; None: GPUs not watched."""
    shell: str = "/bin/sh"
    login_timeout: float = field(default=30.0, metadata={"gt": 0})
    keepalive_interval: float = field(default=float(dead_peer.INTERVAL_SECONDS), metadata={"gt": 0})
    keepalive_count_max: int = field(default=dead_peer.asyncssh_count_max(), metadata={"ge": 1})
    env_file: str | None = None
    """``SESSION_ENV_FILE``: variables every session gets (None: none; older servers)."""

    @classmethod
    def from_json(cls, text: str | bytes) -> ServerConfig:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{CONFIG_FILE}: not a JSON object")
        values: dict[str, Any] = {}
        for spec in fields(cls):
            if spec.name not in data:
                if spec.default is MISSING:
                    raise ValueError(f"{CONFIG_FILE}: {spec.name} is missing")
                continue
            try:
                value = _READERS[str(spec.type)](data[spec.name])
            except TypeError as exc:
                raise ValueError(f"{CONFIG_FILE}: {spec.name} is not {exc}") from None
            if isinstance(value, int | float):
                _check_bounds(spec.name, value, spec.metadata)
            values[spec.name] = value
        return cls(**values)

    def to_json(self) -> str:
        """What the backend writes (paths as strings); ``from_json`` reads it back."""
        data = {spec.name: getattr(self, spec.name) for spec in fields(self)}
        return json.dumps(
            {name: str(v) if isinstance(v, Path) else v for name, v in data.items()}, indent=2
        )


def ready_json(pid: int, port: int) -> str:
    """``ready.json`` (``ReadyInfo``): written atomically once the server listens."""
    return json.dumps({"pid": pid, "port": port}, separators=(",", ":"))


def local_username() -> str:
    """The name the instance accepts and the ssh config uses: the worker's user."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return getpass.getuser()


def login_shell() -> str:
    """The user's login shell if usable, else bash, else sh."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = os.environ.get("SHELL", "")
    if shell and os.access(shell, os.X_OK) and not shell.endswith(("nologin", "false")):
        return shell
    return shutil.which("bash") or "/bin/sh"


def write_atomic(path: Path, data: str, mode: int = 0o600) -> None:
    """Write through a temporary file and rename, so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(data)
    os.replace(tmp, path)
