"""``connected_idle`` on an sshd host, end to end with the real OpenSSH client: the
presence agent reads the terminal's input time as ``w`` does (the atime of /dev/pts/N)
and the account's CPU from /proc. An untouched ``ssh -tt`` session is warned in its
terminal and the environment ends; one that types every few seconds keeps it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from devenv.backends.ssh.host_setup import account_name
from tests.e2e.harness import Session, wait_for
from tests.ssh.conftest import account_of, host_dir_of
from tests.ssh.test_e2e import World, until_status, world  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e


def _config(world: World, tmp_path: Path) -> tuple[str, Path]:  # noqa: F811
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    # 30s: the kernel moves a tty's input time at most every 8 seconds (what w shows),
    # so a typing user's last input is up to 8s + their pause old when the warning,
    # 15s ahead, is due.
    doc.update(inactivity_duration="10s", connected_idle="30s")
    path.write_text(yaml.safe_dump(doc))
    return name, path


def _started(world: World, name: str, path: Path) -> Session:  # noqa: F811
    """Start it, wait for its login banner on the host, log in with ``ssh -tt``."""
    world.devenv.run("start", str(path))
    banner = host_dir_of(world.sshd) / "banners" / account_name(name)
    wait_for(banner.exists, 20, "the banner on the host")
    session = world.devenv.open_session(name)
    session.expect(f"devenv: this is '{name}' (backend ssh).")
    return session


def test_an_untouched_ssh_terminal_is_warned_then_the_environment_ends(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    devenv = world.devenv
    name, path = _config(world, tmp_path)
    session = _started(world, name, path)
    try:
        text = session.expect_terminal_warning(name, timeout=50)
        assert "connected but idle for 30s" in text
        row = until_status(world, name, "terminated", timeout=40)
    finally:
        session.kill()
    assert row["termination_reason"] == "connected_idle_exceeded"
    logs = devenv.run("logs", name).stdout
    assert "warning written to 1 open terminal" in logs
    assert "connected_idle 30s exceeded: no terminal input since" in logs


def _typing(session: Session, seconds: float, every: float = 3.0) -> None:
    end = time.monotonic() + seconds
    count = 0
    while time.monotonic() < end:
        count += 1
        session.send(f"echo tick-{count}\n")
        session.expect(f"tick-{count}")
        time.sleep(every)  # the pace of a person typing, not a wait for a condition


def test_an_ssh_terminal_that_types_every_few_seconds_keeps_it(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    devenv = world.devenv
    name, path = _config(world, tmp_path)
    session = _started(world, name, path)
    try:
        _typing(session, 50)
        row = world.ps(name)
        assert row["status"] == "running", devenv.run("logs", name).stdout
        assert "*** devenv:" not in "".join(session.output), (
            devenv.run("logs", name).stdout + devenv.run("ps", name, "-v").stdout
        )
        verbose = devenv.run("ps", name, "-v").stdout
        assert "last input" in verbose, verbose
    finally:
        session.kill()
    devenv.run("stop", name, "--wait")


def test_utilization_policy_on_a_host_without_nvidia_smi_fails_the_start_in_one_line(
    world: World,  # noqa: F811
    tmp_path: Path,
) -> None:
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["utilization_policy"] = {"min_gpu_utilization": 10, "time_window": "30m"}
    path.write_text(yaml.safe_dump(doc))
    result = world.devenv.run("start", str(path), check=False)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "utilization_policy:" in lines[0] and "has no nvidia-smi" in lines[0]
    assert account_of(name) is None, "nothing created on the host"
    assert until_status(world, name, "failed")["termination_reason"] == "provisioning_failed"
