"""``backend: ssh`` end to end, as a user lives it: the real `devenv` CLI, `ssh`, and sshd.

A private devenv world (its own DEVENV_HOME, HOME and embedded Temporal server) whose
worker administers the harness sshd as root; environments are accounts on this
machine, deleted at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from devenv.backends.ssh.host_setup import account_name
from tests.e2e.harness import Devenv, serving, wait_for
from tests.ssh.conftest import (
    account_of,
    host_dir_of,
    pids_of,
    remove_environment_account,
    shadow,
    ssh_section,
    unique_name,
)
from tests.support.sshd import Sshd, running_sshd

pytestmark = pytest.mark.e2e


class World:
    """A devenv world and the sshd its environments live on; remembers names to clean up."""

    def __init__(self, devenv: Devenv, sshd: Sshd) -> None:
        self.devenv = devenv
        self.sshd = sshd
        self.names: set[str] = set()

    def config(self, directory: Path, **section: Any) -> tuple[str, Path]:
        """A `backend: ssh` file pointing at the harness sshd with the admin key."""
        name = unique_name("sshe")
        self.names.add(name)
        path = directory / f"{name}.yml"
        doc = {
            "type": "dev-environment",
            "name": name,
            "backend": "ssh",
            "ssh_config": ssh_section(self.sshd, **section),
            "inactivity_duration": "1h",
        }
        path.write_text(yaml.safe_dump(doc))
        return name, path

    def ps(self, name: str) -> dict[str, Any]:
        return self.devenv.ps(name)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_sshd() as sshd:
        devenv = Devenv(
            tmp_path_factory.mktemp("ssh-e2e"),
            # The host folder inside the sshd's root (removed with it); no HTTP API port
            # of this world may collide with another's.
            extra_env={"DEVENV_SSH_HOST_DIR": str(host_dir_of(sshd)), "DEVENV_API_PORT": "0"},
        )
        made = World(devenv, sshd)
        try:
            with serving(devenv):
                yield made
        finally:
            for name in made.names:
                remove_environment_account(name)


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def until_status(world: World, name: str, status: str, timeout: float = 20) -> dict[str, Any]:
    try:
        return wait_for(
            lambda: (row := world.ps(name))["status"] == status and row, timeout, f"{name} {status}"
        )
    except AssertionError as timed_out:
        logs = world.devenv.run("logs", name, check=False).stdout
        raise AssertionError(f"{timed_out}; its events:\n{logs}") from None


def until_activity(world: World, name: str, activity: str, timeout: float = 10) -> None:
    wait_for(lambda: world.ps(name)["activity"] == activity, timeout, f"ps to show {activity}")


def test_an_ssh_environment_is_used_walked_away_from_and_ends_on_time(
    world: World, tmp_path: Path
) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    started = devenv.run("start", str(path))
    assert name in started.stdout and "ssh" in started.stdout
    row = world.ps(name)
    assert (row["status"], row["backend"], row["activity"]) == ("running", "ssh", "idle")
    account = account_name(name)

    who = devenv.ssh(name, "id -un; pwd")
    assert who.returncode == 0, who.stderr
    assert who.stdout.split() == [account, f"/home/{account}"]
    via_cli = devenv.run("ssh", name, "--", "id", "-un")
    assert via_cli.stdout.strip() == account

    session = devenv.open_session(name)
    session.send("echo shell-$((6*7)) $(tty)\n")
    session.expect("shell-42 /dev/pts/")
    until_activity(world, name, "active")
    assert world.ps(name)["connections"] == 1
    assert session.close() == 0
    until_activity(world, name, "idle")

    # sshd restarted with every session killed (the monitor's too): the monitor reconnects.
    world.sshd.restart(kill_sessions=True)
    session = devenv.open_session(name)
    session.send("echo back-$((6*7))\n")
    session.expect("back-42")
    until_activity(world, name, "active", timeout=20)
    escape = "setsid nohup env -i sleep 600 >/dev/null 2>&1 </dev/null &\n"
    session.send(escape + "echo escaped\n")
    session.expect("escaped")
    assert session.close() == 0
    until_activity(world, name, "idle")
    assert pids_of(account), "the escaped sleep runs while the environment does"

    idle_since = when(world.ps(name)["idle_since"])
    signalled_at = datetime.now(UTC)
    signalled = json.loads(devenv.run("signal", name, "--inactivity", "2s", "--json").stdout)
    if signalled["deadline"] is not None:
        assert when(signalled["deadline"]) == idle_since + timedelta(seconds=2)
    # On a loaded machine 2 s may already have passed: then it ends at once.
    due = max(idle_since + timedelta(seconds=2), signalled_at)
    row = until_status(world, name, "terminated")
    assert row["termination_reason"] == "inactivity_duration_exceeded"
    events = json.loads(devenv.run("logs", name, "--json").stdout)
    ended = next(when(e["at"]) for e in events if e["message"].startswith("terminated:"))
    assert idle_since + timedelta(seconds=2) <= ended <= due + timedelta(seconds=5), (due, ended)

    assert pids_of(account) == [], "nothing of the account survives termination"
    refused = devenv.ssh(name, "true")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr
    assert shadow(account)[1].startswith("!")


def test_short_connections_in_a_loop_do_not_keep_an_ssh_environment_alive(
    world: World, tmp_path: Path
) -> None:
    """``while :; do ssh NAME sleep 1.5; done`` with min_connection_duration 3s: no
    connection ever counts, so it ends at its idle deadline, put off at most once, until
    the connection open then would have counted (its start + the minimum)."""
    devenv = world.devenv
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    path.write_text(
        yaml.safe_dump({**doc, "inactivity_duration": "4s", "min_connection_duration": "3s"})
    )
    devenv.run("start", str(path))
    stop = threading.Event()

    def short_connections() -> None:
        while not stop.is_set():
            devenv.ssh(name, "sleep 1.5")

    loop = threading.Thread(target=short_connections, daemon=True)
    loop.start()
    try:
        row = until_status(world, name, "terminated", timeout=40)
    finally:
        stop.set()
        loop.join(30)
    assert row["termination_reason"] == "inactivity_duration_exceeded"
    events = json.loads(devenv.run("logs", name, "--json").stdout)
    ready = next(when(e["at"]) for e in events if " ready at " in e["message"])
    ended = next(when(e["at"]) for e in events if e["message"].startswith("terminated:"))
    words = [e["message"] for e in events]
    assert not any("user connected" in m or "idle clock restarted" in m for m in words), words
    # The deadline (ready + 4 s), put off by at most the minimum (3 s), and the terminate.
    assert ended - ready < timedelta(seconds=4 + 3 + 3), words


def test_commands_shorter_than_a_second_keep_an_ssh_environment_in_use(
    world: World, tmp_path: Path
) -> None:
    """``ssh NAME true`` every second with min_connection_duration 0 (the default): each
    counts, as on the local backend, so the environment is in use while they run and ends
    a threshold after the last one."""
    devenv = world.devenv
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "inactivity_duration": "3s"}))
    devenv.run("start", str(path))
    running_until = time.monotonic() + 8
    while time.monotonic() < running_until:
        ran = devenv.ssh(name, "true")
        assert ran.returncode == 0, f"{ran.stderr}; {devenv.run('logs', name).stdout}"
        time.sleep(1)
    last = datetime.now(UTC)
    assert world.ps(name)["status"] == "running"
    row = until_status(world, name, "terminated")
    assert row["termination_reason"] == "inactivity_duration_exceeded"
    events = json.loads(devenv.run("logs", name, "--json").stdout)
    words = [e["message"] for e in events]
    assert sum("user connected" in m for m in words) >= 3, words
    ended = next(when(e["at"]) for e in events if e["message"].startswith("terminated:"))
    assert ended >= last + timedelta(seconds=2), "a threshold after the last command"


def test_devenv_stop_wait_ends_it_and_keeps_the_home(world: World, tmp_path: Path) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    wrote = devenv.ssh(name, "echo kept > notes.txt; sleep 600 >/dev/null 2>&1 </dev/null &")
    assert wrote.returncode == 0, wrote.stderr
    account = account_name(name)
    wait_for(lambda: pids_of(account), 10, "the sleep to run")

    devenv.run("stop", name, "--wait")
    row = world.ps(name)
    assert (row["status"], row["termination_reason"]) == ("terminated", "stopped_by_user")
    assert pids_of(account) == []
    found = account_of(name)
    assert found is not None and (found.home / "notes.txt").read_text() == "kept\n"


def test_a_host_key_missing_from_known_hosts_fails_the_start_in_one_line(
    world: World, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    name, path = world.config(tmp_path, known_hosts=str(empty))
    result = world.devenv.run("start", str(path), check=False)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "ssh_config.known_hosts:" in lines[0]
    assert f"ssh-keyscan -p {world.sshd.port} 127.0.0.1 >> {empty}" in lines[0]
    assert account_of(name) is None
    assert until_status(world, name, "failed")["termination_reason"] == "provisioning_failed"


@pytest.fixture(params=["refused", "not ssh"])
def wrong_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A loopback port where no SSH server is: nothing listens, or something else answers
    (a web server, say)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = int(listener.getsockname()[1])
    if request.param == "refused":
        listener.close()
        yield port
        return
    listener.listen()
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_start_on_a_wrong_port_fails_at_once_and_leaves_no_row_alive(
    world: World, tmp_path: Path, wrong_port: int
) -> None:
    """devenv never logged in there, so the host holds nothing of it: the cleanup does not
    retry for ever (it stayed ``terminating`` in plain ``ps``, and ``stop`` said
    ``environment is terminating; nothing changed``)."""
    # Its known_hosts vouches for the port (the key of the host's real sshd), as a user's
    # would after a typo in ssh_config.hosts: the login is tried, and fails.
    known = tmp_path / "known_hosts"
    real = world.sshd.known_hosts.read_text()
    known.write_text(real.replace(f"]:{world.sshd.port} ", f"]:{wrong_port} "))
    assert known.read_text() != real
    name, path = world.config(tmp_path, hosts=[f"127.0.0.1:{wrong_port}"], known_hosts=str(known))
    result = world.devenv.run("start", str(path), check=False)
    assert result.returncode != 0
    print(world.devenv.run("logs", name, check=False).stdout)
    print(result.stderr)
    row = until_status(world, name, "failed", timeout=30)
    assert row["termination_reason"] == "provisioning_failed"
    listed = json.loads(world.devenv.run("ps", "--json").stdout)
    assert name not in [r["name"] for r in listed]
    assert account_of(name) is None


def test_stop_force_abandons_a_cleanup_that_cannot_reach_its_host_and_gc_finishes_it(
    world: World, tmp_path: Path
) -> None:
    """The host went away with the account on it: the stop's cleanup retries for ever
    (``terminating``). ``stop --force`` abandons it, says so, and leaves the account to
    ``devenv gc``, which ends it once the host is back."""
    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    assert account_of(name) is not None
    world.sshd.stop(kill_sessions=True)
    try:
        devenv.run("stop", name)
        until_status(world, name, "terminating")
        again = devenv.run("stop", name, check=False)
        assert again.returncode == 2
        assert "is terminating" in again.stderr
        assert f"`devenv stop --force {name}` abandons it" in again.stderr

        forced = devenv.run("stop", "--force", name, check=False)
        assert forced.returncode == 1, forced
        assert f"devenv-{name}: workflow terminated" in forced.stdout
        assert f"127.0.0.1:{world.sshd.port}" in forced.stderr
        assert "abandoned what could not be ended" in forced.stderr
        assert "devenv gc" in forced.stderr
        assert "Traceback" not in forced.stderr
        rows = json.loads(devenv.run("ps", "--json").stdout)
        assert name not in [row["name"] for row in rows]
        rows = json.loads(devenv.run("ps", "--all", "--json").stdout)
        [row] = [row for row in rows if row["name"] == name]
        assert row["status"] == "terminated"
        assert row["termination_reason"] == "stopped_by_user; then stopped with devenv stop --force"
        assert "stopped with devenv stop --force" in devenv.run("logs", name).stdout
    finally:
        world.sshd.start()
    found = json.loads(devenv.run("gc", "--json").stdout)
    mine = [item for item in found["leftovers"] if item["name"] == name]
    assert [item["status"] for item in mine] == ["orphan"]
    devenv.run("gc", "--yes")
    assert pids_of(account_name(name)) == []
    after = json.loads(devenv.run("gc", "--json").stdout)["leftovers"]
    assert [item for item in after if item["name"] == name] == []


def test_an_ssh_login_shows_the_banner_and_a_fixed_end_reaches_the_terminal(
    world: World, tmp_path: Path
) -> None:
    """The account's login shell prints the banner devenv keeps current; root writes the
    warning before max_duration into the user's terminal, like wall."""
    devenv = world.devenv
    name, path = world.config(tmp_path)
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "max_duration": "40s", "warn_before": "25s"}))
    devenv.run("start", str(path))
    banner = host_dir_of(world.sshd) / "banners" / account_name(name)
    wait_for(banner.exists, 20, "the banner on the host")
    plain = devenv.ssh(name, "echo plain")
    assert plain.stdout == "plain\n"  # commands and scripts never see the banner
    session = devenv.open_session(name)
    try:
        session.expect(f"devenv: this is '{name}' (backend ssh).")
        session.expect("even in use (max_duration 40s).")
        session.send("echo shell-$((6*7))\n")
        session.expect("shell-42")
        text = session.expect_terminal_warning(name, timeout=40)
    finally:
        session.kill()
    assert text.count("*** devenv:") == 1 and text.count("devenv: this is") == 1
    logs = devenv.run("logs", name).stdout
    assert "warning written to 1 open terminal" in logs
    devenv.run("stop", name, "--wait")


