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
from devenv.backends.ssh.host_setup import _PRELUDE, check_host_dir
from devenv.models.messages import FailsafePolicy

ACCOUNT_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
"""An account name useradd accepts (devenv's are ``dv-<name>``)."""
UNIT_PREFIX = "devenv-failsafe-"
MAX_ACTION = 4096
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]+$")
START_TIMEOUT = 30.0

_FAILSAFE_PRELUDE = (
    _PRELUDE
    + r"""
# The failsafe's folder: root only, never through a symlink.
failsafe_dir() {
    dir=$host_dir/failsafe
    if [ -L "$host_dir" ] || [ -L "$dir" ]; then echo "result=symlink"; exit 9; fi
    mkdir -p "$dir"
    chown 0:0 "$dir"
    chmod 0700 "$dir"
    policy=$dir/$account.json
    pidfile=$dir/$account.pid
    unit=devenv-failsafe-$account
}

lock_failsafe() {
    (umask 077 && : >>"$dir/$account.lock")
    exec 9>>"$dir/$account.lock"
    if ! flock -w 30 9; then echo "result=busy"; exit 75; fi
}

# Whether pid $1 is this account's failsafe (its argv: failsafe --user ACCOUNT --policy FILE).
is_failsafe() {
    case $1 in ''|*[!0-9]*) return 1 ;; esac
    [ -r "/proc/$1/cmdline" ] || return 1
    tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | awk -v a="$account" -v p="$policy" '
        prev == "--user" && $0 == a { u = 1 }
        prev == "--policy" && $0 == p { f = 1 }
        $0 == "failsafe" { c = 1 }
        { prev = $0 }
        END { exit !(u && f && c) }'
}

recorded_pid() {
    pid=
    if [ -f "$pidfile" ]; then pid=$(head -n 1 "$pidfile" 2>/dev/null || true); fi
}

use_systemd() {
    command -v systemd-run >/dev/null 2>&1 && command -v systemctl >/dev/null 2>&1 || return 1
    case $(systemctl is-system-running 2>/dev/null || true) in
        running|degraded|starting|initializing) return 0 ;;
    esac
    return 1
}
"""
)

WRITE_POLICY = (
    _FAILSAFE_PRELUDE
    + r"""
host_dir=$1 account=$2
failsafe_dir
tmp=$(mktemp "$dir/.policy.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$policy"
trap - EXIT
echo "path=$policy"
echo "result=ok"
"""
)

START = (
    _FAILSAFE_PRELUDE
    + r"""
host_dir=$1 account=$2 python=$3 agent=$4 action=$5 interval=$6
failsafe_dir
lock_failsafe
log=$dir/$account.log
recorded_pid
if is_failsafe "$pid"; then echo "pid=$pid"; echo "result=running"; exit 0; fi
if [ ! -f "$agent" ]; then echo "result=no-agent"; exit 10; fi
actionfile=$dir/$account.action
tmp=$(mktemp "$dir/.action.XXXXXX")
printf '%s' "$action" > "$tmp"
chmod 0600 "$tmp"
mv -f "$tmp" "$actionfile"
set -- "$python" "$agent" failsafe --user "$account" --policy "$policy" \
    --action-file "$actionfile" --interval "$interval"
pid=
if use_systemd; then
    # A unit left from an earlier failsafe whose pid was lost: replace it.
    systemctl stop "$unit" >/dev/null 2>&1 || true
    systemctl reset-failed "$unit" >/dev/null 2>&1 || true
    systemd-run --unit "$unit" --collect --quiet --property=Restart=on-failure \
        --description "devenv failsafe of $account" "$@" 9>&-
    how=systemd
    tries=0
    while [ "$tries" -lt 100 ]; do
        pid=$(systemctl show -p MainPID "$unit" 2>/dev/null | sed -n 's/^MainPID=//p')
        if is_failsafe "$pid"; then break; fi
        pid=
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
else
    # No job control in sh -c: the child is no group leader, so setsid execs in place
    # and $! is the failsafe itself.
    (umask 077 && : >>"$log")
    setsid "$@" </dev/null >>"$log" 2>&1 9>&- &
    pid=$!
    how=setsid
    tries=0
    while [ "$tries" -lt 100 ] && ! is_failsafe "$pid"; do
        if ! kill -0 "$pid" 2>/dev/null; then break; fi
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
fi
if ! is_failsafe "$pid"; then
    echo "result=failed"
    if [ -f "$log" ]; then echo "log=$(tail -n 3 "$log" | tr '\n' ' ')"; fi
    exit 11
fi
printf '%s\n' "$pid" > "$pidfile.tmp"
mv -f "$pidfile.tmp" "$pidfile"
echo "pid=$pid"
echo "how=$how"
echo "result=started"
"""
)

STOP = (
    _FAILSAFE_PRELUDE
    + r"""
host_dir=$1 account=$2
if [ ! -d "$host_dir/failsafe" ]; then echo "result=absent"; exit 0; fi
failsafe_dir
lock_failsafe
stopped=0
if use_systemd && systemctl is-active --quiet "$unit" 2>/dev/null; then
    systemctl stop "$unit" >/dev/null 2>&1 || true
    stopped=1
fi
# The recorded pid and any other failsafe of this account and policy (a lost pidfile).
recorded_pid
pids=
if is_failsafe "$pid"; then pids=$pid; fi
for other in $(ps -e -o pid=,args= | awk -v a=" --user $account " \
        'index($0, " failsafe ") && index($0 " ", a) { print $1 }'); do
    if [ "$other" != "$pid" ] && is_failsafe "$other"; then pids="$pids $other"; fi
done
if [ -n "$pids" ]; then
    stopped=1
    kill -TERM $pids 2>/dev/null || true
    tries=0
    while [ "$tries" -lt 50 ]; do
        left=
        for one in $pids; do if is_failsafe "$one"; then left="$left $one"; fi; done
        if [ -z "$left" ]; then break; fi
        tries=$((tries + 1))
        sleep 0.1 2>/dev/null || sleep 1
    done
    for one in $pids; do if is_failsafe "$one"; then kill -KILL "$one" 2>/dev/null || true; fi; done
fi
rm -f "$pidfile"
if [ "$stopped" = 1 ]; then echo "result=stopped"; else echo "result=absent"; fi
"""
)


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
