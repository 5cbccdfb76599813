"""A real OpenSSH sshd on a loopback port, and throwaway Unix accounts to log in to.

Used by the presence agent's tests and by the ssh backend's: Debian's
``/usr/sbin/sshd`` runs with a config of its own (its own host key, port, pid file
and authorized-keys folder), so nothing of the host's sshd setup is read or changed.
Root's admin key is authorized through ``ROOT/authorized_keys/root``, never through
``/root/.ssh``. Accounts are named ``dvt`` + random hex so they never collide with
real ones. Everything is removed at teardown, even when a test fails: use the
context managers :func:`running_sshd` and :func:`unix_account`.

Must run as root (sshd, useradd). Only 127.0.0.1 is ever listened on or connected to.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
SFTP_SERVERS = (Path("/usr/lib/openssh/sftp-server"), Path("/usr/libexec/openssh/sftp-server"))
HOST = "127.0.0.1"
ACCOUNT_PREFIX = "dvt"
T = TypeVar("T")

# sshd refuses (StrictModes) an authorized-keys file outside the user's home if any
# folder above it is group/world writable, so /tmp (1777) cannot hold root's keys.
_BASE_CANDIDATES = ("/run", "/var/lib", "/srv", "/opt")


class HarnessError(RuntimeError):
    """The harness could not set something up; the message says what is missing."""


def wait_until(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    give_up = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def check_prerequisites() -> None:
    """Raise :class:`HarnessError` naming what is missing (callers fail, never skip)."""
    if not SSHD.exists():
        raise HarnessError(f"{SSHD} is missing: install Debian's openssh-server")
    for tool in ("ssh", "ssh-keygen", "useradd", "usermod", "userdel"):
        if shutil.which(tool) is None:
            raise HarnessError(f"`{tool}` is missing (openssh-client / passwd)")
    if os.geteuid() != 0:
        raise HarnessError("the sshd harness must run as root (it starts sshd, adds accounts)")


def _safe_for_sshd(path: Path) -> bool:
    """True when sshd's StrictModes accepts files below ``path`` for any user."""
    for folder in (path, *path.parents):
        st = folder.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            return False
    return True


def make_root_dir(prefix: str = "dvt-sshd-") -> Path:
    """A fresh 0755 root-owned folder that sshd's StrictModes accepts, and accounts can read."""
    for base in _BASE_CANDIDATES:
        if Path(base).is_dir() and _safe_for_sshd(Path(base)):
            root = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
            root.chmod(0o755)
            return root
    raise HarnessError(f"no root-owned, non-writable base folder among {_BASE_CANDIDATES}")


@dataclass(frozen=True)
class KeyPair:
    private: Path

    @property
    def public(self) -> Path:
        return self.private.with_name(self.private.name + ".pub")

    @property
    def line(self) -> str:
        """The ``ssh-ed25519 AAAA... comment`` line for authorized_keys."""
        return self.public.read_text().strip()


def make_keypair(path: Path, comment: str = "dvt-test") -> KeyPair:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )
    return KeyPair(path)