def test_sharing_an_ssh_environment_lets_the_colleague_key_in_and_out(
    world: World, tmp_path: Path
) -> None:
    """`devenv share` puts the member's key in the account's authorized_keys (the owner's
    and the internal line kept) before it returns; `unshare` takes it out again."""
    import subprocess

    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    key = tmp_path / "bob_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    devenv.run("users", "add", "bob", "--key", f"{key}.pub")

    # bob's own ssh config: devenv's entry for the environment, with bob's key only.
    entry = (devenv.home / "ssh" / "hosts" / f"{name}.conf").read_text()
    bob_config = tmp_path / "bob.conf"
    bob_config.write_text(
        "\n".join(
            f"    IdentityFile {key}" if line.strip().startswith("IdentityFile") else line
            for line in entry.splitlines()
        )
        + "\n"
    )

    def as_bob() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(bob_config), "-o", "BatchMode=yes", name, "id -un"],
            capture_output=True,
            text=True,
            timeout=30,
        )

    assert as_bob().returncode == 255, "not shared yet"
    shared = devenv.run("share", name, "--with", "bob")
    assert shared.stdout.strip() == f"devenv-{name}: shared with bob"
    # Once `devenv share` has returned, bob's key logs in: no wait.
    logged_in = as_bob()
    assert logged_in.returncode == 0, logged_in.stderr
    assert logged_in.stdout.strip() == account_name(name)
    assert devenv.ssh(name, "true").returncode == 0, "the owner's key still works"
    devenv.run("unshare", name, "--with", "bob")
    wait_for(lambda: as_bob().returncode == 255, 20, "bob's key refused again")
    assert world.ps(name)["status"] == "running", "the presence agent's line was kept"
    devenv.run("stop", name, "--wait")
    devenv.run("users", "remove", "bob")


