"""What devenv does on a host, as root: inspect, install the agent, create, check, end accounts.

Layout on the host (``HOST_DIR``, default ``/var/lib/devenv``, root-owned)::

    agent/presence_agent-<AGENT_VERSION>.py   0755 folder, 0644 file: run by every account (a
                                              zipapp of devenv.agent.presence)
    /usr/local/bin/devenv-keepalive           0755, root-owned: jobs (``devenv run``), on
                                              every account's PATH; self-contained (the
                                              keepalive with a python3 shebang), so it
                                              never points into a host folder
    accounts/                                 0700: root only
    accounts/<account>.token                  "<instance token> active|ended"
    accounts/<account>.workflow               "<workflow id> <name> <deployment>" (devenv gc)
    accounts/<account>.lock                   flock: create and terminate never interleave

The token record is written before the account exists and marked ``ended`` before
anything is taken away, so a retried provision finds its own account (and never a
second), a provision racing a terminate never brings the account back, and an
account nobody recorded (the admin's own ``dv-x``) is never touched.

The ``.workflow`` file sits beside the record rather than in it, so that the record
stays the two fields every devenv version reads. ``<deployment>`` names the devenv
deployment that created the account (a digest of its internal key, which every worker
of a deployment shares), so that ``devenv gc`` of one deployment never takes another's
accounts on a shared host for orphans. Accounts created before the file existed are
named by their GECOS field (``devenv <name>``), their deployment unknown.

The shell run on the host is ``scripts/*.sh`` (``host_scripts``), sent with ``sh -c``.

Files in an account's home are written as that account (``setpriv``), never as
root: the user owns ``~/.ssh`` and could point it anywhere with a symlink.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncssh

from devenv.agent import keepalive
from devenv.backends.ssh.admin import AdminConnection, AdminError, Endpoint, HostCommandError
from devenv.backends.ssh.agent_bundle import AGENT_FILE, agent_zipapp
from devenv.backends.ssh.host_scripts import host_script, shipped_file
from devenv.models.state import workflow_id_for

DEFAULT_HOST_DIR = "/var/lib/devenv"
HOST_DIR_PATTERN = re.compile(r"^(?:/[A-Za-z0-9._-]+)+/?$")
KEEPALIVE_SOURCE = Path(keepalive.__file__)
KEEPALIVE_BIN = "/usr/local/bin/devenv-keepalive"
ACCOUNT_PREFIX = "dv-"
MAX_ACCOUNT = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_ENV_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]+$")
_KEY_TYPE = re.compile(r"^[A-Za-z0-9@._-]+$")
_DEPLOYMENT = re.compile(r"^[0-9a-f]{16}$")
TERMINATE_TIMEOUT = 90.0
"""The kill loop gives up after about 20 s; the command after this."""


class AccountConflictError(AdminError):
    """The account name is taken on this host (another environment, or not devenv's)."""


class InstanceTerminatedError(AdminError):
    """This token's account was terminated: it is never brought back."""


class HostNotSupportedError(AdminError):
    """The host lacks something devenv needs (python3 for the agent, util-linux tools)."""


def account_name(env_name: str) -> str:
    """``dv-<name>``, at most 32 characters (a long name keeps a hash of itself)."""
    if not _ENV_NAME.fullmatch(env_name):
        raise ValueError(f"{env_name!r} is not an environment name")
    name = ACCOUNT_PREFIX + env_name
    if len(name) <= MAX_ACCOUNT:
        return name
    digest = hashlib.sha256(env_name.encode()).hexdigest()[:8]
    return f"{ACCOUNT_PREFIX}{env_name[: MAX_ACCOUNT - len(ACCOUNT_PREFIX) - 9]}-{digest}"


def check_token(token: str) -> str:
    if not TOKEN_PATTERN.fullmatch(token):
        raise ValueError(f"{token!r} is not an instance token")
    return token


def check_host_dir(path: str) -> str:
    """An absolute path of plain characters: it is quoted into authorized_keys."""
    if not HOST_DIR_PATTERN.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise ValueError(f"{path!r}: accepted: an absolute path of letters, digits, '._-/'")
    return path.rstrip("/") or "/"


def key_line(text: str) -> str:
    """``type base64`` of an OpenSSH public key line, its comment dropped.

    What lands in authorized_keys is rebuilt from the parsed key, so no option,
    newline or second key can ride along in a comment.
    """
    if any(char in text.strip() for char in "\r\n\x00"):
        raise ValueError("not one OpenSSH public key line")
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise ValueError("not an OpenSSH public key line") from None
    fields = key.export_public_key("openssh").decode().split()
    if len(fields) < 2 or not _KEY_TYPE.fullmatch(fields[0]):
        raise ValueError("not an OpenSSH public key line")
    return f"{fields[0]} {fields[1]}"


@functools.cache
def keepalive_source() -> str:
    """devenv-keepalive as shipped: this package's own file, read once."""
    return KEEPALIVE_SOURCE.read_text()


def agent_path(host_dir: str) -> str:
    return f"{host_dir}/agent/{AGENT_FILE}"


def forced_command(
    python: str,
    agent: str,
    account: str,
    min_duration: int,
    busy_cpu: float = 5.0,
    gpu_min: int | None = None,
) -> str:
    """The only thing devenv's internal key may run: the presence agent, for this account."""
    for path in (python, agent):
        if not _SAFE_PATH.fullmatch(path):
            raise ValueError(f"{path!r} cannot be quoted into authorized_keys")
    # At least 1 s by the process table: a connection of devenv's own key is a moment
    # between sshd's fork and the agent's exec; with 0, the sessions ~/.ssh/rc records
    # (never devenv's: its key has no-user-rc) count however short they are.
    command = (
        f"{python} {agent} stream --user {account} "
        f"--min-connection-duration {max(int(min_duration), 1)}"
    )
    if busy_cpu != 5.0:  # the agent's default (connected_idle_cpu)
        command += f" --busy-cpu {float(busy_cpu):g}"
    if gpu_min is not None:  # utilization_policy: the agent samples every GPU
        command += f" --gpu-min {int(gpu_min)}"
    return command + (" --count-recorded-logins" if min_duration <= 0 else "")


USER_RC = shipped_file("user_rc.sh")
"""The account's ``~/.ssh/rc``: sshd runs it at the start of every shell and exec session
(not sftp, a subsystem) of the user's and members' keys."""


def authorized_keys(user_key: str, internal_key: str, command: str) -> str:
    """The account's authorized_keys: the user's key, and devenv's internal key restricted
    to the agent (``restrict``: no pty, no forwarding, no agent, no X11, no rc)."""
    return f'{key_line(user_key)}\nrestrict,command="{command}" {key_line(internal_key)}\n'


# --- the scripts ------------------------------------------------------------------------

# Each is ``scripts/prelude.sh`` and its own file, run by ``sh -c`` with its arguments.
INSPECT = host_script("inspect.sh")
INSTALL_AGENT = host_script("install_agent.sh")
INSTALL_KEEPALIVE = host_script("install_keepalive.sh")
CREATE = host_script("create.sh")
ACCOUNT_PRELUDES = ("prelude.sh", "end_processes.sh")
"""The preludes of scripts that end an account's processes (terminate, suspend)."""
TERMINATE = host_script("terminate.sh", preludes=ACCOUNT_PRELUDES)
STATUS = host_script("status.sh")
LIST = host_script("list.sh")


# --- the steps ------------------------------------------------------------------------


@dataclass(frozen=True)
class HostReport:
    """What a host says about itself and about one account name (``INSPECT``)."""

    record_token: str | None
    record_state: str | None
    account_exists: bool
    active: int
    python: str | None
    missing: tuple[str, ...]
    load: float
    cpus: int
    nvidia_smi: bool = False
    """nvidia-smi is on the host's PATH: its GPUs can be sampled (``utilization_policy``)."""

    @classmethod
    def parse(cls, fields: dict[str, str]) -> HostReport:
        token, state = _record(fields.get("record", ""))
        python = fields.get("python") or None
        return cls(
            record_token=token,
            record_state=state,
            account_exists=fields.get("exists") == "1",
            active=_int(fields.get("active"), 0),
            python=python if fields.get("python_ok") == "1" else None,
            missing=tuple(fields.get("missing", "").split()),
            load=_float(fields.get("load")),
            cpus=max(1, _int(fields.get("cpus"), 1)),
            nvidia_smi=fields.get("nvidia_smi") == "1",
        )

    def problem(self, where: Endpoint, account: str, name: str, token: str) -> AdminError | None:
        """Why this host cannot take ``token``'s environment ``name`` (account ``account``)."""
        if self.python is None:
            return HostNotSupportedError(
                f"ssh_config.hosts: {where} has no python3 (3.8 or later), which devenv's "
                "presence agent needs; install it (apt-get install python3-minimal)"
            )
        if self.missing:
            return HostNotSupportedError(
                f"ssh_config.hosts: {where} lacks {', '.join(self.missing)}; install them "
                "(passwd, util-linux, procps)"
            )
        if self.record_token == token:
            return None
        if self.record_state == "active":
            return AccountConflictError(
                f"name: {where} already runs an environment named {name!r} (account {account}) "
                "for another devenv; choose another name, or if that one is gone for good "
                f"remove the account there (userdel -r {account}) and its record "
                f"(accounts/{account}.token in devenv's host folder)"
            )
        if self.record_token is None and self.account_exists:
            return AccountConflictError(
                f"name: {where} already has an account {account} that devenv did not create; "
                "choose another environment name"
            )
        return None


async def inspect(admin: AdminConnection, host_dir: str, account: str) -> HostReport:
    result = await admin.run(INSPECT, host_dir, account)
    if result.status != 0:
        raise HostCommandError(f"{admin.endpoint}: inspecting the host failed: {result.describe()}")
    return HostReport.parse(result.fields())


async def install_agent(admin: AdminConnection, host_dir: str) -> str:
    """The agent at ``HOST_DIR/agent/presence_agent-V.py``, one zipapp (``agent_bundle``),
    rewritten if it differs."""
    result = await admin.run(INSTALL_AGENT, host_dir, AGENT_FILE, stdin=agent_zipapp())
    if result.status != 0:
        raise HostCommandError(
            f"{admin.endpoint}: installing the presence agent in {host_dir} failed: "
            f"{result.describe()}"
        )
    # devenv-keepalive (jobs: `devenv run`), on every account's PATH.
    done = await admin.run(INSTALL_KEEPALIVE, KEEPALIVE_BIN, stdin=keepalive_source())
    if done.status != 0:
        raise HostCommandError(
            f"{admin.endpoint}: installing {KEEPALIVE_BIN} failed: {done.describe()}"
        )
    return result.fields().get("path") or agent_path(host_dir)


@dataclass(frozen=True)
class AccountInfo:
    home: str
    uid: int


async def create_account(
    admin: AdminConnection,
    host_dir: str,
    account: str,
    token: str,
    name: str,
    keys: str,
    *,
    workflow_id: str | None = None,
) -> AccountInfo:
    """The account of ``token`` with ``keys`` as its authorized_keys (created if missing).

    Records the environment's workflow id (default: that of ``name``) beside the token,
    so that ``devenv gc`` can tell whose account it is.
    """
    workflow = workflow_id or workflow_id_for(name)
    owner = deployment_of_keys(keys)
    result = await admin.run(
        CREATE, host_dir, account, token, name, workflow, owner, USER_RC, stdin=keys
    )
    fields = result.fields()
    where = admin.endpoint
    if result.status == 0 and fields.get("result") == "ok":
        return AccountInfo(home=fields["home"], uid=_int(fields.get("uid"), -1))
    if result.status == 3:
        raise InstanceTerminatedError(
            f"instance {token} ({account} on {where}) was terminated; it is not started again"
        )
    if result.status == 4:
        raise AccountConflictError(
            f"name: {where} already runs an environment named {name!r} (account {account}) "
            "for another devenv; choose another name"
        )
    if result.status == 5:
        raise AccountConflictError(
            f"name: {where} already has an account {account} that devenv did not create; "
            "choose another environment name"
        )
    raise HostCommandError(f"{where}: creating account {account} failed: {result.describe()}")


async def terminate_account(
    admin: AdminConnection, host_dir: str, account: str, token: str, purge: bool
) -> str:
    """End ``token``'s account (see ``TERMINATE``); returns what was found and done."""
    result = await admin.run(
        TERMINATE, host_dir, account, token, "1" if purge else "0", timeout=TERMINATE_TIMEOUT
    )
    outcome = result.fields().get("result", "")
    if result.status == 0 and outcome:
        return outcome
    if outcome == "survivors":
        raise HostCommandError(
            f"{admin.endpoint}: processes of {account} survive SIGKILL "
            f"({result.fields().get('pids', '')}); retrying"
        )
    raise HostCommandError(
        f"{admin.endpoint}: terminating account {account} failed: {result.describe()}"
    )


@dataclass(frozen=True)
class AccountStatus:
    record_token: str | None
    record_state: str | None
    exists: bool
    suspended: bool = False
    """Suspended (``suspension``): locked, nothing running, the home kept."""

    def alive(self, token: str) -> bool:
        return self.exists and self.record_token == token and self.record_state == "active"


async def account_status(admin: AdminConnection, host_dir: str, account: str) -> AccountStatus:
    result = await admin.run(STATUS, host_dir, account)
    if result.status != 0:
        raise HostCommandError(f"{admin.endpoint}: reading {account} failed: {result.describe()}")
    fields = result.fields()
    token, state = _record(fields.get("record", ""))
    return AccountStatus(token, state, fields.get("exists") == "1", fields.get("suspended") == "1")


@dataclass(frozen=True)
class AccountRecord:
    """One account devenv recorded on a host (``LIST``), and whose environment it is."""

    account: str
    token: str
    state: str
    exists: bool
    workflow_id: str | None
    name: str | None
    deployment: str | None
    """Who created it (``deployment_of``); None: recorded before devenv said so."""


async def list_accounts(admin: AdminConnection, host_dir: str) -> list[AccountRecord]:
    """Every account recorded in ``host_dir``, active or ended; odd lines are skipped.

    The environment is the one the ``.workflow`` file names, else (accounts created
    before it existed) the one in the account's GECOS field, if its name makes this
    account; else unknown.
    """
    result = await admin.run(LIST, host_dir)
    if result.status != 0:
        raise HostCommandError(
            f"{admin.endpoint}: listing devenv's accounts failed: {result.describe()}"
        )
    found = []
    for line in result.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) != 6 or parts[0] != "account":
            continue
        _, account, record, exists, workflow, gecos = parts
        token, state = _record(record)
        if token is None or state is None or not TOKEN_PATTERN.fullmatch(token):
            continue
        workflow_id, name, deployment = _owner(account, workflow, gecos)
        found.append(
            AccountRecord(account, token, state, exists == "1", workflow_id, name, deployment)
        )
    return found


