"""`env` in remote mode: a bare KEY takes its value from the colleague's machine that
runs `devenv start`, travels to the server beside the configuration (never in history)
and reaches the environment; the server never fills a bare KEY from its own
environment (that would hand its credentials to whoever names them)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.e2e.harness import DEVENV
from tests.security.test_secrets import history_text

pytestmark = pytest.mark.e2e


def test_a_bare_key_comes_from_the_remote_caller_and_stays_out_of_history(
    api: Api, tmp_path: Path
) -> None:
    name = "api-env-remote"
    secret = f"remote-secret-{uuid.uuid4().hex}"
    path = tmp_path / "dev.yml"
    path.write_text(
        f"type: dev-environment\nname: {name}\nenv: [REMOTE_TOKEN, PLAIN=yes]\n"
        "init: ['echo \"init got $REMOTE_TOKEN\" > got.txt']\n"
    )
    alice = api.machine("alice", tmp_path) | {"REMOTE_TOKEN": secret}
    try:
        started = subprocess.run(
            [DEVENV, "start", str(path)], env=alice, capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, started.stderr
        config = Path(alice["DEVENV_HOME"]) / "ssh" / "config"
        inside = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", name, 'echo "$REMOTE_TOKEN $PLAIN"'],
            env=alice,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert inside.returncode == 0, inside.stderr
        assert inside.stdout == f"{secret} yes\n"
        got = subprocess.run(
            ["ssh", "-F", str(config), "-o", "BatchMode=yes", name, "cat got.txt"],
            env=alice,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert got.stdout == f"init got {secret}\n"
        shown = [
            api.remote("alice", *args).stdout for args in (("ps", name, "--json"), ("logs", name))
        ]
        assert all(secret not in text for text in shown)
    finally:
        api.remote("alice", "stop", name, "--wait", check=False)
    assert secret not in asyncio.run(history_text(api.world))
    assert secret not in api.server_log()


def test_the_server_never_fills_a_bare_key_from_its_own_environment(api: Api) -> None:
    # COLUMNS is in the server's own environment (the harness sets it): it must not leak.
    with api.client("alice") as http:
        refused = http.post(
            "/environments",
            json={"type": "dev-environment", "name": "api-env-x", "env": ["COLUMNS"]},
        )
        assert refused.status_code == 422, refused.text
        assert "env.COLUMNS: not set" in refused.text
        garbage = http.post(
            "/environments",
            json={"type": "dev-environment", "name": "api-env-y", "caller_env": {"A": 1}},
        )
        assert garbage.status_code == 422, garbage.text
        assert "caller_env: accepted: a mapping" in garbage.text
        listed = http.get("/environments", params={"all": "true"}).json()
    assert not [row for row in listed if row["name"] in ("api-env-x", "api-env-y")]