def dead(pid: int) -> bool:
    """Gone, or a zombie its parent (`serving`, in this process) has not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


def test_after_a_worker_is_killed_its_successor_sees_ssh_users_again(
    world: World, tmp_path: Path
) -> None:
    """An ssh environment's monitor runs on the watch queue of the worker that started it,
    with no heartbeat of its own. `kill -9` that worker and start another: the successor
    ends the dead worker's lease at once (not after its 60 s), and the environment starts
    its monitor on the successor, which sees the next user."""
    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    assert world.ps(name)["activity"] == "idle"
    pidfile = devenv.home / "server.pid"
    victim = int(pidfile.read_text().split()[0])
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: dead(victim), 10, "the killed server to go")
    devenv.start_server()  # `serving` stops it at the end, by its pidfile
    restarted = time.monotonic()

    session = devenv.open_session(name)
    session.send("echo again-$((6*7))\n")
    session.expect("again-42")
    until_activity(world, name, "active", timeout=40)
    assert time.monotonic() - restarted < 45, "moved at once, not after the lease's 60 s"
    logs = devenv.run("logs", name).stdout
    assert "is gone; monitor restarting" in logs, logs
    assert session.close() == 0
    until_activity(world, name, "idle", timeout=20)
    devenv.run("stop", name, "--wait")
