"""Sessions shorter than the agent's poll (``ssh NAME true``) count on sshd hosts when
min_connection_duration is 0: the account's ~/.ssh/rc (what devenv installs) records each
session, and the stream tells one that came and went unseen as a connection that opened
and closed. devenv's own key has ``restrict`` (no-user-rc), so its connections (the
stream, a probe) never record one.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv.agent.presence.account import DEFAULT_INTERVAL
from devenv.backends.ssh.host_setup import USER_RC, forced_command
from tests.agent.streams import SYSTEM_PYTHON, AgentStream, Keys, Line
from tests.support.sshd import Account, Sshd

pytestmark = pytest.mark.e2e
OpenStream = Callable[..., AgentStream]


def recording_account(account: Account, keys: Keys, agent: Path, minimum: int = 0) -> None:
    """The account as devenv sets it up on an sshd host: the forced command of the ssh
    backend (minimum at least 1 s; with 0 it counts recorded logins) and its ~/.ssh/rc."""
    command = forced_command(SYSTEM_PYTHON, str(agent), account.name, minimum)
    account.authorize(keys.user.line, f'restrict,command="{command}" {keys.internal.line}')
    rc = account.home / ".ssh" / "rc"
    rc.write_text(USER_RC)
    os.chown(rc, account.uid, account.gid)


def opened(line: Line) -> bool:
    return bool(line["connections"] == 1)


def test_commands_shorter_than_a_poll_count_with_minimum_zero(
    sshd: Sshd, keys: Keys, account: Account, agent_path: Path, streams: OpenStream
) -> None:
    recording_account(account, keys, agent_path)
    monitor, other = streams(account), streams(account)  # e.g. a monitor and a probe
    start = monitor.wait_connections(0)
    other.wait_connections(0)
    for _ in range(3):
        ran = sshd.ssh(account.name, keys.user, "true")
        assert ran.returncode == 0, ran.stderr
        up = monitor.wait_for(opened, "the short session counted", after=start)
        start = monitor.wait_connections(0, after=up)
        assert monitor.lines[start]["last_change"] >= monitor.lines[up]["last_change"]
    kinds = {s["kind"] for line in monitor.lines if opened(line) for s in line["sessions"]}
    assert kinds <= {"session", "exec"}, kinds
    # Every stream counts them: none takes the records away from another.
    seen = -1
    for _ in range(3):
        seen = other.wait_for(opened, "the other stream to count it too", after=seen + 1)
    # A fresh stream (a probe) says who is there now, not who was a moment ago.
    fresh = streams(account)
    fresh.wait_connections(0)
    assert fresh.lines[0]["connections"] == 0


def test_devenv_s_own_connections_record_no_session(
    sshd: Sshd, keys: Keys, account: Account, agent_path: Path, streams: OpenStream
) -> None:
    recording_account(account, keys, agent_path)
    stream = streams(account)
    first = stream.wait_connections(0)
    for _ in range(3):  # a probe or a second monitor: another connection of devenv's key
        other = streams(account)
        other.wait_connections(0)
        other.close()
    user = sshd.ssh(account.name, keys.user, "sleep 0.3; echo done")
    assert user.stdout.strip() == b"done", user.stderr
    up = stream.wait_for(opened, "the user's session", after=first)
    assert all(line["connections"] == 0 for line in stream.lines[:up]), stream.lines


def test_with_a_minimum_short_sessions_still_do_not_count(
    sshd: Sshd, keys: Keys, account: Account, agent_path: Path, streams: OpenStream
) -> None:
    recording_account(account, keys, agent_path, minimum=2)
    stream = streams(account)
    stream.wait_connections(0)
    for _ in range(3):
        assert sshd.ssh(account.name, keys.user, "true").returncode == 0
    time.sleep(3 * DEFAULT_INTERVAL)  # what it would report, it has by now
    assert all(line["connections"] == 0 for line in stream.lines), stream.lines


def test_sftp_counts_from_one_second_as_documented(
    sshd: Sshd, keys: Keys, account: Account, agent_path: Path, streams: OpenStream
) -> None:
    """sftp is a subsystem: sshd runs no ~/.ssh/rc for it, so it counts by the process
    table, once it has lasted 1 s (the README's floor for sftp and scp)."""
    recording_account(account, keys, agent_path)
    stream = streams(account)
    start = stream.wait_connections(0)
    quick = subprocess.run(
        sshd.sftp_argv(account.name, keys.user), input=b"pwd\n", capture_output=True, timeout=30
    )
    assert quick.returncode == 0, quick.stderr
    time.sleep(3 * DEFAULT_INTERVAL)  # what it would report, it has by now
    assert not any(opened(line) for line in stream.lines), stream.lines
    argv = sshd.sftp_argv(account.name, keys.user)
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL) as held:
        up = stream.wait_for(opened, "an sftp session held open", after=start)
        session = stream.lines[up]["sessions"][0]
        assert session["kind"] == "sftp"
        assert held.stdin is not None
        held.stdin.close()
        assert held.wait(10) == 0
