"""Infrastructure is the admin's, environments are the users' (issue 19, findings 1 and 2).

A real `devenv server` with its HTTP API, a real sshd on loopback that its worker
administers as root, the local admin and alice (a second user, not an admin, with
her own SSH key). Alice plays the attacks over HTTP: naming the server's files
(the admin token, /etc/shadow) or its admin key and hosts in a configuration. She
gets one 403 line naming the admin-only keys, the same whether a path exists or not,
and nothing starts. What she may do instead: name a host pool the admin registered
with `devenv hosts add`, and log in to the environment it gives her with her own key.
And no message ever quotes a key file: a secret planted as the first line of an
admin's known_hosts or identity file is in no answer, event, history, memo or log.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devenv.backends.ssh.host_setup import account_name
from tests.api.conftest import Api, _answers, _local_admin
from tests.e2e.harness import Devenv, free_port, serving, wait_for
from tests.security.test_secrets import history_text
from tests.ssh.conftest import account_of, host_dir_of, remove_environment_account
from tests.support.sshd import Sshd, running_sshd

pytestmark = pytest.mark.e2e

ADMIN_ONLY_LINE = (
    ": admin-only (they name hosts and files of the server); name a host pool the server's "
    "admin registered instead: ssh_config: {pool: NAME} (`devenv hosts list` on the server "
    "shows them)"
)


@dataclass
class Team:
    """The API world, the sshd its ssh environments live on, and names to clean up."""

    api: Api
    sshd: Sshd
    names: set[str]

    @property
    def world(self) -> Devenv:
        return self.api.world

    def name(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        self.names.add(name)
        return name

    def direct_section(self, **overrides: Any) -> dict[str, Any]:
        """The keys that name the server's files and hosts, pointing at the real sshd."""
        return {
            "hosts": [f"127.0.0.1:{self.sshd.port}"],
            "identity_file": str(self.sshd.admin_key.private),
            "known_hosts": str(self.sshd.known_hosts),
            **overrides,
        }

    def post(self, user: str, name: str, section: dict[str, Any], **query: str) -> Any:
        body = {"type": "dev-environment", "name": name, "backend": "ssh", "ssh_config": section}
        with self.api.client(user) as http:
            return http.post("/environments", json=body, params=query)

    def events(self, user: str, name: str) -> list[str]:
        with self.api.client(user) as http:
            answer = http.get(f"/environments/{name}/events")
        assert answer.status_code == 200, answer.text
        return [event["message"] for event in answer.json()]


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Team]:
    root = tmp_path_factory.mktemp("team")
    port = free_port()
    names: set[str] = set()
    with running_sshd() as sshd:
        world = Devenv(
            root,
            extra_env={
                "DEVENV_API_PORT": str(port),
                "DEVENV_SSH_HOST_DIR": str(host_dir_of(sshd)),
            },
        )
        try:
            with serving(world):
                url = f"http://127.0.0.1:{port}"
                wait_for(lambda: _answers(url), 30, "the HTTP API")
                api = Api(world=world, url=url)
                api.tokens["admin"] = world.run("token").stdout.strip()
                api.admin = _local_admin(world)
                key = root / "alice_ed25519"
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", str(key)],
                    check=True,
                )
                added = world.run("users", "add", "alice", "--key", f"{key}.pub")
                api.tokens["alice"] = added.stdout.strip()
                yield Team(api, sshd, names)
        finally:
            for name in names:
                remove_environment_account(name)


def refused_line(answer: Any) -> str:
    assert answer.status_code == 403, answer.text
    assert answer.headers["X-Devenv-Error"] == "NotAllowedError"
    line = answer.json()["error"]
    assert isinstance(line, str) and "\n" not in line
    return str(line)


