"""No secret in any log, history, memo or output (issue 19, finding 5).

A real `devenv server` with its HTTP API, holding planted secrets: a webhook URL whose
path is the credential (on a loopback receiver), the API tokens, a Temporal API key in
its environment. The paths a team uses run through it: start, a warning posted to the
webhook, a shared change posted to it, PATCH, stop, refused calls with a token in the
query. Then every file under DEVENV_HOME (the secret stores aside), the server's
output, every workflow history (memos and payloads decoded) and every answer are
searched for each secret.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import Devenv, free_port, serving, wait_for
from tests.security.test_secrets import history_text, walk
from tests.support.webhook import Hook

pytestmark = pytest.mark.e2e

SECRET_STORES = ("keys", "webhooks")
"""Where DEVENV_HOME keeps secrets on purpose (0600 files): the admin token, webhook URLs."""


def test_no_secret_reaches_a_log_a_history_or_an_answer(tmp_path: Path, hook: Hook) -> None:
    api_key = f"planted-api-key-{uuid.uuid4().hex}"
    port = free_port()
    world = Devenv(
        tmp_path,
        extra_env={
            "DEVENV_API_PORT": str(port),
            "DEVENV_TEMPORAL_API_KEY": api_key,
            "DEVENV_TEMPORAL_TLS": "false",  # the dev server ignores the key; the worker holds it
        },
    )
    hook_secret = f"hook-secret-{uuid.uuid4().hex}"
    webhook = f"http://127.0.0.1:{hook.server.server_port}/hooks/T0/B0/{hook_secret}"
    answers: list[str] = []
    with serving(world):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(url), 30, "the HTTP API")
        tokens = {"admin": world.run("token").stdout.strip()}
        for user, extra in (("alice", ["--local-backend"]), ("bob", [])):
            key = tmp_path / f"{user}_ed25519"
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True
            )
            added = world.run("users", "add", user, "--key", f"{key}.pub", *extra)
            tokens[user] = added.stdout.strip()

        def as_user(user: str) -> httpx.Client:
            auth = {"Authorization": f"Bearer {tokens[user]}"}
            return httpx.Client(base_url=f"{url}/api/v1", headers=auth, timeout=60)

        with as_user("alice") as alice, as_user("bob") as bob:
            started = alice.post(
                "/environments",
                params={"wait": "ready"},
                json={
                    "type": "dev-environment",
                    "name": "red-1",
                    "inactivity_duration": "12s",
                    "warn_before": "9s",
                    "notify": {"webhook": webhook},
                },
            )
            assert started.status_code == 201, started.text
            answers.append(started.text)
            wait_for(
                lambda: any(b.get("reason") == "inactivity_duration_exceeded" for b in hook.bodies),
                30,
                "the warning on the webhook",
            )
            for change in ({"inactivity_duration": "2h"}, {"shared_with": ["bob"]}):
                changed = alice.patch("/environments/red-1", json=change)
                assert changed.status_code == 200, changed.text
                answers.append(changed.text)
            extended = bob.patch("/environments/red-1", json={"extend": "1h"})
            assert extended.status_code == 200, extended.text
            wait_for(lambda: any(b.get("by") == "bob" for b in hook.bodies), 30, "bob's notice")
            for token in tokens.values():  # a token where it does not belong: the query
                refused = bob.get("/environments", params={"access_token": token, "x": token})
                answers.append(refused.text)
            answers += [
                alice.get("/environments/red-1/events").text,
                alice.get("/environments/red-1").text,
            ]
            stopped = alice.delete("/environments/red-1", params={"wait": "true"})
            assert stopped.status_code == 200, stopped.text
            answers.append(stopped.text)
        for args in (("logs", "red-1"), ("ps", "--all", "--json"), ("ps", "red-1", "-v")):
            done = world.run(*args)
            answers += [done.stdout, done.stderr]
        histories = asyncio.run(history_text(world))

    secrets = {"webhook path": hook_secret, "temporal api key": api_key} | {
        f"{user}'s token": token for user, token in tokens.items()
    }
    places = {"server output": (tmp_path / "server.out").read_text(errors="replace")}
    for path in walk(world.home):
        relative = path.relative_to(world.home)
        if path.is_file() and relative.parts[0] not in SECRET_STORES:
            places[str(relative)] = path.read_bytes().decode(errors="replace")
    places["workflow histories and memos"] = histories
    places["answers and command outputs"] = "\n".join(answers)
    assert any(name.endswith(".log") for name in places), sorted(places)
    assert "HTTP Request" not in places["server output"]
    leaks = [
        f"{what} in {where}"
        for what, value in secrets.items()
        for where, text in places.items()
        if value in text
    ]
    assert leaks == []


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/openapi.json", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
