"""What devenv does on a host, as root: inspect, install the agent, create, check, end accounts.

Layout on the host (``HOST_DIR``, default ``/var/lib/devenv``, root-owned)::

    agent/presence_agent-<AGENT_VERSION>.py   0755 folder, 0644 file: run by every account
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

from devenv.agent import keepalive, presence_agent
from devenv.backends.ssh.admin import AdminConnection, AdminError, Endpoint, HostCommandError
from devenv.models.state import workflow_id_for

DEFAULT_HOST_DIR = "/var/lib/devenv"
HOST_DIR_PATTERN = re.compile(r"^(?:/[A-Za-z0-9._-]+)+/?$")
AGENT_SOURCE = Path(presence_agent.__file__)
AGENT_FILE = f"presence_agent-{presence_agent.AGENT_VERSION}.py"
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
def agent_source() -> str:
    """The agent as shipped: this package's own file, read once."""
    return AGENT_SOURCE.read_text()


@functools.cache
def keepalive_source() -> str:
    """devenv-keepalive as shipped: this package's own file, read once."""
    return KEEPALIVE_SOURCE.read_text()


def agent_path(host_dir: str) -> str:
    return f"{host_dir}/agent/{AGENT_FILE}"


def forced_command(python: str, agent: str, account: str, min_duration: int) -> str:
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
    return command + (" --count-recorded-logins" if min_duration <= 0 else "")


USER_RC = r"""# devenv: record this session, so the presence agent counts it however short it is
# (devenv's own key has no-user-rc: its connections never run this file).
d=$HOME/.cache/devenv/logins
{ mkdir -p "$d" && : > "$d/$$"; } 2>/dev/null
# sshd runs this file instead of /etc/ssh/sshrc or xauth: do what they would have done.
if [ -r /etc/ssh/sshrc ]; then
    /bin/sh /etc/ssh/sshrc
elif read proto cookie && [ -n "${DISPLAY:-}" ] && command -v xauth >/dev/null 2>&1; then
    case $DISPLAY in
        localhost:*) echo add "unix:${DISPLAY#localhost:}" "$proto" "$cookie" ;;
        *) echo add "$DISPLAY" "$proto" "$cookie" ;;
    esac | xauth -q -
fi
"""
"""The account's ``~/.ssh/rc``: sshd runs it at the start of every shell and exec session
(not sftp, a subsystem) of the user's and members' keys."""


def authorized_keys(user_key: str, internal_key: str, command: str) -> str:
    """The account's authorized_keys: the user's key, and devenv's internal key restricted
    to the agent (``restrict``: no pty, no forwarding, no agent, no X11, no rc)."""
    return f'{key_line(user_key)}\nrestrict,command="{command}" {key_line(internal_key)}\n'


# --- the scripts ------------------------------------------------------------------------

_PRELUDE = r"""
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C
umask 022
cd /

# Run a command as the account (uid gid name command...): no PAM, no shell of its own.
as_user() {
    u=$1 g=$2 a=$3
    shift 3
    if command -v setpriv >/dev/null 2>&1; then
        setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
    else
        runuser -u "$a" -- "$@"
    fi
}

# The record of an account: "<token> <state>", or empty.
read_record() {
    record=
    if [ -f "$accounts/$account.token" ]; then
        record=$(head -n 1 "$accounts/$account.token")
    fi
    rtoken=${record%% *}
    rstate=${record#* }
}

write_record() {
    (umask 077 && printf '%s %s\n' "$token" "$1" > "$accounts/.$account.token.tmp")
    mv -f "$accounts/.$account.token.tmp" "$accounts/$account.token"
}

lock_account() {
    (umask 077 && : >>"$accounts/$account.lock")
    exec 9>>"$accounts/$account.lock"
    if ! flock -w 60 9; then
        echo "result=busy"
        exit 75
    fi
}
"""

INSPECT = (
    _PRELUDE
    + r"""
host_dir=$1 account=$2
accounts=$host_dir/accounts
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
active=0
if [ -d "$accounts" ]; then
    active=$(cat "$accounts"/*.token 2>/dev/null | grep -c ' active$' || true)
fi
python=$(command -v python3 || true)
python_ok=0
if [ -n "$python" ] && "$python" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
        >/dev/null 2>&1; then
    python_ok=1
fi
missing=
for tool in useradd usermod userdel getent id flock ps awk head mktemp; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if ! command -v setpriv >/dev/null 2>&1 && ! command -v runuser >/dev/null 2>&1; then
    missing="$missing setpriv"
fi
load=0
if [ -r /proc/loadavg ]; then read -r load _ < /proc/loadavg; fi
cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
echo "record=$record"
echo "exists=$exists"
echo "active=$active"
echo "python=$python"
echo "python_ok=$python_ok"
echo "missing=$missing"
echo "load=$load"
echo "cpus=$cpus"
"""
)

