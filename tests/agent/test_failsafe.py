"""The presence agent's failsafe: the machine ends itself once its control plane is gone.

The decision is a pure function tested on its own; then the real thing: the agent's
``failsafe`` as root against a real sshd, a real account and the real OpenSSH client,
started by hand and through the admin login (``devenv.backends.ssh.failsafe``).
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devenv.agent.presence import AGENT_VERSION
from devenv.agent.presence import failsafe as agent
from devenv.agent.presence.failsafe import (
    FailsafePolicy,
    FailsafeSeen,
    failsafe_reason,
    failsafe_seen,
    parse_policy,
)
from devenv.agent.presence.table import Proc, control_plane_present
from devenv.backends.ssh import failsafe as host_failsafe
from devenv.backends.ssh.admin import AdminAccess, AdminConnection, Endpoint, connect_admin
from devenv.backends.ssh.agent_bundle import agent_zipapp
from devenv.backends.ssh.host_setup import install_agent
from devenv.models import messages
from tests.agent.streams import SYSTEM_PYTHON, AgentStream, Keys
from tests.support.sshd import Account, Sshd, wait_until

# --- the decision ------------------------------------------------------------------

T0 = 1000.0
"""The failsafe's start on the monotonic clock."""
WALL = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def policy(
    inactivity: float | None = 60,
    max_duration: float | None = None,
    started_at: float = WALL,
    after: float = 30,
) -> FailsafePolicy:
    return FailsafePolicy(inactivity, max_duration, started_at, after)


def reason(
    rule: FailsafePolicy | None,
    now: float,
    *,
    control_seen: float = T0,
    user_seen: float = T0,
    users: int = 0,
    control: bool = False,
    wall: float = WALL,
) -> str | None:
    return failsafe_reason(rule, FailsafeSeen(control_seen, user_seen), now, wall, users, control)


def test_idle_acts_only_after_failsafe_after_without_control_plane() -> None:
    rule = policy(inactivity=60, after=300)
    # Idle for 100 s, past inactivity, but the control plane was read 100 s ago: not yet.
    assert reason(rule, T0 + 100) is None
    assert reason(rule, T0 + 299.9) is None
    why = reason(rule, T0 + 300)
    assert why is not None and why.startswith("inactivity")
    # The control plane read until T0 + 250: now only 200 s without it.
    assert reason(rule, T0 + 450, control_seen=T0 + 250) is None
    assert reason(rule, T0 + 550, control_seen=T0 + 250) is not None


def test_idle_counts_from_the_last_user() -> None:
    rule = policy(inactivity=60, after=10)
    assert reason(rule, T0 + 100, user_seen=T0 + 50) is None
    assert reason(rule, T0 + 110, user_seen=T0 + 50) is not None


def test_never_idle_while_a_user_is_connected() -> None:
    rule = policy(inactivity=1, after=1)
    assert reason(rule, T0 + 10_000, users=1) is None
    # user_seen is renewed by every observation with a user connected.
    seen = failsafe_seen(FailsafeSeen(T0, T0), T0 + 5000, control=False, users=1)
    assert seen == FailsafeSeen(T0, T0 + 5000)
    assert reason(rule, T0 + 5000.5, user_seen=seen.user) is None


def test_inactivity_off_never_acts_for_idleness() -> None:
    assert reason(policy(inactivity=None, after=1), T0 + 1e9) is None


def test_max_duration_acts_even_with_a_user() -> None:
    rule = policy(inactivity=None, max_duration=3600, started_at=WALL, after=30)
    assert reason(rule, T0 + 60, users=2, wall=WALL + 3599) is None
    why = reason(rule, T0 + 60, users=2, wall=WALL + 3600)
    assert why is not None and why.startswith("max_duration")
    # ... but still only once no control plane has read for failsafe_after.
    assert reason(rule, T0 + 20, users=2, wall=WALL + 7200) is None
    assert reason(rule, T0 + 60, users=2, control=True, wall=WALL + 7200) is None


def test_control_plane_present_blocks() -> None:
    for rule in (policy(inactivity=0, after=0), policy(None, 0, after=0)):
        assert reason(rule, T0 + 1e6, control=True, wall=WALL + 1e6) is None
        assert reason(rule, T0 + 1e6, wall=WALL + 1e6) is not None
    seen = failsafe_seen(FailsafeSeen(T0, T0), T0 + 70, control=True, users=0)
    assert seen == FailsafeSeen(T0 + 70, T0)


def test_no_policy_never_acts() -> None:
    assert reason(None, T0 + 1e9, wall=WALL + 1e9) is None


def good_policy(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "inactivity_seconds": 60,
        "max_duration_seconds": None,
        "started_at": "2030-01-01T00:00:00Z",
        "failsafe_after_seconds": 300,
    }
    data.update(changes)
    return data


