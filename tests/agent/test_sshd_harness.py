"""The sshd harness itself: what the agent's tests and the ssh backend's rely on."""

from __future__ import annotations

import subprocess

import pytest

from tests.agent.streams import Keys
from tests.support.sshd import Account, Sshd, port_open

pytestmark = pytest.mark.e2e


def test_admin_key_logs_in_as_root_with_the_pinned_host_key(sshd: Sshd) -> None:
    result = sshd.ssh("root", sshd.admin_key, "id -u")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == b"0"
    assert sshd.host_key_line.startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 AAAA")
    config = sshd.config_path.read_text()
    for setting in ("UsePAM no", "PasswordAuthentication no", "StrictModes yes"):
        assert setting in config


def test_another_host_key_is_refused(sshd: Sshd, tmp_path_factory: pytest.TempPathFactory) -> None:
    wrong = tmp_path_factory.mktemp("known") / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {sshd.admin_key.line}\n")
    argv = sshd.ssh_argv("root", sshd.admin_key, "true")
    argv[argv.index(f"UserKnownHostsFile={sshd.known_hosts}")] = f"UserKnownHostsFile={wrong}"
    result = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
    assert result.returncode == 255


def test_restart_keeps_port_host_key_and_sessions(sshd: Sshd, keys: Keys, account: Account) -> None:
    session = sshd.popen_ssh(
        account.name,
        keys.user,
        "echo up; read line; echo after-$line",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert session.stdout is not None and session.stdin is not None
    assert session.stdout.readline() == b"up\n"
    sshd.restart()
    assert port_open(sshd.port)
    assert sshd.ssh(account.name, keys.user, "true").returncode == 0
    out, _ = session.communicate(b"restart\n", timeout=30)
    assert out == b"after-restart\n"