INSTALL_AGENT = (
    _PRELUDE
    + r"""
host_dir=$1 name=$2
mkdir -p "$host_dir/agent" "$host_dir/accounts"
chown 0:0 "$host_dir" "$host_dir/agent" "$host_dir/accounts"
chmod 0755 "$host_dir" "$host_dir/agent"
chmod 0700 "$host_dir/accounts"
target=$host_dir/agent/$name
tmp=$(mktemp "$host_dir/agent/.install.XXXXXX")
cat > "$tmp"
chmod 0644 "$tmp"
if [ -f "$target" ] && command -v cmp >/dev/null 2>&1 && cmp -s "$tmp" "$target"; then
    rm -f "$tmp"
    echo "result=present"
else
    mv -f "$tmp" "$target"
    echo "result=installed"
fi
echo "path=$target"
"""
)

INSTALL_KEEPALIVE = (
    _PRELUDE
    + r"""
bin=$1
python=$(command -v python3)
mkdir -p "$(dirname "$bin")"
tmp=$(mktemp "$(dirname "$bin")/.devenv-keepalive.XXXXXX")
{ printf '#!%s\n' "$python"; cat; } > "$tmp"
chown 0:0 "$tmp"
chmod 0755 "$tmp"
if [ -f "$bin" ] && command -v cmp >/dev/null 2>&1 && cmp -s "$tmp" "$bin"; then
    rm -f "$tmp"
else
    mv -f "$tmp" "$bin"
fi
echo "keepalive=$bin"
"""
)

CREATE = (
    _PRELUDE
    + r"""
host_dir=$1 account=$2 token=$3 name=$4 workflow=${5:-} deployment=${6:-} user_rc=${7:-}
accounts=$host_dir/accounts
mkdir -p "$accounts"
chmod 0700 "$accounts"
keys=$(mktemp "$accounts/.keys.XXXXXX")
trap 'rm -f "$keys"' EXIT
cat > "$keys"
lock_account
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
if [ -n "$record" ] && [ "$rtoken" = "$token" ]; then
    if [ "$rstate" != active ]; then echo "result=terminated"; exit 3; fi
elif [ -n "$record" ] && [ "$rstate" = active ]; then
    echo "result=in-use"; exit 4
elif [ -z "$record" ] && [ "$exists" = 1 ]; then
    echo "result=foreign"; exit 5
fi
# Recorded first: a retry finds it; an account without a record is never devenv's.
write_record active
if [ -n "$workflow" ]; then
    (umask 077 && printf '%s %s %s\n' "$workflow" "$name" "$deployment" \
        > "$accounts/.$account.workflow.tmp")
    mv -f "$accounts/.$account.workflow.tmp" "$accounts/$account.workflow"
fi
shell=/bin/sh
if [ -x /bin/bash ]; then shell=/bin/bash; fi
if [ "$exists" = 0 ]; then
    if getent group "$account" >/dev/null 2>&1; then
        useradd -m -s "$shell" -c "devenv $name" -g "$account" "$account"
    else
        useradd -m -s "$shell" -c "devenv $name" "$account"
    fi
fi
# '*': no password, yet not locked (sshd without PAM refuses locked accounts' keys too).
usermod -p '*' -e '' -s "$shell" "$account"
home=$(getent passwd "$account" | cut -d: -f6)
uid=$(id -u "$account")
gid=$(id -g "$account")
if [ -z "$home" ] || [ "$home" = / ]; then echo "result=no-home"; exit 6; fi
if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$uid:$gid" "$home"
fi
chmod 0700 "$home"
if [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then chown -h "$uid:$gid" "$home/.ssh"; fi
as_user "$uid" "$gid" "$account" sh -c '
    set -eu
    umask 077
    d=$1/.ssh
    if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then rm -f "$d"; fi
    mkdir -p "$d"
    chmod 0700 "$d"
    cat > "$d/.authorized_keys.devenv"
    chmod 0600 "$d/.authorized_keys.devenv"
    mv -f "$d/.authorized_keys.devenv" "$d/authorized_keys"
' devenv "$home" < "$keys"
# The login banner (written by devenv whenever the rules change), shown by login shells.
banner=$host_dir/banners/$account
show="[ -r $banner ] && [ -z \"\${DEVENV_BANNER_SHOWN:-}\" ] && cat $banner"
line="$show; DEVENV_BANNER_SHOWN=1 # devenv"
as_user "$uid" "$gid" "$account" sh -c '
    set -eu
    line=$2
    for f in "$1/.profile" "$1/.bash_profile" "$1/.bash_login"; do
        if [ "$f" != "$1/.profile" ] && [ ! -f "$f" ]; then continue; fi
        if [ -L "$f" ]; then continue; fi
        if [ -f "$f" ] && grep -qF "# devenv" "$f"; then continue; fi
        printf "%s\n" "$line" >> "$f"
    done
' devenv "$home" "$line"
# ~/.ssh/rc records each session for the agent; a user's own rc is left alone.
if [ -n "$user_rc" ]; then
    as_user "$uid" "$gid" "$account" sh -c '
        set -eu
        f=$1/.ssh/rc
        if [ -L "$f" ] || { [ -e "$f" ] && ! grep -qF "# devenv: record" "$f"; }; then exit 0; fi
        printf "%s" "$2" > "$f.devenv"
        mv -f "$f.devenv" "$f"
    ' devenv "$home" "$user_rc"
fi
echo "home=$home"
echo "uid=$uid"
echo "result=ok"
"""
)

