"""The on-machine failsafe, set up over the admin login: its policy, its start and its stop.

Layout on the host (in ``HOST_DIR``, root-owned)::

    failsafe/                   0700: root only
    failsafe/<account>.json     0600 the policy (FailsafePolicy), rewritten atomically
    failsafe/<account>.action   0600 the action, read by the failsafe when it starts
    failsafe/<account>.pid      the failsafe's pid
    failsafe/<account>.log      its stderr (without systemd; with it: the journal)
    failsafe/<account>.lock     flock: a start and a stop never interleave

The failsafe is the presence agent's ``failsafe`` command, run as root: with
``systemd-run`` (unit ``devenv-failsafe-<account>``) where systemd runs, else detached
with ``setsid``. The action (an operator's shell command, ``shutdown -h now`` on EC2)
travels as a positional argument into a root-only file, never through a script's text
nor through systemd's command-line expansion.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC

from devenv.backends.ssh.admin import AdminConnection, HostCommandError
from devenv.backends.ssh.host_scripts import host_script
from devenv.backends.ssh.host_setup import check_host_dir
from devenv.models.messages import FailsafePolicy

ACCOUNT_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
"""An account name useradd accepts (devenv's are ``dv-<name>``)."""
UNIT_PREFIX = "devenv-failsafe-"
MAX_ACTION = 4096
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]+$")
START_TIMEOUT = 30.0

_FAILSAFE = ("prelude.sh", "failsafe_prelude.sh")
"""What the failsafe scripts share: the failsafe's folder, lock and pid of an account."""
WRITE_POLICY = host_script("failsafe_write_policy.sh", preludes=_FAILSAFE)
START = host_script("failsafe_start.sh", preludes=_FAILSAFE)
STOP = host_script("failsafe_stop.sh", preludes=_FAILSAFE)


def check_account(account: str) -> str:
    if not ACCOUNT_PATTERN.fullmatch(account):
        raise ValueError(f"{account!r} is not an account name")
    return account


def _check_path(path: str, what: str) -> str:
    if not _SAFE_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise ValueError(f"{what} {path!r}: accepted: an absolute path of letters, digits, '._-/+'")
    return path


def check_action(action: str) -> str:
    if not action.strip() or "\x00" in action or len(action) > MAX_ACTION:
        raise ValueError(
            f"the failsafe action must be a non-empty shell command of at most {MAX_ACTION} "
            "characters without NUL"
        )
    return action


def check_interval(interval: float) -> float:
    if not math.isfinite(interval) or not 0 < interval <= 3600:
        raise ValueError(f"failsafe interval {interval!r}: accepted: seconds in (0, 3600]")
    return float(interval)


def policy_json(policy: FailsafePolicy) -> str:
    """The policy file: ``started_at`` in UTC with its offset (a naive time is taken as UTC)."""
    started = policy.started_at
    started = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
    return (
        json.dumps(
            {
                "inactivity_seconds": policy.inactivity_seconds,
                "max_duration_seconds": policy.max_duration_seconds,
                "started_at": started.isoformat(),
                "failsafe_after_seconds": policy.failsafe_after_seconds,
                "on_idle": policy.on_idle,
            }
        )
        + "\n"
    )


def policy_path(host_dir: str, account: str) -> str:
    return f"{check_host_dir(host_dir)}/failsafe/{check_account(account)}.json"


def pid_path(host_dir: str, account: str) -> str:
    return f"{check_host_dir(host_dir)}/failsafe/{check_account(account)}.pid"


async def write_policy(
    admin: AdminConnection, host_dir: str, account: str, policy: FailsafePolicy
) -> None:
    """Write ``HOST_DIR/failsafe/ACCOUNT.json`` atomically (0600 in a 0700 root folder)."""
    host_dir = check_host_dir(host_dir)
    check_account(account)
    result = await admin.run(WRITE_POLICY, host_dir, account, stdin=policy_json(policy))
    if result.status != 0 or result.fields().get("result") != "ok":
        raise HostCommandError(
            f"{admin.endpoint}: writing the failsafe policy of {account} failed: "
            f"{result.describe()}"
        )


async def start_failsafe(
    admin: AdminConnection,
    host_dir: str,
    python: str,
    agent_path: str,
    account: str,
    action: str,
    interval: float = 5.0,
) -> None:
    """Start ``account``'s failsafe as root unless its pidfile names a live one."""
    host_dir = check_host_dir(host_dir)
    check_account(account)
    _check_path(python, "python")
    _check_path(agent_path, "agent")
    check_action(action)
    result = await admin.run(
        START,
        host_dir,
        account,
        python,
        agent_path,
        action,
        repr(check_interval(interval)),
        timeout=START_TIMEOUT,
    )
    fields = result.fields()
    if result.status == 0 and fields.get("result") in ("started", "running"):
        return
    detail = fields.get("log") or result.describe()
    raise HostCommandError(
        f"{admin.endpoint}: starting the failsafe of {account} failed "
        f"({fields.get('result') or 'error'}): {detail}"
    )


async def stop_failsafe(admin: AdminConnection, host_dir: str, account: str) -> None:
    """Stop ``account``'s failsafe if it runs (its policy stays); nothing if it does not."""
    host_dir = check_host_dir(host_dir)
    check_account(account)
    result = await admin.run(STOP, host_dir, account, timeout=START_TIMEOUT)
    if result.status != 0:
        raise HostCommandError(
            f"{admin.endpoint}: stopping the failsafe of {account} failed: {result.describe()}"
        )
