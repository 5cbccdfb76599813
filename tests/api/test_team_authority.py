"""Team mode as a second user plays it against the real `devenv server` (issue 19):
an API user reaches only what an admin gave them.

* A user not trusted with local environments cannot get a shell as the server's user.
* A member cannot end an environment through its thresholds (a stop in disguise).
* A removed user's key is refused at once, in environments shared with them and in
  their own (real OpenSSH, with the ssh entry they had before).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.e2e.harness import DEVENV, wait_for

pytestmark = pytest.mark.e2e

LOCAL_REFUSED = (
    "backend: local is for admins only (a local environment is a shell as the devenv "
    "server's own OS user); use an ssh host pool registered by an admin (`devenv hosts`)"
)


def add_user(api: Api, name: str, *extra: str) -> None:
    """A user with a key at ``world.root/NAME_ed25519`` (where ``api.machine`` finds it)."""
    key = api.world.root / f"{name}_ed25519"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
            check=True,
        )
    added = api.world.run("users", "add", name, "--key", f"{key}.pub", *extra)
    api.tokens[name] = added.stdout.strip()


def logs_in(machine: dict[str, str], name: str) -> bool:
    """Plain OpenSSH with the entry `devenv ssh` wrote on that user's machine: no token,
    only their key, as someone keeping their old config would try."""
    entry = Path(machine["DEVENV_HOME"]) / "ssh" / "config"
    result = subprocess.run(
        ["ssh", "-F", str(entry), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", name, "true"],
        env=machine,
        capture_output=True,
        timeout=30,
    )
    return result.returncode == 0


def first_login(machine: dict[str, str], name: str) -> None:
    done = subprocess.run(
        [DEVENV, "ssh", name, "--", "echo", "in"],
        env=machine,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "in"), done.stderr


def test_a_user_not_trusted_with_local_environments_gets_403_and_nothing_starts(
    api: Api,
) -> None:
    add_user(api, "erin")
    with api.client("erin") as erin, api.client("admin") as admin:
        for body in (
            {"type": "dev-environment", "name": "erin-local", "backend": "local"},
            {"type": "dev-environment", "name": "erin-local"},  # local is the default
        ):
            refused = erin.post("/environments", json=body)
            assert refused.status_code == 403, refused.text
            assert refused.json() == {"error": LOCAL_REFUSED}
        assert admin.get("/environments/erin-local").status_code == 404, "nothing started"
    listed = api.world.run("users", "list").stdout
    assert any(line.startswith("alice ") and "user+local" in line for line in listed.splitlines())


def test_a_member_cannot_end_a_shared_environment_through_its_thresholds(api: Api) -> None:
    name = "auth-member-end"
    api.start("alice", name, inactivity_duration="2h", max_duration="1d")
    with api.client("alice") as alice, api.client("bob") as bob:
        assert alice.patch(f"/environments/{name}", json={"shared_with": ["bob"]}).is_success
        row = alice.get(f"/environments/{name}").json()
        idle_since = datetime.fromisoformat(row["idle_since"])
        wait_for(lambda: datetime.now(UTC) > idle_since + timedelta(seconds=2), 10, "2s idle")
        soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        for change in (
            {"inactivity_duration": "1s"},  # already exceeded: would end it at once
            {"max_duration": "1s"},
            {"stop_at": soon},
            {"inactivity_duration": "2m"},  # would end it within minutes
            {"extend": "1h", "inactivity_duration": "1s"},
        ):
            refused = bob.patch(f"/environments/{name}", json=change)
            assert refused.status_code == 403, (change, refused.text)
            line = refused.json()["error"]
            assert line.startswith(f"{name} is shared with you by alice: this change would end")
            assert line.endswith("which is a stop; only alice or an admin can stop it"), line
            assert "\n" not in line
        assert bob.get(f"/environments/{name}").json()["status"] == "running"

        # What does not bring the end closer is a member's right.
        raised = bob.patch(f"/environments/{name}", json={"inactivity_duration": "3h"})
        assert raised.status_code == 200 and raised.json()["inactivity_duration"] == 3 * 3600
        assert bob.patch(f"/environments/{name}", json={"extend": "1h"}).status_code == 200
        assert bob.delete(f"/environments/{name}").status_code == 403
        # Bad values are still named, before any rule.
        assert bob.patch(f"/environments/{name}", json={"max_duration": "9x"}).status_code == 422

        # The owner may end it so.
        ended = alice.patch(f"/environments/{name}", json={"inactivity_duration": "1s"})
        assert ended.status_code == 200, ended.text
        assert ended.json()["status"] in ("terminating", "terminated")


def test_removing_a_user_refuses_their_key_everywhere_at_once(api: Api, tmp_path: Path) -> None:
    add_user(api, "frank", "--local-backend")
    add_user(api, "gina")
    shared, owned = "auth-shared", "auth-owned"
    api.start("alice", shared, inactivity_duration="2h")
    api.start("frank", owned, inactivity_duration="2h")
    with api.client("alice") as alice:
        assert alice.patch(
            f"/environments/{shared}", json={"shared_with": ["gina", "bob"]}
        ).is_success
    gina, bob, frank = (api.machine(user, tmp_path) for user in ("gina", "bob", "frank"))
    for machine, name in ((gina, shared), (bob, shared), (frank, owned)):
        first_login(machine, name)
        assert logs_in(machine, name)

    removed = api.world.run("users", "remove", "gina")
    # Returned once the instance holds no key of hers: refused at once, bob untouched.
    assert not logs_in(gina, shared)
    assert removed.stderr.splitlines() == [
        "Removed gina; their token no longer works.",
        f"No longer shared with gina: {shared}.",
    ]
    assert logs_in(bob, shared)
    with api.client("alice") as alice:
        assert alice.get(f"/environments/{shared}").json()["shared_with"] == ["bob"]
    assert f"no longer shared with gina by {api.admin}" in api.world.run("logs", shared).stdout

    removed = api.world.run("users", "remove", "frank")
    assert not logs_in(frank, owned)
    assert removed.stderr.splitlines() == [
        "Removed frank; their token no longer works.",
        f"Stopped frank's environments: {owned}.",
    ]
    with api.client("admin") as admin:
        row = admin.get(f"/environments/{owned}").json()
        assert (row["status"], row["termination_reason"]) == ("terminated", "stopped_by_user")
        events = [e["message"] for e in admin.get(f"/environments/{owned}/events").json()]
        assert any(f"stopped by {api.admin}: user frank removed" in e for e in events), events
        assert admin.delete(f"/environments/{shared}").status_code == 200

    with api.client(None) as anonymous:
        for name in ("gina", "frank"):
            token = api.tokens.pop(name)  # the session's other tests list the users left
            refused = anonymous.get("/environments", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401
    again = api.world.run("users", "remove", "frank", check=False)
    assert (again.returncode, again.stderr.strip()) == (
        2,
        "error: no user named 'frank' (see `devenv users list`)",
    )
