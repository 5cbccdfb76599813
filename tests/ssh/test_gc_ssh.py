"""`devenv gc` and the ssh backend: the accounts it left on the hosts it used.

Against Debian's real sshd on loopback, as root. The backend's own listing first (which
hosts, which records, whose), then the real `devenv gc` CLI with a private devenv
server: an account whose workflow is gone is terminated, a live one never.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from devenv.backends.base import Leftover, LeftoversIncompleteError
from devenv.backends.ssh.backend import SshBackend
from devenv.backends.ssh.host_setup import account_name, deployment_of
from devenv.backends.ssh.used_hosts import HOSTS_FILE
from devenv.keys import ensure_keypair, internal_public_key, public_key_line
from devenv.models.messages import ProvisionInput
from devenv.models.state import EnvSpec
from tests.e2e.harness import Devenv, serving
from tests.ssh.conftest import (
    Lab,
    account_of,
    host_dir_of,
    make_settings,
    pids_of,
    remove_environment_account,
    shadow,
    ssh_section,
    unique_name,
)
from tests.support.sshd import Sshd, free_port, running_sshd


def by_token(found: list[Leftover]) -> dict[str | None, Leftover]:
    return {item.instance_token: item for item in found}


def record_of(sshd: Sshd, account: str) -> str:
    return (host_dir_of(sshd) / "accounts" / f"{account}.token").read_text()


def add_down_host(home: Path, sshd: Sshd) -> int:
    """A host in HOSTS_FILE where nothing listens (on loopback); returns its port."""
    path = home / HOSTS_FILE
    doc = json.loads(path.read_text())
    port = free_port()
    doc["hosts"].append({**doc["hosts"][0], "port": port})
    path.write_text(json.dumps(doc))
    return port


# --- the backend's listing ---------------------------------------------------------------


async def test_leftovers_are_this_deployments_active_accounts_on_the_hosts_it_used(
    lab: Lab, tmp_path: Path
) -> None:
    backend = lab.backend
    live = await lab.provision()
    old = await lab.provision()
    ended = await lab.provision()
    await backend.terminate(ended.terminate_request())
    port = lab.sshd.port

    # The hosts it used: paths, never a key.
    hosts_file = lab.settings.home / HOSTS_FILE
    hosts = json.loads(hosts_file.read_text())["hosts"]
    assert hosts == [
        {
            "host": "127.0.0.1",
            "port": port,
            "admin_user": "root",
            "identity_file": str(lab.sshd.admin_key.private),
            "known_hosts": str(lab.sshd.known_hosts),
            "host_dir": str(host_dir_of(lab.sshd)),
        }
    ]
    assert "PRIVATE KEY" not in hosts_file.read_text()
    assert hosts_file.stat().st_mode & 0o077 == 0

    # Beside each token record: whose it is. The record itself keeps its two fields.
    ours = deployment_of(internal_public_key(lab.settings))
    accounts = host_dir_of(lab.sshd) / "accounts"
    assert (accounts / f"{live.account}.workflow").read_text() == (
        f"devenv-{live.name} {live.name} {ours}\n"
    )
    assert record_of(lab.sshd, live.account) == f"{live.request.instance_token} active\n"
    # An account recorded before devenv said whose it was: read, but never an orphan.
    (accounts / f"{old.account}.workflow").unlink()

    # Another deployment (another internal key) on the same host: not ours to list.
    stranger = SshBackend(
        make_settings(tmp_path / "other-home"), host_dir=str(host_dir_of(lab.sshd))
    )
    theirs = lab.request()
    await stranger.provision(theirs)

    found = by_token(await backend.leftovers())
    item = found[live.request.instance_token]
    assert item.model_dump(exclude={"data"}) == {
        "backend": "ssh",
        "id": f"{live.account}@127.0.0.1",
        "where": f"127.0.0.1:{port}",
        "name": live.name,
        "workflow_id": f"devenv-{live.name}",
        "instance_token": live.request.instance_token,
        "detail": f"account {live.account}",
    }
    legacy = found[old.request.instance_token]
    assert (legacy.name, legacy.workflow_id) == (old.name, None)
    assert "older devenv" in legacy.detail
    assert ended.request.instance_token not in found, "an ended record is no leftover"
    assert theirs.instance_token not in found, "another deployment's account is not ours"
    assert theirs.instance_token in by_token(await stranger.leftovers())

    # Removal ends the account as terminate does (home kept), and is idempotent.
    await backend.remove_leftover(item)
    assert record_of(lab.sshd, live.account) == f"{live.request.instance_token} ended\n"
    assert shadow(live.account)[1].startswith("!")
    assert pids_of(live.account) == []
    refused = await live.ssh("true")
    assert refused.returncode == 255
    assert account_of(live.name) is not None, "the home is kept"
    await backend.remove_leftover(item)
    assert live.request.instance_token not in by_token(await backend.leftovers())

    # A host that does not answer hides nothing of the others.
    saved = hosts_file.read_text()
    try:
        down = add_down_host(lab.settings.home, lab.sshd)
        with pytest.raises(LeftoversIncompleteError) as incomplete:
            await backend.leftovers()
        assert old.request.instance_token in by_token(incomplete.value.found)
        assert len(incomplete.value.problems) == 1
        assert incomplete.value.problems[0].startswith(f"127.0.0.1:{down}: ")
    finally:
        hosts_file.write_text(saved)


# --- `devenv gc` end to end ----------------------------------------------------------------


class World:
    def __init__(self, devenv: Devenv, sshd: Sshd) -> None:
        self.devenv = devenv
        self.sshd = sshd
        self.names: set[str] = set()

    def name(self) -> str:
        name = unique_name("sshg")
        self.names.add(name)
        return name


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_sshd() as sshd:
        devenv = Devenv(
            tmp_path_factory.mktemp("ssh-gc"),
            extra_env={"DEVENV_SSH_HOST_DIR": str(host_dir_of(sshd)), "DEVENV_API_PORT": "0"},
        )
        made = World(devenv, sshd)
        try:
            with serving(devenv):
                yield made
        finally:
            for name in made.names:
                remove_environment_account(name)


@pytest.mark.e2e
async def test_devenv_gc_terminates_an_orphan_account_and_never_a_live_one(
    world: World, tmp_path: Path
) -> None:
    devenv, sshd = world.devenv, world.sshd
    live = world.name()
    config = tmp_path / "live.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "type": "dev-environment",
                "name": live,
                "backend": "ssh",
                "ssh_config": ssh_section(sshd),
                "inactivity_duration": "1h",
            }
        )
    )
    devenv.run("start", str(config))

    # An orphan: an account this deployment's backend created for a workflow that is gone.
    orphan = world.name()
    backend = SshBackend(make_settings(devenv.home), host_dir=str(host_dir_of(sshd)))
    request = ProvisionInput(
        workflow_id=f"devenv-{orphan}",
        instance_token=f"t{secrets.token_hex(8)}",
        spec=EnvSpec(
            name=orphan,
            backend="ssh",
            user_public_key=public_key_line(ensure_keypair(tmp_path / "key")),
            backend_config=ssh_section(sshd),
        ),
    )
    await backend.provision(request)
    orphan_account, live_account = account_name(orphan), account_name(live)

    report = json.loads(devenv.run("gc", "--json").stdout)
    assert (report["removed"], report["warnings"]) == ([], [])
    rows = {item["name"]: item for item in report["leftovers"]}
    assert set(rows) == {live, orphan}
    assert rows[orphan]["status"] == "orphan" and rows[orphan]["reason"] == "no such environment"
    assert rows[orphan]["id"] == f"{orphan_account}@127.0.0.1"
    assert rows[orphan]["where"] == f"127.0.0.1:{sshd.port}"
    assert rows[live]["status"] == "live" and rows[live]["reason"] == "its environment is running"

    # A host that does not answer is one warning line; the others are still listed.
    hosts_file = devenv.home / HOSTS_FILE
    saved = hosts_file.read_text()
    try:
        down = add_down_host(devenv.home, sshd)
        listed = devenv.run("gc")
    finally:
        hosts_file.write_text(saved)
    warnings = [line for line in listed.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"ssh: not checked: 127.0.0.1:{down}: " in warnings[0]
    assert any(line.split()[3:5] == [orphan, "orphan"] for line in listed.stdout.splitlines())
    assert listed.stdout.splitlines()[-1] == "run `devenv gc --yes` to terminate 1 orphan"
    assert record_of(sshd, orphan_account).endswith(" active\n"), "nothing removed yet"

    removed = devenv.run("gc", "--yes")
    assert (
        f"terminated ssh {orphan_account}@127.0.0.1 on 127.0.0.1:{sshd.port} ({orphan})"
        in removed.stdout.splitlines()
    ), removed.stdout
    assert "Terminated 1 of 1 orphan." in removed.stdout
    assert record_of(sshd, orphan_account) == f"{request.instance_token} ended\n"
    assert shadow(orphan_account)[1].startswith("!")

    assert record_of(sshd, live_account).endswith(" active\n")
    assert devenv.ps(live)["status"] == "running"
    answer = devenv.ssh(live, "echo still-here")
    assert (answer.returncode, answer.stdout.strip()) == (0, "still-here"), answer.stderr
    after = json.loads(devenv.run("gc", "--json").stdout)
    assert [(i["name"], i["status"]) for i in after["leftovers"]] == [(live, "live")]