def _owner(account: str, workflow: str, gecos: str) -> tuple[str | None, str | None, str | None]:
    """(workflow id, environment name, deployment) of ``account``, from its ``.workflow``
    file, else (no deployment known) from its GECOS field."""
    words = workflow.split()
    if (
        len(words) == 3
        and TOKEN_PATTERN.fullmatch(words[0])
        and _names_account(words[1], account)
        and _DEPLOYMENT.fullmatch(words[2])
    ):
        return words[0], words[1], words[2]
    words = gecos.split()
    if len(words) == 2 and words[0] == "devenv" and _names_account(words[1], account):
        return workflow_id_for(words[1]), words[1], None
    return None, None, None


def deployment_of(internal_key: str) -> str:
    """The deployment an internal public key stands for: a short digest of ``type base64``."""
    return hashlib.sha256(key_line(internal_key).encode()).hexdigest()[:16]


def deployment_of_keys(keys: str) -> str:
    """The deployment of an ``authorized_keys`` text (``authorized_keys``): its internal key's."""
    for line in keys.splitlines():
        if line.startswith("restrict,command="):
            return deployment_of(" ".join(line.split()[-2:]))
    return ""


def _names_account(name: str, account: str) -> bool:
    try:
        return account_name(name) == account
    except ValueError:
        return False


def _record(text: str) -> tuple[str | None, str | None]:
    parts = text.split()
    if len(parts) != 2:
        return None, None
    return parts[0], parts[1]


def _int(text: str | None, default: int) -> int:
    try:
        return int(text or "")
    except ValueError:
        return default


def _float(text: str | None) -> float:
    try:
        return float(text or "")
    except ValueError:
        return 0.0
