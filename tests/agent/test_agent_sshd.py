"""The presence agent on a real OpenSSH sshd, read through devenv's internal key.

Every scenario uses the real ``ssh``/``sftp`` clients against the harness sshd on
127.0.0.1, an account made for the test, and asserts the agent's JSON lines. The
stream is read as devenv reads it: through the internal key, whose forced command
runs the agent whatever the client asks for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from devenv.agent.presence import AGENT_VERSION
from tests.agent.streams import AGENT_NAME, SYSTEM_PYTHON, AgentStream, Keys, Line, authorize
from tests.support.sshd import Account, Sshd, free_port, wait_until

pytestmark = pytest.mark.e2e

OpenStream = Callable[..., AgentStream]
REACTION_LIMIT = 1.0
"""The agent reports a login or a logout within this many seconds."""


def empty(line: Line) -> bool:
    return bool(line["connections"] == 0 and line["waiting"] == 0 and line["sessions"] == [])


def only_session(line: Line) -> dict[str, object]:
    assert len(line["sessions"]) == 1, line
    session: dict[str, object] = line["sessions"][0]
    return session


def since(session: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(session["since"]))


@contextmanager
def client(argv: list[str], **popen: object) -> Iterator[subprocess.Popen[bytes]]:
    """A client process, killed (with its process group) if the test did not end it."""
    process = subprocess.Popen(argv, start_new_session=True, **popen)  # type: ignore[call-overload]
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def agent_pids(account: Account) -> list[int]:
    found = []
    for pid in account.pids():
        try:
            if AGENT_NAME.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return found


# --- the forced command ------------------------------------------------------------


def test_internal_key_runs_the_agent_whatever_is_asked(
    sshd: Sshd, account: Account, streams: OpenStream
) -> None:
    stream = streams(account, "cat", "/etc/passwd")
    first = stream.wait_for(lambda line: True, "the first line")
    assert list(stream.lines[first]) == [
        "connections",
        "waiting",
        "last_change",
        "sessions",
        "jobs",
    ]
    assert empty(stream.lines[first]), "the agent's own connection must not count"
    datetime.fromisoformat(stream.lines[first]["last_change"])
    assert all(b"root:" not in raw for raw in stream.raw)
    subsystem = streams(account, "-s", "sftp")  # a subsystem request is replaced too
    assert empty(subsystem.lines[subsystem.wait_for(lambda line: True, "a line")])


def test_two_streams_do_not_count_each_other(account: Account, streams: OpenStream) -> None:
    """devenv reads a probe as a second stream's first line while the first one runs."""
    first = streams(account)
    first.wait_connections(0)
    second = streams(account)
    assert empty(second.lines[second.wait_for(lambda line: True, "the second's first line")])
    # The first may glimpse the second before its command starts (an authenticated
    # connection without a channel yet), but it settles on nobody.
    first.wait_for(lambda line: empty(line) and line is first.lines[-1], "the first to settle")
    assert all(line["connections"] <= 1 for line in first.lines)


def test_agent_version(agent_path: Path) -> None:
    result = subprocess.run(
        [SYSTEM_PYTHON, str(agent_path), "--version"], capture_output=True, text=True, check=True
    )
    # Hosts keep each version under its own file name: a bump must show here.
    assert result.stdout.strip() == AGENT_VERSION == "5"


# --- kinds of connections ---------------------------------------------------------