def _pids_of_uid(uid: int) -> list[int]:
    """Live processes whose real uid is ``uid`` (status, not /proc/PID's owner; zombies
    cannot be killed and go when reaped)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if int(fields["Uid"].split()[0]) == uid and not fields["State"].strip().startswith("Z"):
            pids.append(int(entry))
    return pids


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def _start_of(pid: int) -> int | None:
    """Start time (clock ticks after boot) of ``pid``: tells a process from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, found through ppid links."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            parent = _parent_of(int(entry))
            if parent is not None:
                children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pids: Sequence[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(pid, sig)


SESSION_GRACE_SECONDS = 1.0


def _end_sessions(seen: Sequence[tuple[int, int | None]]) -> None:
    """SIGTERM, then SIGKILL what is left after a second: only processes still the ones
    we saw (same start time), never a reused pid. A root session's shell may be inside
    the machine's own startup files (pyenv's rehash holds a lock file in /root until its
    EXIT trap runs): killed outright, it would leave that lock behind, and every later
    root shell on the machine waits 60 s for it."""

    def alive() -> list[int]:
        return [pid for pid, start in seen if start and _start_of(pid) == start]

    _kill(alive(), signal.SIGTERM)
    give_up = time.monotonic() + SESSION_GRACE_SECONDS
    while alive() and time.monotonic() < give_up:
        time.sleep(0.02)
    _kill(alive())


@dataclass
class Sshd:
    """One sshd listening on 127.0.0.1 with its own config, host key and admin key.

    ``start`` / ``stop`` / ``restart`` keep the port and the host key, so a client's
    pinned ``known_hosts`` stays valid across a restart.
    """

    root: Path
    client_alive_interval: int = 0
    client_alive_count_max: int = 3
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None
    _survivors: list[tuple[int, int | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_prerequisites()
        _acquire_privsep_dir()  # sshd -t wants it too; released by close()
        host_key = self.root / "ssh_host_ed25519_key"
        if not host_key.exists():
            make_keypair(host_key, "dvt-host")
        self.host_key = KeyPair(host_key)
        self.admin_key = (
            KeyPair(self.root / "admin_key")
            if (self.root / "admin_key").exists()
            else make_keypair(self.root / "admin_key", "dvt-admin")
        )
        self.authorized_keys_dir.mkdir(mode=0o755, exist_ok=True)
        self.authorize_root(self.admin_key.line)
        key_type, key_data = self.host_key.line.split()[:2]
        self.known_hosts.write_text(f"[{HOST}]:{self.port} {key_type} {key_data}\n")
        self.write_config()

    # --- files -------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.root / "sshd_config"

    @property
    def log_path(self) -> Path:
        return self.root / "sshd.log"

    @property
    def pid_file(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def known_hosts(self) -> Path:
        """``[127.0.0.1]:PORT ssh-ed25519 AAAA...``: pin the host key, never trust on first use."""
        return self.root / "known_hosts"

    @property
    def authorized_keys_dir(self) -> Path:
        return self.root / "authorized_keys"

    @property
    def host_key_line(self) -> str:
        return self.known_hosts.read_text().strip()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def authorize_root(self, *lines: str) -> None:
        """Authorize keys for root via ``ROOT/authorized_keys/root`` (not /root/.ssh)."""
        path = self.authorized_keys_dir / "root"
        path.write_text("".join(f"{line}\n" for line in lines))
        path.chmod(0o600)

    def write_config(self) -> None:
        sftp = next((str(p) for p in SFTP_SERVERS if p.exists()), "internal-sftp")
        lines = [
            f"ListenAddress {HOST}",
            f"Port {self.port}",
            f"HostKey {self.host_key.private}",
            f"PidFile {self.pid_file}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            f"AuthorizedKeysFile {self.authorized_keys_dir}/%u .ssh/authorized_keys",
            "StrictModes yes",
            "LogLevel VERBOSE",
            f"Subsystem sftp {sftp}",
            f"ClientAliveInterval {self.client_alive_interval}",
            f"ClientAliveCountMax {self.client_alive_count_max}",
            "PrintMotd no",
            "PrintLastLog no",
            "UseDNS no",
            "MaxStartups 100",
            "MaxSessions 20",
        ]
        # OpenSSH >= 9.8 penalizes sources of failed logins and bare connections: a test
        # provoking them on purpose would then be refused its next real login.
        if self._accepts("PerSourcePenalties no", lines):
            lines.append("PerSourcePenalties no")
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config_path.chmod(0o600)
        check = subprocess.run(
            [str(SSHD), "-t", "-f", str(self.config_path)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise HarnessError(f"sshd refuses its test config: {check.stderr.strip()}")

    def _accepts(self, option: str, lines: list[str]) -> bool:
        probe = self.root / "sshd_config.probe"
        probe.write_text("\n".join([*lines, option]) + "\n")
        try:
            check = subprocess.run(
                [str(SSHD), "-t", "-f", str(probe)], capture_output=True, text=True
            )
        finally:
            probe.unlink()
        return check.returncode == 0

    # --- the daemon ----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self._log_file = open(self.log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

        def listening() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise HarnessError(f"sshd exited at start:\n{self.log()}")
            return port_open(self.port)

        wait_until(listening, timeout, f"sshd to listen on {HOST}:{self.port}")

    def stop(self, kill_sessions: bool = True) -> None:
        """Stop the listener; with ``kill_sessions`` also every connection it forked,
        including those that survived an earlier ``restart``."""
        process, self.process = self.process, None
        if process is not None:
            below = [(pid, _start_of(pid)) for pid in descendants(process.pid)]
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
            self._survivors.extend(below)
        if kill_sessions:
            _end_sessions(self._survivors)
            self._survivors.clear()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop, kill its sessions, and give back /run/sshd (removed if we made it)."""
        try:
            self.stop(kill_sessions=True)
        finally:
            _release_privsep_dir()

    def restart(self, kill_sessions: bool = False) -> None:
        """Same port, same host key, like ``systemctl restart ssh`` (sessions survive)."""
        self.stop(kill_sessions=kill_sessions)
        wait_until(lambda: not port_open(self.port), 10, "the old sshd to release its port")
        self.start()

    # --- clients -------------------------------------------------------------

    def _pinned(self, key: KeyPair | Path) -> list[str]:
        """Options every client here uses: this sshd's host key pinned, only ``key``."""
        private = key.private if isinstance(key, KeyPair) else key
        return [
            "-F",
            "/dev/null",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "LogLevel=ERROR",
            "-i",
            str(private),
        ]

    def ssh_argv(
        self, user: str, key: KeyPair | Path, *command: str, options: Sequence[str] = ()
    ) -> list[str]:
        """The real OpenSSH client, pinned to this sshd's host key, offering only ``key``."""
        return [
            "ssh",
            *self._pinned(key),
            "-o",
            "ConnectTimeout=10",
            "-p",
            str(self.port),
            *options,
            f"{user}@{HOST}",
            *command,
        ]

    def sftp_argv(self, user: str, key: KeyPair | Path, *options: str) -> list[str]:
        """The real ``sftp`` client in batch mode reading commands from stdin."""
        return [
            "sftp",
            *self._pinned(key),
            "-P",
            str(self.port),
            *options,
            "-b",
            "-",
            f"{user}@{HOST}",
        ]

    def ssh(
        self,
        user: str,
        key: KeyPair | Path,
        *command: str,
        options: Sequence[str] = (),
        input: bytes | None = None,
        timeout: float = 30.0,
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            self.ssh_argv(user, key, *command, options=options),
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )

    def popen_ssh(
        self,
        user: str,
        key: KeyPair | Path,
        *command: str,
        options: Sequence[str] = (),
        **popen: Any,
    ) -> subprocess.Popen[bytes]:
        popen.setdefault("stdin", subprocess.DEVNULL)
        popen.setdefault("stdout", subprocess.DEVNULL)
        popen.setdefault("stderr", subprocess.DEVNULL)
        return subprocess.Popen(self.ssh_argv(user, key, *command, options=options), **popen)


# /run/sshd is sshd's privilege-separation folder: needed, outside our temp folder.
# Removed at the end only if we made it and no sshd at all still runs on the host.
_privsep_users = 0
_privsep_created = False


def _acquire_privsep_dir() -> None:
    global _privsep_users, _privsep_created
    if not PRIVSEP_DIR.exists():
        PRIVSEP_DIR.mkdir(mode=0o755)
        _privsep_created = True
    _privsep_users += 1


def _sshd_running() -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError):
                if os.readlink(f"/proc/{entry}/exe").startswith(str(SSHD)):
                    return True
    return False


def _release_privsep_dir() -> None:
    global _privsep_users, _privsep_created
    _privsep_users = max(0, _privsep_users - 1)
    if _privsep_users == 0 and _privsep_created and not _sshd_running():
        with suppress(OSError):
            PRIVSEP_DIR.rmdir()
            _privsep_created = False


@contextmanager
def running_sshd(client_alive_interval: int = 0, client_alive_count_max: int = 3) -> Iterator[Sshd]:
    """A started sshd in a fresh root folder; stopped (sessions killed) and removed after."""
    root = make_root_dir()
    server: Sshd | None = None
    try:
        server = Sshd(root, client_alive_interval, client_alive_count_max)
        server.start()
        yield server
    finally:
        if server is not None:
            server.close()
        shutil.rmtree(root, ignore_errors=True)


# --- accounts ----------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    """A Unix account made for one test: ``dvt`` + hex, home in /home, key-only login."""

    name: str
    uid: int
    gid: int
    home: Path

    def authorize(self, *lines: str) -> None:
        """Write ~/.ssh/authorized_keys with the ownership and modes StrictModes wants."""
        ssh_dir = self.home / ".ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        os.chown(ssh_dir, self.uid, self.gid)
        ssh_dir.chmod(0o700)
        path = ssh_dir / "authorized_keys"
        path.write_text("".join(f"{line}\n" for line in lines))
        os.chown(path, self.uid, self.gid)
        path.chmod(0o600)

    def pids(self) -> list[int]:
        return _pids_of_uid(self.uid)

    def kill_processes(self, timeout: float = 10.0) -> None:
        """SIGKILL every process of the account until none is left (forks race kills)."""

        def none_left() -> bool:
            pids = self.pids()
            _kill(pids)
            return not pids

        wait_until(none_left, timeout, f"the processes of {self.name} to die", every=0.05)


def create_account(prefix: str = ACCOUNT_PREFIX) -> Account:
    name = f"{prefix}{secrets.token_hex(5)}"
    subprocess.run(
        ["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True, text=True
    )
    # With UsePAM no, sshd refuses a locked ("!") password even for key logins.
    subprocess.run(["usermod", "-p", "*", name], check=True, capture_output=True, text=True)
    entry = pwd.getpwnam(name)
    return Account(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))


def remove_account(account: Account) -> None:
    with suppress(AssertionError):
        account.kill_processes()
    result = subprocess.run(["userdel", "-r", account.name], capture_output=True, text=True)
    if result.returncode not in (0, 6):  # 6: no such user
        # userdel refuses while a process still runs: kill again and retry once.
        account.kill_processes()
        subprocess.run(["userdel", "-r", "-f", account.name], capture_output=True, text=True)
    shutil.rmtree(account.home, ignore_errors=True)


@contextmanager
def unix_account(prefix: str = ACCOUNT_PREFIX) -> Iterator[Account]:
    """A fresh account, all of its processes killed and the account removed after."""
    account = create_account(prefix)
    try:
        yield account
    finally:
        remove_account(account)
