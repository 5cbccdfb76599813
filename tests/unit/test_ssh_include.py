"""Only the default home edits ~/.ssh/config; a stale Include never breaks ssh."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devenv.client import sshconfig
from devenv.models.state import InstanceInfo
from devenv.settings import Settings

INSTANCE = InstanceInfo(
    instance_id="i-1",
    backend="local",
    host="127.0.0.1",
    port=2222,
    username="dev",
    host_public_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyHostKeyHostKeyHostKeyHostKeyHost",
    task_queue="q",
)


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "user"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DEVENV_HOME", raising=False)
    monkeypatch.delenv("DEVENV_SSH_INCLUDE", raising=False)
    return home


def test_a_scratch_home_never_edits_the_users_ssh_config(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for attempt in range(3):
        monkeypatch.setenv("DEVENV_HOME", str(tmp_path / f"scratch-{attempt}"))
        settings = Settings.load()
        assert not settings.ssh_include
        sshconfig.write_entry(settings, "box", INSTANCE, user_home / "key")
        assert sshconfig.include_in_user_config(settings) is False
    assert not (user_home / ".ssh" / "config").exists(), "test homes must not pile up there"


def test_a_client_given_its_own_home_never_edits_the_users_ssh_config(
    user_home: Path, tmp_path: Path
) -> None:
    """``AsyncClient(home=...)`` from a program whose own settings are the default home:
    the home it was given decides, not the default it started from."""
    from devenv.client.async_client import AsyncClient

    scratch = AsyncClient(home=tmp_path / "scratch").settings
    assert not scratch.ssh_include
    assert sshconfig.include_in_user_config(scratch) is False
    assert not (user_home / ".ssh" / "config").exists()
    assert AsyncClient(home=user_home / ".devenv").settings.ssh_include


def test_the_default_home_or_the_flag_adds_the_include_once(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    default = Settings.load()
    assert default.home == user_home / ".devenv" and default.ssh_include
    assert sshconfig.include_in_user_config(default) is True
    assert sshconfig.include_in_user_config(default) is False  # once
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "team"))
    monkeypatch.setenv("DEVENV_SSH_INCLUDE", "1")
    flagged = Settings.load()
    assert sshconfig.include_in_user_config(flagged) is True
    lines = (user_home / ".ssh" / "config").read_text().splitlines()
    assert lines.count(f"Include {default.ssh_config}") == 1
    assert lines.count(f"Include {flagged.ssh_config}") == 1
    monkeypatch.setenv("DEVENV_SSH_INCLUDE", "maybe")
    with pytest.raises(ValueError, match="DEVENV_SSH_INCLUDE: invalid value 'maybe'"):
        Settings.load()


def test_a_stale_include_of_a_deleted_home_does_not_break_ssh(
    user_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / "gone"))
    monkeypatch.setenv("DEVENV_SSH_INCLUDE", "1")
    settings = Settings.load()
    sshconfig.write_entry(settings, "box", INSTANCE, user_home / "key")
    sshconfig.include_in_user_config(settings)
    user_config = user_home / ".ssh" / "config"
    user_config.write_text(user_config.read_text() + "\nHost other\n    Port 2200\n")
    shutil.rmtree(settings.home)
    # ssh -G parses the configuration as a connection would, without connecting.
    parsed = subprocess.run(
        ["ssh", "-F", str(user_config), "-G", "other"], capture_output=True, text=True, timeout=10
    )
    assert parsed.returncode == 0, parsed.stderr
    assert "port 2200" in parsed.stdout.splitlines()