TERMINATE = (
    _PRELUDE
    + r"""
host_dir=$1 account=$2 token=$3 purge=$4
accounts=$host_dir/accounts
if [ ! -d "$accounts" ]; then echo "result=absent"; exit 0; fi
lock_account
read_record
if [ -z "$record" ] || [ "$rtoken" != "$token" ]; then echo "result=not-ours"; exit 0; fi
# Marked first: from now on no provision of this token brings the account back.
write_record ended
if ! id -u "$account" >/dev/null 2>&1; then echo "result=absent"; exit 0; fi
uid=$(id -u "$account")
gid=$(id -g "$account")
home=$(getent passwd "$account" | cut -d: -f6)
if ! ps -p 1 -o ruid= >/dev/null 2>&1; then echo "result=no-ps"; exit 8; fi
nologin=/usr/sbin/nologin
if [ ! -x "$nologin" ]; then nologin=/sbin/nologin; fi
if [ ! -x "$nologin" ]; then nologin=/bin/false; fi
# No new login: locked password, expired account, a shell that refuses.
usermod -L -e 1970-01-02 -s "$nologin" "$account"
if command -v crontab >/dev/null 2>&1; then crontab -r -u "$account" >/dev/null 2>&1 || true; fi
if [ -e "/var/lib/systemd/linger/$account" ] && command -v loginctl >/dev/null 2>&1; then
    loginctl disable-linger "$account" >/dev/null 2>&1 || true
fi
# Every process of the uid, however started (setsid, nohup, env -i, double forks):
# kill(-1) as the account reaches them all in one call; repeat until none is left.
survivors() {
    ps -e -o pid=,ruid=,euid=,stat= \
        | awk -v u="$uid" '($2 == u || $3 == u) && $4 !~ /^Z/ { print $1 }'
}
rounds=0
while :; do
    pids=$(survivors)
    if [ -z "$pids" ]; then break; fi
    rounds=$((rounds + 1))
    if [ "$rounds" -gt 200 ]; then
        echo "result=survivors"
        echo "pids=$(echo $pids)"
        exit 7
    fi
    as_user "$uid" "$gid" "$account" kill -9 -1 >/dev/null 2>&1 || true
    kill -9 $pids >/dev/null 2>&1 || true
    sleep 0.1 2>/dev/null || sleep 1
done
# Nothing of the account runs now, so nothing can swap ~/.ssh under us.
if [ -n "$home" ] && [ -d "$home/.ssh" ] && [ ! -L "$home/.ssh" ]; then
    rm -rf -- "$home/.ssh/authorized_keys" "$home/.ssh/authorized_keys2"
fi
if [ "$purge" = 1 ]; then
    userdel -r "$account" >/dev/null 2>&1 || userdel "$account"
    if [ -n "$home" ] && [ "$home" != / ] && [ -d "$home" ] && [ ! -L "$home" ] \
            && [ "$(stat -c %u "$home")" = "$uid" ]; then
        rm -rf -- "$home"
    fi
    echo "result=purged"
else
    echo "result=terminated"
fi
"""
)

STATUS = (
    _PRELUDE
    + r"""
host_dir=$1 account=$2
accounts=$host_dir/accounts
read_record
if id -u "$account" >/dev/null 2>&1; then exists=1; else exists=0; fi
echo "record=$record"
echo "exists=$exists"
"""
)

LIST = (
    _PRELUDE
    + r"""
host_dir=$1
accounts=$host_dir/accounts
if [ ! -d "$accounts" ]; then echo "result=none"; exit 0; fi
for file in "$accounts"/*.token; do
    [ -f "$file" ] || continue
    account=${file##*/}
    account=${account%.token}
    record=$(head -n 1 "$file" | tr '\t' ' ')
    workflow=
    if [ -f "$accounts/$account.workflow" ]; then
        workflow=$(head -n 1 "$accounts/$account.workflow" | tr '\t' ' ')
    fi
    exists=0 gecos=
    if id -u "$account" >/dev/null 2>&1; then
        exists=1
        gecos=$(getent passwd "$account" | cut -d: -f5 | tr '\t' ' ')
    fi
    printf 'account\t%s\t%s\t%s\t%s\t%s\n' "$account" "$record" "$exists" "$workflow" "$gecos"
done
echo "result=ok"
"""
)


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
    """The agent at ``HOST_DIR/agent/presence_agent-V.py`` (rewritten if it differs)."""
    result = await admin.run(INSTALL_AGENT, host_dir, AGENT_FILE, stdin=agent_source())
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

    def alive(self, token: str) -> bool:
        return self.exists and self.record_token == token and self.record_state == "active"


async def account_status(admin: AdminConnection, host_dir: str, account: str) -> AccountStatus:
    result = await admin.run(STATUS, host_dir, account)
    if result.status != 0:
        raise HostCommandError(f"{admin.endpoint}: reading {account} failed: {result.describe()}")
    fields = result.fields()
    token, state = _record(fields.get("record", ""))
    return AccountStatus(token, state, fields.get("exists") == "1")


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
