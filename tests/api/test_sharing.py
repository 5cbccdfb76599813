"""Shared environments, as a team lives them: alice shares hers with bob, who sees it,
logs in with his own key (real OpenSSH, remote mode), extends it, cannot stop it; every
change is attributed and reaches alice's webhook; unshared, bob is out at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.e2e.harness import DEVENV, wait_for
from tests.support.webhook import Hook

pytestmark = pytest.mark.e2e


def devenv(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DEVENV, *args], env=env, capture_output=True, text=True, timeout=120)


def events(api: Api, user: str, name: str) -> list[str]:
    with api.client(user) as http:
        return [event["message"] for event in http.get(f"/environments/{name}/events").json()]


def test_a_shared_environment_lets_a_colleague_in_to_extend_but_not_to_stop(
    api: Api, tmp_path: Path, hook: Hook
) -> None:
    name = "api-shared"
    api.start("alice", name, inactivity_duration="2h", notify={"webhook": hook.url})
    bob_env = api.machine("bob", tmp_path)
    with api.client("bob") as bob:
        assert bob.get(f"/environments/{name}").status_code == 404
        refused = bob.patch(f"/environments/{name}", json={"shared_with": ["bob"]})
        assert refused.status_code == 404, "bob cannot share himself into it"

    shared = api.remote("alice", "share", name, "--with", "bob", "--json")
    assert json.loads(shared.stdout)[0]["shared_with"] == ["bob"]
    assert "shared with bob by alice" in events(api, "alice", name)

    with api.client("bob") as bob:
        assert name in [row["name"] for row in bob.get("/environments").json()]
        row = bob.get(f"/environments/{name}").json()
        assert (row["owner"], row["shared_with"]) == ("alice", ["bob"])
        extended = bob.patch(f"/environments/{name}", json={"extend": "1h"})
        assert extended.status_code == 200, extended.text
        stop = bob.delete(f"/environments/{name}")
        assert stop.status_code == 403
        assert stop.json()["error"] == (
            f"{name} is shared with you by alice: you may extend it and change its "
            "thresholds, but only alice or an admin can stop it"
        )
        reshare = bob.patch(f"/environments/{name}", json={"shared_with": []})
        assert (
            reshare.status_code == 403
            and "only alice or an admin can share it" in (reshare.json()["error"])
        )
        assert bob.get(f"/environments/{name}").json()["status"] == "running"
    said = events(api, "alice", name)
    assert any(m.startswith("deadline extended by 1h by bob to") for m in said)
    notice = wait_for(
        lambda: next((b for b in hook.bodies if b.get("by") == "bob"), None), 20, "notice"
    )
    assert notice["reason"] == "changed" and notice["environment"] == name
    assert notice["text"].startswith(f"{name}: deadline extended by 1h by bob")
    assert "secret-token" not in json.dumps(events(api, "alice", name))

    # bob, on his own machine in remote mode, logs in with his own key.
    who = devenv(bob_env, "ssh", name, "--", "echo", "in-as-bob")
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == "in-as-bob"
    session = subprocess.Popen(
        [DEVENV, "ssh", name, "--", "sleep", "60"],
        env=bob_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with api.client("alice") as alice:
            wait_for(
                lambda: alice.get(f"/environments/{name}").json()["connections"] == 1,
                20,
                "bob's connection counted as presence",
            )
        detail = api.world.run("ps", name, "-v").stdout
        assert "session by bob from 127.0.0.1:" in detail, detail
    finally:
        session.kill()
        session.wait(10)

    unshared = api.remote("alice", "unshare", name, "--with", "bob", "--json")
    assert "shared_with" not in json.loads(unshared.stdout)[0]
    with api.client("bob") as bob:
        assert bob.get(f"/environments/{name}").status_code == 404
    # The instance is told a moment later; from then on bob's key is refused.
    entry = Path(bob_env["DEVENV_HOME"]) / "ssh" / "config"
    wait_for(
        lambda: (
            subprocess.run(
                ["ssh", "-F", str(entry), "-o", "BatchMode=yes", name, "true"],
                env=bob_env,
                capture_output=True,
                timeout=30,
            ).returncode
            == 255
        ),
        20,
        "bob's key refused",
    )
    assert "no longer shared with bob by alice" in events(api, "alice", name)
    with api.client("alice") as alice:
        assert alice.delete(f"/environments/{name}", params={"wait": "true"}).status_code == 200