def test_parse_policy_reads_what_devenv_writes() -> None:
    model = messages.FailsafePolicy(
        inactivity_seconds=7200,
        max_duration_seconds=86400,
        started_at=datetime(2030, 1, 1, 12, tzinfo=UTC),
        failsafe_after_seconds=900,
    )
    expected = FailsafePolicy(
        7200.0, 86400.0, datetime(2030, 1, 1, 12, tzinfo=UTC).timestamp(), 900
    )
    assert parse_policy(model.model_dump_json()) == expected
    assert parse_policy(host_failsafe.policy_json(model)) == expected
    # A naive time is UTC; so is an explicit offset converted.
    naive = model.model_copy(update={"started_at": datetime(2030, 1, 1, 12)})
    assert parse_policy(host_failsafe.policy_json(naive)) == expected
    assert parse_policy(json.dumps(good_policy(started_at="2030-01-01T14:00:00+02:00"))) == (
        FailsafePolicy(60.0, None, expected.started_at, 300.0)
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{",
        "[]",
        "null",
        json.dumps(good_policy(started_at="yesterday")),
        json.dumps(good_policy(started_at=None)),
        json.dumps(good_policy(inactivity_seconds="60")),
        json.dumps(good_policy(inactivity_seconds=-1)),
        json.dumps(good_policy(inactivity_seconds=True)),
        json.dumps(good_policy(failsafe_after_seconds=None)),
        json.dumps({k: v for k, v in good_policy().items() if k != "max_duration_seconds"}),
        json.dumps(good_policy()).replace("300", "Infinity"),
    ],
)
def test_invalid_policy_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_policy(text)


