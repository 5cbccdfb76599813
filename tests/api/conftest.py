"""One real `devenv server` with its HTTP API on a loopback port, in a private world,
and its users: the local admin, alice and bob (each with an SSH key) and carol (none)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import DEVENV, Devenv, free_port, serving, wait_for

USERS_WITH_KEYS = ("alice", "bob")


@dataclass
class Api:
    """The world, the API's base URL and every user's token."""

    world: Devenv
    url: str
    tokens: dict[str, str] = field(default_factory=dict)
    admin: str = ""
    """The local admin's user name (the OS user running the server)."""

    def client(self, user: str | None) -> httpx.Client:
        """An HTTP client for ``user`` (None: no token at all), on 127.0.0.1 only."""
        headers = {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)

    def async_client(self, user: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.AsyncClient(base_url=f"{self.url}/api/v1", headers=headers, timeout=60)

    def remote_env(self, user: str) -> dict[str, str]:
        """The world's variables in remote mode, as ``user``."""
        return {**self.world.env, "DEVENV_SERVER_URL": self.url, "DEVENV_TOKEN": self.tokens[user]}

    def machine(self, user: str, folder: Path) -> dict[str, str]:
        """``user``'s own machine in remote mode: their HOME in ``folder`` with their
        registered key as ~/.ssh/id_ed25519, their own DEVENV_HOME (no Temporal, no
        server), the server's URL and their token."""
        home = folder / f"{user}-home"
        ssh = home / ".ssh"
        ssh.mkdir(parents=True, mode=0o700, exist_ok=True)
        key = self.world.root / f"{user}_ed25519"
        shutil.copy(key, ssh / "id_ed25519")
        shutil.copy(f"{key}.pub", ssh / "id_ed25519.pub")
        (ssh / "id_ed25519").chmod(0o600)
        return {**self.remote_env(user), "HOME": str(home), "DEVENV_HOME": str(home / ".devenv")}

    def remote(self, user: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``devenv ARGS`` in remote mode, as ``user``."""
        result = subprocess.run(
            [DEVENV, *args], env=self.remote_env(user), capture_output=True, text=True, timeout=120
        )
        if check and result.returncode != 0:
            raise AssertionError(f"devenv {' '.join(args)}: {result.returncode} {result.stderr}")
        return result

    def server_log(self) -> str:
        return (self.world.root / "server.out").read_text(errors="replace")

    def start(self, user: str, name: str, **keys: Any) -> dict[str, Any]:
        """POST an environment as ``user`` and wait until it accepts SSH."""
        body = {"type": "dev-environment", "name": name, **keys}
        with self.client(user) as http:
            answer = http.post("/environments", params={"wait": "ready"}, json=body)
        assert answer.status_code == 201, answer.text
        row: dict[str, Any] = answer.json()
        assert (row["status"], row["owner"]) == ("running", self.tokens_owner(user))
        return row

    def tokens_owner(self, user: str) -> str:
        return self.admin if user == "admin" else user


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    if shutil.which("ssh-keygen") is None:
        pytest.fail("ssh-keygen is required (apt-get install openssh-client)")
    root = tmp_path_factory.mktemp("api")
    port = free_port()
    world = Devenv(root, extra_env={"DEVENV_API_PORT": str(port)})
    with serving(world):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 30, "the HTTP API")
        api = Api(world=world, url=url)
        api.tokens["admin"] = world.run("token").stdout.strip()
        api.admin = _local_admin(world)
        for user in USERS_WITH_KEYS:
            key = root / f"{user}_ed25519"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", user, "-f", str(key)],
                check=True,
            )
            # Trusted with local environments (a shell as the server's user): the tests
            # of the API run them; tests/api/test_authority.py plays an untrusted user.
            added = world.run("users", "add", user, "--key", f"{key}.pub", "--local-backend")
            api.tokens[user] = added.stdout.strip()
        api.tokens["carol"] = world.run("users", "add", "carol").stdout.strip()
        yield api


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _local_admin(world: Devenv) -> str:
    users = json.loads(world.run("users", "list", "--json").stdout)
    return str(next(user["name"] for user in users if user["local_admin"]))


@pytest.fixture
def example() -> Path:
    return Path(__file__).parents[2] / "examples" / "dev.yml"