def test_a_user_cannot_make_the_server_read_its_files(team: Team) -> None:
    """Finding 1: alice named the admin token file as known_hosts and got it back in the
    events (`Invalid known hosts entry: devenv_...`); /etc/shadow's first line likewise.
    Now: 403 before anything reads the file, the same line for any path."""
    admin_token = team.api.tokens["admin"]
    token_file = team.world.home / "keys" / "api-token"
    assert token_file.read_text().strip() == admin_token
    answers = {}
    for path in (str(token_file), "/etc/shadow", "/nonexistent/x", "/root/.ssh/x"):
        name = team.name("pk")
        section = {
            "hosts": ["127.0.0.1:1"],
            "identity_file": str(team.sshd.admin_key.private),
            "known_hosts": path,
        }
        answer = team.post("alice", name, section)
        answers[path] = refused_line(answer)
        assert admin_token not in answer.text
        with team.api.client("alice") as http:
            assert http.get(f"/environments/{name}").status_code == 404, "nothing started"
    lines = set(answers.values())
    assert len(lines) == 1, f"the answer tells which paths exist: {answers}"
    assert lines == {
        "ssh_config.hosts, ssh_config.identity_file, ssh_config.known_hosts" + ADMIN_ONLY_LINE
    }
    shadow_root = Path("/etc/shadow").read_text().splitlines()[0]
    log = team.api.server_log()
    assert admin_token not in log and shadow_root not in log


def test_a_user_cannot_choose_the_admin_key_or_the_host(team: Team) -> None:
    """Finding 2: alice chose the admin's private key and a host pinned in the server's
    known_hosts, and got an account made there as root. Now each key alone is refused."""
    for key, value in (
        ("identity_file", str(team.sshd.admin_key.private)),
        ("known_hosts", str(team.sshd.known_hosts)),
        ("hosts", [f"127.0.0.1:{team.sshd.port}"]),
        ("user", "root"),
        ("port", team.sshd.port),
    ):
        name = team.name("pick")
        everything = team.post("alice", name, team.direct_section())
        assert refused_line(everything).startswith(
            "ssh_config.hosts, ssh_config.identity_file, ssh_config.known_hosts: admin-only"
        )
        alone = team.post("alice", name, {"pool": "lab", key: value})
        assert refused_line(alone) == f"ssh_config.{key}{ADMIN_ONLY_LINE}"
        assert account_of(name) is None, "no account was made on the admin's host"
    remote = team.api.remote("alice", "ps", "--json")
    assert remote.stdout.strip() == "[]"


def test_the_remote_cli_says_the_same_in_one_line(team: Team, tmp_path: Path) -> None:
    """alice's own `devenv start FILE` in remote mode: the server's line, exit code 2."""
    name = team.name("cli")
    path = tmp_path / "box.yml"
    body = {"type": "dev-environment", "name": name, "backend": "ssh"}
    path.write_text(json.dumps({**body, "ssh_config": team.direct_section()}))
    result = team.api.remote("alice", "start", str(path), "--detach", check=False)
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr.strip() == (
        "error: ssh_config.hosts, ssh_config.identity_file, ssh_config.known_hosts"
        + ADMIN_ONLY_LINE
    )
    assert account_of(name) is None