def test_load_policy_problems(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    rule, problem = agent.load_policy(str(missing))
    assert rule is None and "cannot read" in problem
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    rule, problem = agent.load_policy(str(bad))
    assert rule is None and "invalid policy" in problem
    bad.write_text(json.dumps(good_policy()))
    assert agent.load_policy(str(bad)) == (parse_policy(bad.read_text()), "")


# --- the control plane, in process tables --------------------------------------------

USER, UID = "dv-x", 1500
AGENT = "/var/lib/devenv/agent/presence_agent-2.py"


def table(*leaf: tuple[str, ...], tty: str = "notty", uid: int = UID) -> list[Proc]:
    """sshd listener, the [priv] monitor, the session ``sshd: USER@TTY`` and its children."""
    procs = [
        Proc(100, 1, 0, ("sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups",), 1.0),
        Proc(200, 100, 0, (f"sshd: {USER} [priv]",), 5.0),
        Proc(201, 200, uid, (f"sshd: {USER}@{tty}",), 5.0),
    ]
    for index, argv in enumerate(leaf):
        procs.append(Proc(300 + index, 201, uid, argv, 5.1))
    return procs


STREAM = ("/usr/bin/python3", AGENT, "stream", "--user", USER)


def test_control_plane_is_a_stream_connection() -> None:
    assert control_plane_present(table(STREAM), USER, UID)
    # Any version of the agent, and the test's own file name.
    other = ("/usr/bin/python3", "/x/presence_agent.py", "stream", "--user", USER)
    assert control_plane_present(table(other), USER, UID)


@pytest.mark.parametrize(
    "procs",
    [
        table(),  # a connection with no command: a user's forward
        table(("/usr/bin/python3", AGENT, "probe", "--user", USER)),  # a probe reads nothing
        table(STREAM, ("sleep", "60")),  # a user's command beside it
        table(("bash",), tty="pts/0"),
        table(STREAM, tty="pts/0"),
        table(STREAM, uid=UID + 1),  # another account
        table(("/usr/bin/python3", "/tmp/evil.py", "stream")),
    ],
)
def test_not_a_control_plane(procs: list[Proc]) -> None:
    assert not control_plane_present(procs, USER, UID)


def test_agent_version() -> None:
    """4: the stream takes --count-recorded-logins, which accounts made by an older
    devenv (whose forced command runs presence_agent-3.py) never pass."""
    assert AGENT_VERSION == "5"


# --- the real failsafe --------------------------------------------------------------

REAL_INTERVAL = 0.05
HOLD = 2.5
"""How long the failsafe must be seen not acting: past inactivity plus failsafe_after."""


def write_policy_file(path: Path, inactivity: int | None, after: int) -> None:
    model = messages.FailsafePolicy(
        inactivity_seconds=inactivity,
        max_duration_seconds=None,
        started_at=datetime.now(UTC),
        failsafe_after_seconds=after,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_text(host_failsafe.policy_json(model))
    tmp.replace(path)


def stays(predicate: Callable[[], bool], duration: float, what: str) -> None:
    """``predicate`` holds at every look for ``duration`` seconds."""
    end = time.monotonic() + duration
    while time.monotonic() < end:
        assert predicate(), what
        time.sleep(0.05)


@contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        started = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True
        )
    try:
        yield started
    finally:
        if started.poll() is None:
            os.killpg(started.pid, signal.SIGKILL)
        started.wait(10)


@contextmanager
def user_connection(sshd: Sshd, account: Account, keys: Keys) -> Iterator[None]:
    with process(sshd.ssh_argv(account.name, keys.user, "sleep", "60"), Path(os.devnull)):
        yield


@pytest.mark.e2e
def test_failsafe_acts_only_when_nobody_is_there_and_nobody_reads(
    sshd: Sshd,
    keys: Keys,
    account: Account,
    agent_path: Path,
    streams: Callable[..., AgentStream],
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ended"
    policy_file = tmp_path / "policy.json"
    log = tmp_path / "failsafe.log"
    argv = [
        SYSTEM_PYTHON,
        str(agent_path),
        "failsafe",
        "--user",
        account.name,
        "--policy",
        str(policy_file),
        "--action",
        f"touch '{marker}'",
        "--interval",
        str(REAL_INTERVAL),
    ]

    def logged(text: str) -> bool:
        return text in log.read_text()

    def not_acted() -> bool:
        return not marker.exists() and failsafe.poll() is None

    with process(argv, log) as failsafe:
        # No policy: the failsafe never acts, though nobody is there and nobody reads.
        wait_until(lambda: logged("the failsafe will not act"), 10, "the missing policy logged")
        wait_until(lambda: logged("users=0 control=no"), 10, "the first observation")
        stays(not_acted, HOLD, "no action without a policy")

        with user_connection(sshd, account, keys):
            wait_until(lambda: logged("users=1 control=no"), 10, "the user seen")
            write_policy_file(policy_file, inactivity=1, after=1)
            wait_until(lambda: logged("policy: inactivity 1s"), 10, "the policy read")
            stays(not_acted, HOLD, "no action while a user is connected")

            stream = streams(account)
            stream.wait_connections(1)
            wait_until(lambda: logged("users=1 control=yes"), 10, "the control plane seen")
        wait_until(lambda: logged("users=0 control=yes"), 10, "the user gone")
        stays(not_acted, HOLD, "no action while a control plane reads")

        stream.close()
        closed = time.time()
        wait_until(marker.exists, 15, "the action to run")
        # Not before failsafe_after (1 s) without a control plane (less one interval of
        # observation, and the file system's time granularity).
        assert marker.stat().st_mtime >= closed + 1 - REAL_INTERVAL - 0.05
        assert failsafe.wait(10) == 0
    text = log.read_text()
    assert "acting on" in text and "inactivity: nobody connected" in text, text
    assert text.count("running the action") == 1, text


# --- the failsafe set up over the admin login ----------------------------------------


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def runs_as_root(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return "\nUid:\t0\t0\t0\t0\n" in status


def failsafe_pids(account: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"failsafe" in argv and account.encode() in argv:
            found.append(int(entry))
    return found


@pytest.fixture
async def admin(sshd: Sshd) -> AsyncIterator[AdminConnection]:
    access = AdminAccess("root", sshd.admin_key.private, sshd.known_hosts)
    connection = await connect_admin(Endpoint("127.0.0.1", sshd.port), access)
    try:
        yield connection
    finally:
        await connection.close()


def installed(path: Path) -> tuple[bytes, int, int, int]:
    """(content, mode, inode, mtime) of an installed file: a rewrite changes the inode."""
    info = path.stat()
    return path.read_bytes(), stat.S_IMODE(info.st_mode), info.st_ino, info.st_mtime_ns


def spoil(path: Path) -> None:
    """An older or damaged agent file where the installed one was."""
    path.write_bytes(b"stale")


def run_version(path: Path) -> str:
    done = subprocess.run([SYSTEM_PYTHON, str(path), "--version"], capture_output=True)
    return done.stdout.decode().strip()


@pytest.mark.e2e
async def test_the_agent_is_one_file_rewritten_only_when_it_differs(
    sshd: Sshd, admin: AdminConnection
) -> None:
    """What forced commands run: the zipapp at presence_agent-5.py, runnable by the host's
    python3; a second install leaves it alone (same bytes), a changed file is replaced."""
    host_dir = sshd.root / "agent-install"
    path = Path(await install_agent(admin, str(host_dir)))
    assert path.name == f"presence_agent-{AGENT_VERSION}.py"
    first = installed(path)
    assert first[:2] == (agent_zipapp(), 0o644)
    assert run_version(path) == AGENT_VERSION
    assert Path(await install_agent(admin, str(host_dir))) == path
    assert installed(path) == first, "rewritten though nothing changed"
    spoil(path)
    await install_agent(admin, str(host_dir))
    assert installed(path)[:2] == (agent_zipapp(), 0o644)
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.e2e
async def test_host_failsafe_policy_start_stop(
    sshd: Sshd,
    admin: AdminConnection,
    accounts: Callable[[], Account],
    tmp_path: Path,
) -> None:
    account = accounts()
    host_dir = sshd.root / f"failsafe-host-{account.name}"
    folder = host_dir / "failsafe"
    agent_file = await install_agent(admin, str(host_dir))
    try:
        model = messages.FailsafePolicy(
            inactivity_seconds=3600,
            max_duration_seconds=None,
            started_at=datetime.now(UTC) - timedelta(hours=1),
            failsafe_after_seconds=3600,
        )
        await host_failsafe.write_policy(admin, str(host_dir), account.name, model)
        policy_file = folder / f"{account.name}.json"
        assert mode(folder) == 0o700 and folder.stat().st_uid == 0
        assert mode(policy_file) == 0o600 and policy_file.stat().st_uid == 0
        assert messages.FailsafePolicy.model_validate_json(policy_file.read_text()) == model
        changed = model.model_copy(update={"inactivity_seconds": 7200})
        await host_failsafe.write_policy(admin, str(host_dir), account.name, changed)
        assert json.loads(policy_file.read_text())["inactivity_seconds"] == 7200
        assert mode(policy_file) == 0o600
        assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]

        # An action full of shell syntax: it must arrive as written, run by /bin/sh.
        marker = tmp_path / "acted"
        action = f"echo \"it's $((1 + 1))\" > '{marker}'"
        start = (admin, str(host_dir), SYSTEM_PYTHON, agent_file, account.name, action)
        await host_failsafe.start_failsafe(*start, interval=0.05)
        pid_file = folder / f"{account.name}.pid"
        pid = int(pid_file.read_text())
        assert running(pid)
        assert failsafe_pids(account.name) == [pid]
        assert runs_as_root(pid)
        action_file = folder / f"{account.name}.action"
        assert action_file.read_text() == action and mode(action_file) == 0o600
        log = folder / f"{account.name}.log"
        wait_until(lambda: "policy: inactivity 7200s" in log.read_text(), 10, "the policy read")

        await host_failsafe.start_failsafe(*start, interval=0.05)  # idempotent
        assert int(pid_file.read_text()) == pid
        assert failsafe_pids(account.name) == [pid]

        await host_failsafe.stop_failsafe(admin, str(host_dir), account.name)
        wait_until(lambda: not running(pid), 10, "the failsafe to end")
        assert not pid_file.exists() and failsafe_pids(account.name) == []
        await host_failsafe.stop_failsafe(admin, str(host_dir), account.name)  # idempotent
        assert not marker.exists()

        # A policy that acts a second after the start (no control plane reads this account,
        # nobody is connected): the action runs, once.
        acting = model.model_copy(update={"inactivity_seconds": 0, "failsafe_after_seconds": 1})
        await host_failsafe.write_policy(admin, str(host_dir), account.name, acting)
        await host_failsafe.start_failsafe(*start, interval=0.05)
        wait_until(marker.exists, 10, "the action to run")
        wait_until(lambda: marker.read_text() == "it's 2\n", 5, "the action's output")
        wait_until(lambda: not failsafe_pids(account.name), 10, "the failsafe to exit")
        await host_failsafe.stop_failsafe(admin, str(host_dir), account.name)
        assert not pid_file.exists()
    finally:
        await host_failsafe.stop_failsafe(admin, str(host_dir), account.name)
        for pid in failsafe_pids(account.name):
            os.kill(pid, signal.SIGKILL)


async def test_host_failsafe_refuses_bad_input(admin: AdminConnection) -> None:
    policy_model = messages.FailsafePolicy(
        inactivity_seconds=1,
        max_duration_seconds=None,
        started_at=datetime.now(UTC),
        failsafe_after_seconds=1,
    )
    with pytest.raises(ValueError):
        await host_failsafe.write_policy(admin, "/srv/x", "Root;reboot", policy_model)
    with pytest.raises(ValueError):
        await host_failsafe.write_policy(admin, "relative/dir", "dv-x", policy_model)
    with pytest.raises(ValueError):
        await host_failsafe.write_policy(admin, "/srv/../etc", "dv-x", policy_model)
    base = (admin, "/srv/x", SYSTEM_PYTHON, "/srv/x/agent/presence_agent-2.py", "dv-x")
    for action in ("", "   ", "a\x00b", "x" * 5000):
        with pytest.raises(ValueError):
            await host_failsafe.start_failsafe(*base, action)
    for interval in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            await host_failsafe.start_failsafe(*base, "true", interval=interval)
    with pytest.raises(ValueError):
        await host_failsafe.start_failsafe(admin, "/srv/x", "python3; reboot", "/a.py", "dv-x", "t")
    with pytest.raises(ValueError):
        await host_failsafe.stop_failsafe(admin, "/srv/x", "../../etc")