def test_interactive_shell_counts_then_logout(
    sshd: Sshd, keys: Keys, account: Account, streams: OpenStream
) -> None:
    stream = streams(account)
    start = stream.wait_connections(0)
    argv = sshd.ssh_argv(account.name, keys.user, options=["-tt"])
    with client(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as shell:
        connected = time.monotonic()
        # The connection shows first as "forward" (authenticated, no channel yet), then
        # as "shell" once the pty session opens.
        up = stream.wait_for(
            lambda line: line["connections"] == 1 and line["sessions"][0]["kind"] == "shell",
            "a shell connection",
            after=start,
        )
        assert stream.arrived[up] - connected < REACTION_LIMIT + 1.0  # includes the login itself
        # Where from may follow a line later (read from /proc/net once the socket shows).
        known = stream.wait_for(
            lambda line: line["sessions"] and line["sessions"][0].get("from") is not None,
            "the session's peer",
            after=up,
        )
        session = only_session(stream.lines[known])
        assert str(session["from"]).startswith("127.0.0.1:")
        assert abs((datetime.now(since(session).tzinfo) - since(session)).total_seconds()) < 10
        assert shell.stdin is not None
        shell.stdin.write(b"exit\n")
        shell.stdin.flush()
        shell.wait(10)
        logged_out = time.monotonic()
    down = stream.wait_connections(0, after=up)
    assert empty(stream.lines[down])
    assert stream.arrived[down] - logged_out < REACTION_LIMIT
    assert stream.lines[down]["last_change"] > stream.lines[up]["last_change"]


def test_exec_only(sshd: Sshd, keys: Keys, account: Account, streams: OpenStream) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    with client(sshd.ssh_argv(account.name, keys.user, "sleep", "60")) as command:
        up = stream.wait_for(
            lambda line: line["connections"] == 1 and line["sessions"][0]["kind"] == "exec",
            "an exec connection",
        )
        session = only_session(stream.lines[up])
        assert str(session["from"]).startswith("127.0.0.1:")
        command.terminate()
        command.wait(10)
        gone = time.monotonic()
    down = stream.wait_connections(0, after=up)
    assert stream.arrived[down] - gone < REACTION_LIMIT


def test_sftp(sshd: Sshd, keys: Keys, account: Account, streams: OpenStream) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    argv = sshd.sftp_argv(account.name, keys.user)
    with client(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as sftp:
        assert sftp.stdin is not None and sftp.stdout is not None
        sftp.stdin.write(b"pwd\n")
        sftp.stdin.flush()
        answer = b"".join(sftp.stdout.readline() for _ in range(2))  # the echo, the answer
        assert b"Remote working directory" in answer, answer
        up = stream.wait_for(
            lambda line: line["connections"] == 1 and line["sessions"][0]["kind"] == "sftp",
            "an sftp connection",
        )
        sftp.stdin.close()  # end of the batch: sftp quits
        assert sftp.wait(10) == 0
    stream.wait_connections(0, after=up)


def test_port_forward_only(sshd: Sshd, keys: Keys, account: Account, streams: OpenStream) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    local = free_port()
    forward = ["-N", "-L", f"{local}:127.0.0.1:{sshd.port}"]
    with client(sshd.ssh_argv(account.name, keys.user, options=forward)) as tunnel:
        up = stream.wait_connections(1)
        session = only_session(stream.lines[up])
        assert session["kind"] == "forward"
        # The forward works: sshd answers through it.
        with socket.create_connection(("127.0.0.1", local), timeout=5) as sock:
            assert sock.recv(64).startswith(b"SSH-2.0-")
        tunnel.terminate()
        tunnel.wait(10)
    stream.wait_connections(0, after=up)


def test_control_master_is_one_connection(
    sshd: Sshd, keys: Keys, account: Account, streams: OpenStream
) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    control = ["-o", f"ControlPath={sshd.root}/cm-{account.name}", "-o", "ControlPersist=no"]
    master_argv = sshd.ssh_argv(
        account.name, keys.user, options=["-N", "-o", "ControlMaster=yes", *control]
    )
    with client(master_argv):
        up = stream.wait_connections(1)
        with (
            client(sshd.ssh_argv(account.name, keys.user, "sleep", "60", options=control)),
            client(sshd.ssh_argv(account.name, keys.user, "sleep", "61", options=control)),
            client(
                sshd.ssh_argv(account.name, keys.user, "sleep", "62", options=["-tt", *control]),
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
            ),
        ):
            busy = stream.wait_for(
                lambda line: line["connections"] == 1 and line["sessions"][0]["kind"] == "shell",
                "the multiplexed sessions (one with a tty)",
                after=up,
            )
            only_session(stream.lines[busy])
            exit_master = sshd.ssh(account.name, keys.user, "-O", "exit", options=control)
            assert exit_master.returncode == 0, exit_master.stderr
            down = stream.wait_connections(0, after=busy)
    assert all(line["connections"] <= 1 for line in stream.lines[: down + 1])


def test_a_persisting_control_master_counts_and_is_labelled_master(
    sshd: Sshd, keys: Keys, account: Account, streams: OpenStream
) -> None:
    """``ssh -o ControlPersist=... NAME true`` returns and leaves its master connection
    open: a user as long as it lives, shown as "master" (not "forward"); a multiplexed
    command on it shows as exec; ``ssh -O exit`` ends it."""
    stream = streams(account)
    start = stream.wait_connections(0)
    control = ["-o", f"ControlPath={sshd.root}/cm-{account.name}"]
    persisting = ["-o", "ControlMaster=yes", "-o", "ControlPersist=60", *control]
    ran = sshd.ssh(account.name, keys.user, "true", options=persisting)
    assert ran.returncode == 0, ran.stderr

    def kind_is(kind: str) -> Callable[[Line], bool]:
        return lambda line: line["connections"] == 1 and line["sessions"][0]["kind"] == kind

    kept = stream.wait_for(kind_is("master"), "the persisting master", after=start)
    with client(sshd.ssh_argv(account.name, keys.user, "sleep", "2", options=control)) as cmd:
        busy = stream.wait_for(kind_is("exec"), "a command on the master", after=kept)
        assert cmd.wait(10) == 0
    stream.wait_for(kind_is("master"), "the master again, idle", after=busy)
    exit_master = sshd.ssh(account.name, keys.user, "-O", "exit", options=control)
    assert exit_master.returncode == 0, exit_master.stderr
    stream.wait_connections(0, after=busy)


# --- what never counts -------------------------------------------------------------


@contextmanager
def stuck_login(sshd: Sshd, account: Account, folder: Path) -> Iterator[None]:
    """A login that stays inside authentication: its key's passphrase never comes."""
    key = folder / f"locked-{account.name}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "secret", "-f", str(key)], check=True
    )
    authorized = (account.home / ".ssh" / "authorized_keys").read_text().splitlines()
    account.authorize(*authorized, Path(f"{key}.pub").read_text().strip())
    askpass = folder / "askpass-sleeps"
    askpass.write_text("#!/bin/sh\nexec sleep 60\n")
    askpass.chmod(0o755)
    argv = sshd.ssh_argv(account.name, key, "true")
    argv[argv.index("BatchMode=yes")] = "BatchMode=no"
    env = {**os.environ, "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force"}
    with client(argv, env=env, stdin=subprocess.DEVNULL):
        wait_until(
            lambda: "Postponed publickey for " + account.name in sshd.log(),
            15,
            "the stuck login to reach authentication",
        )
        yield


def test_failed_logins_and_bare_tcp_never_count(
    sshd: Sshd, keys: Keys, account: Account, streams: OpenStream
) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    silent = socket.create_connection(("127.0.0.1", sshd.port))
    greeted = socket.create_connection(("127.0.0.1", sshd.port))
    greeted.sendall(b"SSH-2.0-dvt-scanner\r\n")
    try:
        with stuck_login(sshd, account, sshd.root / "keys"):
            for user in (account.name, account.name, "dvt-nobody", "root"):
                refused = sshd.ssh(user, keys.stranger, "true")
                assert refused.returncode == 255
            # Barrier: a real login of the account. Every line before it saw the
            # failed, stuck and bare connections, and must be empty.
            with client(sshd.ssh_argv(account.name, keys.user, "sleep", "60")):
                barrier = stream.wait_connections(1)
                only_session(stream.lines[barrier])
    finally:
        silent.close()
        greeted.close()
    assert all(empty(line) for line in stream.lines[:barrier]), stream.lines


def test_another_accounts_connections_do_not_count(
    sshd: Sshd,
    keys: Keys,
    account: Account,
    accounts: Callable[[], Account],
    agent_path: Path,
    streams: OpenStream,
) -> None:
    other = accounts()
    authorize(other, keys, agent_path)
    stream = streams(account)
    stream.wait_connections(0)
    argv = sshd.ssh_argv(other.name, keys.user, "echo other-is-up; sleep 60", options=["-tt"])
    with client(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as shell:
        assert shell.stdout is not None
        assert b"other-is-up" in shell.stdout.readline()
        other_stream = streams(other)
        other_stream.wait_connections(1)  # the other account does see it
        with client(sshd.ssh_argv(account.name, keys.user, "sleep", "60")):
            barrier = stream.wait_connections(1)
            only_session(stream.lines[barrier])
    assert all(empty(line) for line in stream.lines[:barrier]), stream.lines


# --- min-connection-duration -------------------------------------------------------


def test_min_connection_duration(
    sshd: Sshd,
    keys: Keys,
    accounts: Callable[[], Account],
    agent_path: Path,
    streams: OpenStream,
) -> None:
    minimum = 3.0
    account = accounts()
    authorize(account, keys, agent_path, min_duration=minimum)
    stream = streams(account)
    stream.wait_connections(0)
    for _ in range(20):
        short = sshd.ssh(account.name, keys.user, "true")
        assert short.returncode == 0, short.stderr
    assert all(line["connections"] == 0 for line in stream.lines)
    after_short = len(stream.lines)
    with client(sshd.ssh_argv(account.name, keys.user, "sleep", "60")):
        waiting = stream.wait_connections(0, after=after_short, waiting=1)
        counted = stream.wait_connections(1, after=waiting, waiting=0)
        session = only_session(stream.lines[counted])
        reached = datetime.fromisoformat(stream.lines[counted]["last_change"])
        late = (reached - since(session)).total_seconds() - minimum
        assert 0 <= late < 0.5, f"counted {late:.3f}s after reaching the minimum"
    stream.wait_connections(0, after=counted, waiting=0)
    assert all(line["connections"] == 0 for line in stream.lines[:counted])


# --- probe, and the agent's own lifetime ---------------------------------------------


def test_probe_excludes_itself_and_the_stream(
    sshd: Sshd, keys: Keys, account: Account, agent_path: Path, streams: OpenStream
) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    probe = [SYSTEM_PYTHON, str(agent_path), "probe", "--user", account.name]
    alone = sshd.ssh(account.name, keys.user, *probe)
    assert alone.returncode == 0, alone.stderr
    assert empty(json.loads(alone.stdout))
    with client(sshd.ssh_argv(account.name, keys.user, "sleep", "60")):
        stream.wait_connections(1)
        result = sshd.ssh(account.name, keys.user, *probe)
        line = json.loads(result.stdout)
        assert line["connections"] == 1
        assert only_session(line)["kind"] == "exec"


def test_stream_ends_with_its_connection(sshd: Sshd, account: Account, streams: OpenStream) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    assert len(agent_pids(account)) == 1
    stream.process.terminate()  # the client goes away while nothing changes
    stream.process.wait(10)
    wait_until(lambda: not agent_pids(account), 5, "the agent to leave with its connection")


def test_sigterm_ends_quietly(sshd: Sshd, account: Account, streams: OpenStream) -> None:
    stream = streams(account)
    stream.wait_connections(0)
    [pid] = agent_pids(account)
    os.kill(pid, signal.SIGTERM)
    assert stream.process.wait(10) == 0
    assert "Traceback" not in stream.stderr()