def test_a_user_starts_on_a_pool_the_admin_registered_and_logs_in(
    team: Team, tmp_path: Path
) -> None:
    """What alice does instead: name the pool; the worker resolves it to the admin's hosts,
    key and known_hosts; alice logs in with her own key (real OpenSSH, pinned host key)."""
    sshd = team.sshd
    added = team.world.run(
        "hosts", "add", "lab", "--host", f"127.0.0.1:{sshd.port}",
        "--identity-file", str(sshd.admin_key.private), "--known-hosts", str(sshd.known_hosts),
    )  # fmt: skip
    assert "users start on it with ssh_config: {pool: lab}" in added.stderr
    pools_file = team.world.home / "host-pools.json"
    assert os.stat(pools_file).st_mode & 0o777 == 0o600
    listed = team.world.run("hosts", "list")
    assert "lab" in listed.stdout and str(sshd.admin_key.private) in listed.stdout

    unknown = team.post("alice", team.name("nopool"), {"pool": "gpu-boxes"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"] == (
        "ssh_config.pool: no host pool named 'gpu-boxes' on this server (registered: lab); "
        "its admin adds one with `devenv hosts add`"
    )

    name = team.name("pool")
    started = team.post("alice", name, {"pool": "lab"}, wait="ready")
    assert started.status_code == 201, started.text
    row = started.json()
    assert (row["status"], row["backend"], row["owner"]) == ("running", "ssh", "alice")
    with team.api.client("alice") as http:
        access = http.get(f"/environments/{name}/connection").json()
    assert (access["host"], access["port"]) == ("127.0.0.1", sshd.port)
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {access['host_public_key']}\n")
    key = team.world.root / "alice_ed25519"
    login = subprocess.run(
        ["ssh", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
         "-o", "StrictHostKeyChecking=yes", f"{access['username']}@127.0.0.1", "id -un"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    assert login.stdout.strip() == account_name(name)
    with team.api.client("alice") as http:
        assert http.delete(f"/environments/{name}", params={"wait": "true"}).status_code == 200

    removed = team.world.run("hosts", "remove", "lab")
    assert "Removed host pool lab" in removed.stderr
    gone = team.post("alice", team.name("gone"), {"pool": "lab"})
    assert gone.status_code == 422 and "no host pool named 'lab'" in gone.text


def test_an_admin_keeps_the_file_keys(team: Team) -> None:
    """Admins over the API (and the CLI on the server) still name hosts and files."""
    name = team.name("adm")
    started = team.post("admin", name, team.direct_section(), wait="ready")
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "running"
    with team.api.client("admin") as http:
        assert http.delete(f"/environments/{name}", params={"wait": "true"}).status_code == 200


async def test_no_message_quotes_a_key_file(team: Team, tmp_path: Path) -> None:
    """A known_hosts or identity file whose first line is a secret (an admin named it):
    provisioning fails naming the file and the line, `devenv hosts add` refuses it the
    same way, and the secret is nowhere. Before: `Invalid known hosts entry: <secret>`."""
    secret = f"devenv_{secrets.token_urlsafe(24)}"
    planted = tmp_path / "not-known-hosts"
    planted.write_text(f"{secret}\nsecond line\n")
    fake_key = tmp_path / "not-a-key"
    fake_key.write_text(f"{secret}\n")
    sshd = team.sshd

    outputs: list[str] = []
    failed = {}
    for key, path in (("known_hosts", planted), ("identity_file", fake_key)):
        name = team.name("leak")
        answer = team.post("admin", name, team.direct_section(**{key: str(path)}), wait="ready")
        assert answer.status_code == 502, answer.text
        outputs.append(answer.text)
        events = team.events("admin", name)
        assert not [event for event in events if secret in event], "the file is quoted"
        failed[key] = next(event for event in events if "provisioning failed" in event)
        outputs += events
    assert f"{planted} line 1: not a known_hosts entry" in failed["known_hosts"]
    assert f"{fake_key}: line 1 is not the start of a private key" in failed["identity_file"]

    for option, path, what in (
        ("--known-hosts", planted, "not a known_hosts entry"),
        ("--identity-file", fake_key, "is not the start of a private key"),
    ):
        files = {"--identity-file": sshd.admin_key.private, "--known-hosts": sshd.known_hosts}
        files[option] = path
        result = team.world.run(
            "hosts", "add", "leak", "--host", f"127.0.0.1:{sshd.port}",
            *(part for pair in files.items() for part in (pair[0], str(pair[1]))),
            check=False,
        )  # fmt: skip
        assert result.returncode == 2 and result.stdout == "", result
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith(f"error: {option}: "), line
        assert f"{path} line 1" in line or f"{path}: line 1" in line, line
        assert what in line
        outputs.append(result.stderr)

    haystacks = {"outputs": "\n".join(outputs), "history and memos": await history_text(team.world)}
    assert "provisioning failed" in haystacks["history and memos"], "history was decoded"
    for folder in (team.world.home, team.world.root / "server.out"):
        for path in [folder] if folder.is_file() else sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                haystacks[str(path)] = path.read_bytes().decode("latin-1")
    assert any(where.endswith(".log") for where in haystacks)
    for where, text in haystacks.items():
        assert secret not in text, f"the planted secret is in {where}"
