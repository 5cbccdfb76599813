"""The ssh backend against Debian's real sshd on loopback, driven by the real OpenSSH client.

The admin is root (the harness's admin key, its known_hosts). Each test provisions
environments as devenv does, logs in as users do (``ssh -F`` with the config devenv
writes) and asserts what a user relies on: the account is theirs alone, presence is
seen, termination leaves nothing running and no way back in.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from devenv.backends.base import ProvisioningError
from devenv.backends.presence_stream import PresenceStreamEndedError
from devenv.backends.ssh.admin import HostDownError
from devenv.backends.ssh.backend import SshBackend, SshInstanceData
from devenv.backends.ssh.host_setup import AGENT_FILE, USER_RC, account_name
from devenv.backends.ssh.used_hosts import UsedHost, hosts_file, remember_host
from devenv.keys import ensure_keypair
from devenv.models.messages import PROVISIONING_ERROR, TerminateInput
from devenv.models.state import PresenceReport
from tests.ssh.conftest import (
    Lab,
    account_of,
    host_dir_of,
    host_key_fields,
    make_settings,
    pids_of,
    run,
    shadow,
    ssh_section,
    unique_name,
    until,
)
from tests.support.sshd import Sshd, free_port, make_keypair, running_sshd, unix_account

REACTION_LIMIT = 1.0
"""The agent reports a logout within this many seconds (as in the agent's own tests)."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def assert_provisioning_error(error: BaseException, *parts: str) -> None:
    """A ProvisioningError (the workflow stops retrying) whose one line says ``parts``."""
    assert isinstance(error, ProvisioningError), repr(error)
    assert isinstance(error, ApplicationError) and error.type == PROVISIONING_ERROR
    assert error.non_retryable
    message = error.message
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def nothing_created(sshd: Sshd, name: str) -> None:
    assert account_of(name) is None, "no account may be created"
    records = host_dir_of(sshd) / "accounts"
    assert not (records / f"{account_name(name)}.token").exists(), "no record may be written"


# --- provision ---------------------------------------------------------------------------


async def test_provision_creates_an_account_of_its_own_and_pins_the_verified_host_key(
    lab: Lab,
) -> None:
    env = await lab.provision(min_connection_duration=3)
    info = env.info
    assert (info.backend, info.host, info.port) == ("ssh", "127.0.0.1", lab.sshd.port)
    assert info.username == account_name(env.name) == f"dv-{env.name}"
    assert info.host_public_key == host_key_fields(lab.sshd), "the key the admin login verified"
    account = account_of(env.name)
    assert account is not None and str(account.home) == info.folder
    assert env.home.stat().st_uid == account.uid and mode(env.home) == 0o700
    data = SshInstanceData.of(info)
    assert (data.account, data.admin_user, data.port) == (env.account, "root", lab.sshd.port)

    keys = (env.home / ".ssh" / "authorized_keys").read_text().splitlines()
    user_key = (lab.user_key.with_name("id_ed25519.pub")).read_text().split()[:2]
    assert keys[0] == " ".join(user_key)
    agent = host_dir_of(lab.sshd) / "agent" / AGENT_FILE
    assert keys[1].startswith(
        f'restrict,command="/usr/bin/python3 {agent} stream --user {env.account} '
        '--min-connection-duration 3" ssh-ed25519 '
    )
    assert len(keys) == 2
    rc = env.home / ".ssh" / "rc"
    assert rc.read_text() == USER_RC and rc.stat().st_uid == account.uid, "written as the account"
    assert agent.stat().st_uid == 0 and mode(agent) == 0o644 and mode(agent.parent) == 0o755
    record = host_dir_of(lab.sshd) / "accounts" / f"{env.account}.token"
    assert record.read_text() == f"{env.request.instance_token} active\n"
    assert mode(record.parent) == 0o700 and mode(record) == 0o600


async def test_provision_is_idempotent_per_token_and_a_taken_name_is_refused(lab: Lab) -> None:
    request = lab.request()
    first = await lab.backend.provision(request)
    again = await lab.backend.provision(request)
    assert again == first
    name = request.spec.name
    passwd = (await run("getent", "passwd")).stdout.decode()
    assert [line for line in passwd.splitlines() if line.startswith(f"{first.username}:")]
    assert len([line for line in passwd.splitlines() if f"devenv {name}" in line]) == 1
    records = list((host_dir_of(lab.sshd) / "accounts").glob(f"{first.username}.token"))
    assert [r.read_text() for r in records] == [f"{request.instance_token} active\n"]

    other = lab.request(name, token="another-token")
    with pytest.raises(ProvisioningError) as refused:
        await lab.backend.provision(other)
    assert_provisioning_error(refused.value, "name:", f"named {name!r}", "choose another name")
    assert await lab.backend.is_alive(first), "the running environment is untouched"


async def test_an_account_devenv_did_not_create_is_never_taken(lab: Lab) -> None:
    name = unique_name()
    lab.names.add(name)
    assert (await run("useradd", "-M", account_name(name))).returncode == 0
    with pytest.raises(ProvisioningError) as refused:
        await lab.backend.provision(lab.request(name))
    assert_provisioning_error(refused.value, "did not create", "choose another")


# --- the user's side ------------------------------------------------------------------


async def test_the_user_logs_in_with_the_ssh_config_devenv_writes(lab: Lab, tmp_path: Path) -> None:
    env = await lab.provision()
    who = await env.ssh("id -un; pwd; echo $HOME")
    assert who.returncode == 0, who.stderr
    assert who.stdout.decode().split() == [env.account, str(env.home), str(env.home)]

    shell = await run(*env.ssh_argv("-tt", env.name), input=b"echo tty=$(tty)\nexit\n")
    assert shell.returncode == 0, shell.stderr
    assert b"tty=/dev/pts/" in shell.stdout

    local = tmp_path / "up.txt"
    local.write_text("over sftp\n")
    sftp = await run(
        "sftp", "-F", env.config, "-o", "BatchMode=yes", "-b", "-", env.name,
        input=f"put {local} up.txt\nget up.txt {tmp_path / 'down.txt'}\n".encode(),
    )  # fmt: skip
    assert sftp.returncode == 0, sftp.stderr
    assert (env.home / "up.txt").read_text() == "over sftp\n"
    assert (tmp_path / "down.txt").read_text() == "over sftp\n"
    owner = account_of(env.name)
    assert owner is not None and (env.home / "up.txt").stat().st_uid == owner.uid


async def test_presence_reports_a_user_then_nobody(lab: Lab) -> None:
    env = await lab.provision()
    watch = lab.presence(env)
    try:
        first = await watch.wait(lambda r: True, "the first report")
        assert watch.reports[first][1].connections == 0, "devenv's own connection never counts"
        client = await asyncio.create_subprocess_exec(
            *env.ssh_argv(env.name, "sleep", "60"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            present = await watch.wait(lambda r: r.connections == 1, "the user to count")
            report = watch.reports[present][1]
            assert [s.kind for s in report.sessions] == ["exec"]
        finally:
            client.kill()
            await client.wait()
        gone_at = asyncio.get_running_loop().time()
        left = await watch.wait(lambda r: r.connections == 0, "the user to go", after=present)
        assert watch.reports[left][0] - gone_at < REACTION_LIMIT
    finally:
        await watch.close()
    idle_from = datetime.now(UTC)
    probe = await lab.backend.probe(env.info)
    assert (probe.connections, probe.waiting) == (0, 0)
    assert probe.last_change < idle_from, (
        "a probe never claims a user was connected until now: the idle clock would "
        "restart at every probe and the environment never end"
    )


async def test_the_internal_key_runs_nothing_but_the_agent(lab: Lab) -> None:
    env = await lab.provision()
    for command in (["cat", "/etc/passwd"], ["-t", "bash", "-i"]):
        argv = lab.sshd.ssh_argv(env.account, lab.settings.internal_key, *command)
        client = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        assert client.stdout is not None
        try:
            line = await asyncio.wait_for(client.stdout.readline(), 15)
        finally:
            client.kill()
            await client.wait()
        report = PresenceReport.model_validate_json(line)
        assert report.connections == 0
        keys = {"connections", "waiting", "last_change", "sessions", "jobs"}
        assert set(json.loads(line)) == keys


# --- terminate ---------------------------------------------------------------------------


async def test_terminate_ends_every_process_locks_the_account_and_keeps_the_home(
    lab: Lab,
) -> None:
    env = await lab.provision()
    escape = await env.ssh(
        "echo kept > notes.txt; setsid nohup env -i sleep 600 >/dev/null 2>&1 </dev/null &"
    )
    assert escape.returncode == 0, escape.stderr
    await until(lambda: pids_of(env.account), "the escaped sleep to run")
    session = await asyncio.create_subprocess_exec(
        *env.ssh_argv("-tt", env.name), stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip

    try:
        await lab.backend.terminate(env.terminate_request())
        assert pids_of(env.account) == [], "no process of the account may remain"
        assert await asyncio.wait_for(session.wait(), 10) != 0, "the open session is cut"
    finally:
        if session.returncode is None:
            session.kill()
            await session.wait()

    refused = await env.ssh("true")
    assert refused.returncode == 255 and b"Permission denied" in refused.stderr
    entry = shadow(env.account)
    assert entry[1].startswith("!") and entry[7] == "1", "locked and expired"
    assert account_of(env.name) is not None, "the account stays, so the home keeps its owner"
    assert (env.home / "notes.txt").read_text() == "kept\n"
    assert not (env.home / ".ssh" / "authorized_keys").exists(), "keys revoked"
    assert not await lab.backend.is_alive(env.info)

    await lab.backend.terminate(env.terminate_request())  # again: already gone, succeeds
    await lab.backend.terminate(env.terminate_request(with_instance=False))
    with pytest.raises(ProvisioningError) as never_again:
        await lab.backend.provision(env.request)
    assert_provisioning_error(never_again.value, "was terminated", "not started again")
    assert pids_of(env.account) == []


async def test_terminate_with_purge_removes_the_account_and_its_home(lab: Lab) -> None:
    kept = await lab.provision()
    await lab.backend.terminate(kept.terminate_request())
    assert kept.home.exists()
    await lab.backend.terminate(kept.terminate_request(purge=True))  # `devenv stop --purge`
    assert account_of(kept.name) is None and not kept.home.exists()

    purging = await lab.provision(section=ssh_section(lab.sshd, purge_workspace=True))
    await lab.backend.terminate(purging.terminate_request())
    assert account_of(purging.name) is None and not purging.home.exists()


async def test_a_failed_provision_is_cleaned_up_by_token_alone(lab: Lab) -> None:
    env = await lab.provision()
    await env.ssh("sleep 600 >/dev/null 2>&1 </dev/null &")
    await lab.backend.terminate(env.terminate_request(with_instance=False))
    assert pids_of(env.account) == []
    assert shadow(env.account)[1].startswith("!")

    never_made = lab.request()
    await lab.backend.terminate(
        env.terminate_request(with_instance=False).model_copy(
            update={"instance_token": never_made.instance_token, "spec": never_made.spec}
        )
    )
    assert account_of(never_made.spec.name) is None


async def test_a_new_environment_of_the_same_name_reuses_the_kept_home(lab: Lab) -> None:
    first = await lab.provision()
    await first.ssh("echo from-the-first > notes.txt")
    await lab.backend.terminate(first.terminate_request())
    second = await lab.provision(first.name)
    assert second.home == first.home
    notes = await second.ssh("cat notes.txt")
    assert notes.stdout == b"from-the-first\n"


async def test_two_environments_on_one_host_end_independently(lab: Lab) -> None:
    one, two = await asyncio.gather(lab.provision(), lab.provision())
    assert one.account != two.account and one.home != two.home
    for env in (one, two):
        started = await env.ssh("setsid sleep 600 >/dev/null 2>&1 </dev/null &")
        assert started.returncode == 0
    peek = await one.ssh(f"ls {two.home}")
    assert peek.returncode != 0, "one environment cannot read another's home"
    await until(lambda: pids_of(one.account) and pids_of(two.account), "both sleeps")

    await lab.backend.terminate(one.terminate_request())
    assert pids_of(one.account) == []
    assert pids_of(two.account), "the other environment's processes keep running"
    assert await lab.backend.is_alive(two.info)
    still = await two.ssh("echo still here")
    assert still.stdout == b"still here\n"
    await lab.backend.terminate(two.terminate_request())
    assert pids_of(two.account) == []


# --- misconfiguration: one line, nothing created -----------------------------------------


async def test_a_host_key_not_in_known_hosts_is_refused_with_the_keyscan_hint(
    lab: Lab, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    request = lab.request(section=ssh_section(lab.sshd, known_hosts=str(empty)))
    with pytest.raises(ProvisioningError) as refused:
        await lab.backend.provision(request)
    port = lab.sshd.port
    assert_provisioning_error(
        refused.value,
        "ssh_config.known_hosts:",
        "never trusted on first use",
        f"ssh-keyscan -p {port} 127.0.0.1 >> {empty}",
    )
    nothing_created(lab.sshd, request.spec.name)

    other = make_keypair(tmp_path / "other_host_key")
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {' '.join(other.line.split()[:2])}\n")
    request = lab.request(section=ssh_section(lab.sshd, known_hosts=str(wrong)))
    with pytest.raises(ProvisioningError) as mismatch:
        await lab.backend.provision(request)
    assert_provisioning_error(
        mismatch.value, "ssh_config.known_hosts:", "does not match", "ssh-keygen -R"
    )
    nothing_created(lab.sshd, request.spec.name)


async def test_a_wrong_admin_key_is_refused_with_its_own_message(lab: Lab, tmp_path: Path) -> None:
    stranger = make_keypair(tmp_path / "stranger")
    request = lab.request(section=ssh_section(lab.sshd, identity_file=str(stranger.private)))
    with pytest.raises(ProvisioningError) as refused:
        await lab.backend.provision(request)
    assert_provisioning_error(
        refused.value, "ssh_config.identity_file:", "refused the admin login 'root'", "ssh-copy-id"
    )
    nothing_created(lab.sshd, request.spec.name)


async def test_an_admin_without_sudo_gets_the_sudo_message(lab: Lab) -> None:
    with unix_account() as admin:
        admin.authorize(lab.sshd.admin_key.line)
        request = lab.request(section=ssh_section(lab.sshd, user=admin.name))
        with pytest.raises(ProvisioningError) as refused:
            await lab.backend.provision(request)
    assert_provisioning_error(refused.value, "ssh_config.user:", admin.name, "sudo", "user: root")
    nothing_created(lab.sshd, request.spec.name)


async def test_a_host_that_is_down_is_retried_and_skipped_for_one_that_answers(
    lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    down = f"127.0.0.1:{port}"
    known = tmp_path / "known_hosts"  # both hosts pinned: the down one is known, just down
    known.write_text(
        lab.sshd.known_hosts.read_text() + f"[127.0.0.1]:{port} {host_key_fields(lab.sshd)}\n"
    )
    request = lab.request(section=ssh_section(lab.sshd, hosts=[down], known_hosts=str(known)))
    with pytest.raises(HostDownError) as retryable:
        await lab.backend.provision(request)
    assert not isinstance(retryable.value, ApplicationError), "plain: the workflow retries it"
    assert f"ssh_config.hosts: {down} does not answer (connection refused)" in str(retryable.value)
    nothing_created(lab.sshd, request.spec.name)

    both = ssh_section(lab.sshd, hosts=[down, f"127.0.0.1:{lab.sshd.port}"], known_hosts=str(known))
    caplog.clear()
    env = await lab.provision(section=both)
    assert env.info.port == lab.sshd.port
    assert f"ssh: {down} skipped: ssh_config.hosts: {down} does not answer" in caplog.text
    # By token alone (a failed start): devenv never logged in to the down host (it is not
    # in HOSTS_FILE), so it holds nothing of it and is skipped; the host that answers is
    # cleaned. (It used to be retried for ever: a typo'd port stuck in `terminating`.)
    caplog.clear()
    await lab.backend.terminate(env.terminate_request(with_instance=False))
    assert f"ssh: {down} not checked for {env.account}" in caplog.text
    assert "devenv never logged in there" in caplog.text
    assert pids_of(env.account) == [] and shadow(env.account)[1].startswith("!")
    # Once devenv has logged in there, a down host may hold it: retried, never skipped.
    recorded = hosts_file(lab.settings)
    before = recorded.read_bytes()
    remember_host(
        lab.settings,
        UsedHost(
            host="127.0.0.1",
            port=port,
            admin_user="root",
            identity_file=str(lab.sshd.admin_key.private),
            known_hosts=str(known),
            host_dir=lab.backend.host_dir,
        ),
    )
    try:
        with pytest.raises(HostDownError):
            await lab.backend.terminate(env.terminate_request(with_instance=False))
    finally:
        recorded.write_bytes(before)  # the lab's other tests know only its real host
    await lab.backend.terminate(env.terminate_request())  # its own host only


async def test_terminate_on_a_host_that_is_down_is_retried_never_success(
    tmp_path: Path,
) -> None:
    """Also: is_alive says True for a host that does not answer; sshd restarted, the
    presence stream comes back and users log in again."""
    with running_sshd() as own:
        settings = make_settings(tmp_path / "home")
        backend = SshBackend(settings, host_dir=str(host_dir_of(own)), connect_timeout=3.0)
        lab = Lab(own, settings, backend, tmp_path / "user" / "id_ed25519")
        ensure_keypair(lab.user_key)
        try:
            env = await lab.provision()
            watch = lab.presence(env)
            try:
                await watch.wait(lambda r: r.connections == 0, "the first report")
                own.restart(kill_sessions=True)
                await until(lambda: watch.error is not None, "the stream to break")
                assert isinstance(watch.error, (PresenceStreamEndedError, OSError, Exception))
            finally:
                await watch.close()
            assert await backend.is_alive(env.info)
            again = lab.presence(env)
            try:
                await again.wait(lambda r: r.connections == 0, "a new stream after the restart")
            finally:
                await again.close()
            assert (await env.ssh("true")).returncode == 0, "users log in again"

            own.stop()
            assert await backend.is_alive(env.info), "a host that does not answer is not gone"
            with pytest.raises(HostDownError):
                await backend.terminate(env.terminate_request())
            with pytest.raises(HostDownError):
                await backend.terminate(env.terminate_request(with_instance=False))
            own.start()
            await backend.terminate(env.terminate_request())
            assert not await backend.is_alive(env.info)
        finally:
            lab.cleanup()


@pytest.fixture(autouse=True)
def no_leftover_processes(lab: Lab) -> Iterator[None]:
    """Every environment a test ended has nothing left running (checked after the test)."""
    yield
    for name in lab.names:
        account = account_of(name)
        if account is not None and shadow(account.name)[1].startswith("!"):
            assert pids_of(account.name) == [], f"{account.name} was terminated yet runs"


async def test_an_account_sshd_will_not_let_in_fails_the_start_and_is_cleaned_up(
    tmp_path: Path,
) -> None:
    """Ready means the account's key login works: checked before anyone is told so."""
    with running_sshd() as own:
        with own.config_path.open("a") as config:
            config.write("DenyUsers dv-*\n")
        own.restart()
        settings = make_settings(tmp_path / "home")
        backend = SshBackend(settings, host_dir=str(host_dir_of(own)), connect_timeout=3.0)
        lab = Lab(own, settings, backend, tmp_path / "user" / "id_ed25519")
        ensure_keypair(lab.user_key)
        try:
            request = lab.request()
            with pytest.raises(ProvisioningError) as refused:
                await backend.provision(request)
            assert_provisioning_error(refused.value, "refuses the new account", "AllowUsers")
            # What the workflow does next: terminate by token, without an instance.
            env_account = account_name(request.spec.name)
            await backend.terminate(
                TerminateInput(
                    workflow_id=request.workflow_id,
                    instance_token=request.instance_token,
                    spec=request.spec,
                )
            )
            assert shadow(env_account)[1].startswith("!") and pids_of(env_account) == []
        finally:
            lab.cleanup()
