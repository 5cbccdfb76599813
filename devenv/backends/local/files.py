"""What the local backend and its instance server share: file names and their contents.

The backend (in the worker) and the server (a detached process) only talk through
these files, so both sides import their shapes from here.
"""

from __future__ import annotations

import getpass
import os
import pwd
import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from devenv import keepalive

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
SHARED_KEYS_FILE = "shared_keys"
"""Keys of the colleagues the environment is shared with, one line each (the workflow's)."""
BANNER_FILE = "banner.txt"
"""The login banner the workflow keeps current; printed when a user opens a shell."""


class ServerConfig(BaseModel):
    """``server.json``: everything the instance server needs; public keys only."""

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
    min_connection_duration: float = Field(default=0.0, ge=0)
    shell: str = "/bin/sh"
    login_timeout: float = Field(default=30.0, gt=0)
    keepalive_interval: float = Field(default=keepalive.INTERVAL_SECONDS, gt=0)
    keepalive_count_max: int = Field(default=keepalive.asyncssh_count_max(), ge=1)


class ReadyInfo(BaseModel):
    """``ready.json``: written atomically once the server listens."""

    pid: int
    port: int


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
