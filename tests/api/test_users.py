"""`devenv token` and `devenv users`: tokens alone on stdout, stored hashed in 0600 files,
in force in the running server at once."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.e2e


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_tokens_print_alone_and_are_kept_hashed_in_private_files(api: Api) -> None:
    world = api.world
    shown = world.run("token")
    assert shown.stdout == api.tokens["admin"] + "\n" and shown.stderr == ""
    assert world.run("token").stdout == shown.stdout, "the same token every time"
    users_file = world.home / "users.json"
    token_file = world.home / "keys" / "api-token"
    assert (mode(users_file), mode(token_file), mode(token_file.parent)) == (0o600, 0o600, 0o700)
    stored = users_file.read_text()
    for token in api.tokens.values():
        assert token not in stored
        assert hashlib.sha256(token.encode()).hexdigest() in stored
    listed = world.run("users", "list", "--json").stdout
    assert "token" not in listed
    names = {row["name"]: row for row in json.loads(listed)}
    assert {"alice", "bob", "carol", api.admin} <= set(names)
    assert names["alice"]["public_key"].startswith("ssh-ed25519 ")
    assert names["carol"]["public_key"] is None
    table = world.run("users", "list").stdout
    assert "SHA256:" in table and "local admin" in table


def test_a_new_user_works_at_once_and_a_removed_one_is_refused_at_once(api: Api) -> None:
    world = api.world
    added = world.run("users", "add", "dave", "--admin")
    token = added.stdout.strip()
    assert added.stdout == token + "\n" and token.startswith("devenv_")
    assert "shown only once" in added.stderr
    with api.client(None) as http:
        auth = {"Authorization": f"Bearer {token}"}
        assert http.get("/environments", headers=auth).status_code == 200
        again = world.run("users", "add", "dave", check=False)
        assert again.returncode == 2 and "exists already" in again.stderr
        world.run("users", "remove", "dave")
        assert http.get("/environments", headers=auth).status_code == 401
    bad = world.run("users", "add", "Not A Name", check=False)
    assert (bad.returncode, bad.stdout) == (2, "")
    assert len(bad.stderr.strip().splitlines()) == 1
    keep = world.run("users", "remove", api.admin, check=False)
    assert keep.returncode == 2 and "local admin" in keep.stderr
    smuggled = world.root / "two.pub"
    alice_pub = (world.root / "alice_ed25519.pub").read_text().strip()
    smuggled.write_text(f"{alice_pub}\n{alice_pub}\n")
    refused = world.run("users", "key", "carol", str(smuggled), check=False)
    assert refused.returncode == 2 and "exactly one" in refused.stderr
