"""The HTTP API over real HTTP on loopback, against a real `devenv server`."""

from __future__ import annotations

import asyncio
import itertools
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from devenv.client.durations import check_duration
from devenv.errors import InvalidValueError
from devenv.models.durations import parse_duration
from tests.api.conftest import Api
from tests.e2e.harness import wait_for

pytestmark = pytest.mark.e2e

CHANGED = re.compile(r"inactivity threshold changed by alice from (\S+) to (\S+);")


def sdk_line(key: str, value: object) -> str:
    """What the SDK (and so the CLI) says about a bad value."""
    with pytest.raises(InvalidValueError) as raised:
        check_duration(key, value)
    return str(raised.value)


def when(text: str | None) -> datetime:
    assert text is not None
    return datetime.fromisoformat(text)


def test_openapi_lists_every_endpoint_and_docs_are_served(api: Api) -> None:
    spec = httpx.get(f"{api.url}/openapi.json").json()
    paths = spec["paths"]
    assert set(paths["/api/v1/environments"]) == {"get", "post"}
    assert set(paths["/api/v1/environments/{name}"]) == {"get", "patch", "delete"}
    assert set(paths["/api/v1/environments/{name}/events"]) == {"get"}
    patch_body = paths["/api/v1/environments/{name}"]["patch"]["requestBody"]
    schema = patch_body["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {
        "inactivity_duration",
        "max_duration",
        "extend",
        "stop_at",
        "shared_with",
    }
    assert set(paths["/api/v1/environments/{name}/connection"]) == {"get"}
    assert set(paths["/api/v1/policy"]) == {"get", "put", "delete"}
    assert schema["additionalProperties"] is False
    assert "owner" in spec["components"]["schemas"]["EnvironmentStatus"]["properties"]
    docs = httpx.get(f"{api.url}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    with api.client("alice") as http:
        for answer, status in ((http.put("/environments/x"), 405), (http.get("/nope"), 404)):
            assert answer.status_code == status and list(answer.json()) == ["error"]


def test_no_token_or_a_wrong_one_is_401_and_the_log_never_holds_a_token(api: Api) -> None:
    wrong = "devenv_" + "Zq9" * 14
    with api.client(None) as anonymous:
        answer = anonymous.get("/environments")
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
        assert list(answer.json()) == ["error"] and "bearer token" in answer.json()["error"]
        for bad in (wrong, "x" * 5000, "devenv_" + api.tokens["alice"][7:-1]):
            refused = anonymous.get("/environments", headers={"Authorization": f"Bearer {bad}"})
            assert refused.status_code == 401, bad[:20]
            assert "\n" not in refused.json()["error"]
        basic = anonymous.get("/environments", headers={"Authorization": "Basic YTpi"})
        assert basic.status_code == 401
    with api.client("alice") as alice:
        assert alice.get("/environments").status_code == 200
    log = wait_for(
        lambda: api.server_log() if api.server_log().count("wrong token") >= 3 else None,
        10,
        "the 401s in the server log",
    )
    assert "no bearer token" in log
    for token in [wrong, *api.tokens.values()]:
        assert token not in log
    assert "Bearer" not in log


def test_patch_raises_lowers_switches_off_and_refuses_bad_values(api: Api) -> None:
    started = api.start("alice", "api-patch", inactivity_duration="2h", max_duration="1w")
    with api.client("alice") as http:
        raised = http.patch("/environments/api-patch", json={"inactivity_duration": "12h"})
        assert raised.status_code == 200, raised.text
        row = raised.json()
        assert (row["inactivity_duration"], row["status"], row["owner"]) == (
            12 * 3600,
            "running",
            "alice",
        )
        moved = when(row["deadline"]) - when(started["deadline"])
        assert moved == timedelta(hours=10)
        assert http.get("/environments/devenv-api-patch").json() == row, "in force at once"

        off = http.patch("/environments/api-patch", json={"max_duration": "off"}).json()
        assert off["max_duration"] is None and off["inactivity_duration"] == 12 * 3600
        both = http.patch(
            "/environments/api-patch", json={"inactivity_duration": 7200, "max_duration": "1d"}
        ).json()
        assert (both["inactivity_duration"], both["max_duration"]) == (7200, 86400)

        before = http.get("/environments/api-patch").json()
        for bad in ("1x", "-5", "5w", True, None, 1.5, [1]):
            refused = http.patch("/environments/api-patch", json={"inactivity_duration": bad})
            assert refused.status_code == 422, bad
            assert refused.json() == {"error": sdk_line("inactivity_duration", bad)}
        half_bad = http.patch(
            "/environments/api-patch", json={"inactivity_duration": "3h", "max_duration": "9x"}
        )
        assert half_bad.json() == {"error": sdk_line("max_duration", "9x")}
        unknown = http.patch("/environments/api-patch", json={"inactivity": "3h"})
        assert unknown.status_code == 422
        assert "unknown key 'inactivity'" in unknown.json()["error"]
        assert "did you mean 'inactivity_duration'" in unknown.json()["error"]
        for empty in ({"json": {}}, {"content": b""}, {"json": []}):
            nothing = http.patch("/environments/api-patch", **empty)  # type: ignore[arg-type]
            assert nothing.status_code == 422, empty
            assert list(nothing.json()) == ["error"]
        broken = http.patch("/environments/api-patch", content=b'{"inactivity_duration": ')
        assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]
        assert http.get("/environments/api-patch").json() == before, "nothing changed"

        # Lowered past the time it has been idle: it ends at once.
        idle_since = when(before["idle_since"])
        wait_for(lambda: datetime.now(UTC) > idle_since + timedelta(seconds=2), 10, "2s idle")
        ended = http.patch("/environments/api-patch", json={"inactivity_duration": "1s"})
        assert ended.status_code == 200
        assert ended.json()["status"] in ("terminating", "terminated")
        assert ended.json()["termination_reason"] == "inactivity_duration_exceeded"
        wait_for(
            lambda: http.get("/environments/api-patch").json()["status"] == "terminated",
            30,
            "terminated",
        )
        late = http.patch("/environments/api-patch", json={"inactivity_duration": "5h"})
        assert late.status_code == 409
        assert late.json()["error"].endswith("nothing changed")
        assert http.delete("/environments/api-patch").status_code == 409
        assert http.get("/environments/api-patch").json()["inactivity_duration"] == 1


def test_owners_see_and_change_only_their_own_admins_everything(api: Api) -> None:
    mine = api.start("alice", "api-alice")
    api.start("bob", "api-bob")

    def nobody(ref: str) -> str:
        """Exactly what a name nobody uses gets."""
        return f"no environment named {ref!r} (see `devenv ps --all`)"

    with api.client("bob") as bob, api.client("alice") as alice, api.client("admin") as admin:
        missing = bob.get("/environments/api-nobody-has-this")
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": nobody("api-nobody-has-this")},
        )
        for answer in (
            bob.get("/environments/api-alice"),
            bob.get("/environments/devenv-api-alice"),
            bob.get("/environments/api-alice/events"),
            bob.patch("/environments/api-alice", json={"inactivity_duration": "1s"}),
            bob.delete("/environments/api-alice"),
        ):
            ref = answer.url.path.split("/")[4]
            assert (answer.status_code, answer.json()) == (404, {"error": nobody(ref)})
        assert (
            alice.get("/environments/api-alice").json()["inactivity_duration"]
            == (mine["inactivity_duration"])
        ), "bob changed nothing"
        assert alice.get("/environments/api-alice").json()["status"] == "running"

        assert [row["name"] for row in bob.get("/environments").json()] == ["api-bob"]
        assert "api-alice" in [row["name"] for row in alice.get("/environments").json()]
        assert "api-bob" not in [row["name"] for row in alice.get("/environments").json()]
        everyone = [row["name"] for row in admin.get("/environments").json()]
        assert {"api-alice", "api-bob"} <= set(everyone)
        assert admin.get("/environments/api-bob").json()["owner"] == "bob"
        assert admin.patch("/environments/api-bob", json={"max_duration": "3h"}).status_code == 200

        stopped = alice.delete("/environments/api-alice", params={"wait": "true"})
        assert stopped.status_code == 200, stopped.text
        assert (stopped.json()["status"], stopped.json()["termination_reason"]) == (
            "terminated",
            "stopped_by_user",
        )
        said = [event["message"] for event in alice.get("/environments/api-alice/events").json()]
        assert "stop requested: stopped by alice via the API" in said
        assert "api-alice" not in [row["name"] for row in alice.get("/environments").json()]
        ended = alice.get("/environments", params={"all": "true"}).json()
        assert "api-alice" in [row["name"] for row in ended]
        assert admin.delete("/environments/api-bob").status_code == 200


def test_a_user_without_a_key_cannot_start_and_bad_configurations_are_named(api: Api) -> None:
    with api.client("carol") as carol, api.client("alice") as alice:
        refused = carol.post("/environments", json={"type": "dev-environment", "name": "api-c"})
        assert refused.status_code == 422
        assert "devenv users add NAME --key FILE" in refused.json()["error"]
        typo = alice.post("/environments", json={"type": "dev-environment", "inactivity": "2h"})
        assert typo.status_code == 422
        assert typo.json()["error"].startswith("config: unknown key 'inactivity'")
        bad = alice.post(
            "/environments", json={"type": "dev-environment", "inactivity_duration": "1x"}
        )
        assert bad.json()["error"].startswith("config: inactivity_duration: invalid value '1x'")
        assert alice.post("/environments", params={"wait": "soon"}, json={}).status_code == 422
        assert alice.get("/environments", params={"all": "maybe"}).json() == {
            "error": "all: invalid value 'maybe': accepted: true or false"
        }
        assert carol.get("/environments").json() == []


def test_a_taken_name_is_409(api: Api) -> None:
    api.start("alice", "api-taken")
    with api.client("bob") as bob, api.client("alice") as alice:
        again = bob.post("/environments", json={"type": "dev-environment", "name": "api-taken"})
        assert again.status_code == 409 and "already running" in again.json()["error"]
        assert alice.delete("/environments/api-taken").status_code == 200


def test_bodies_over_64_kb_are_refused_with_413(api: Api) -> None:
    big = {"inactivity_duration": "2h", "padding": "x" * (64 * 1024)}
    with api.client("alice") as http:
        for method in ("PATCH", "POST"):
            path = "/environments/anything" if method == "PATCH" else "/environments"
            answer = http.request(method, path, json=big)
            assert answer.status_code == 413
            assert answer.json() == {"error": "body larger than 64 kB"}

        def chunks() -> Any:  # no Content-Length: counted while it arrives
            for _ in range(20):
                yield b"x" * 8192

        streamed = http.patch("/environments/anything", content=chunks())
        assert streamed.status_code == 413


async def test_fifty_concurrent_patches_from_ten_clients_all_apply_in_one_order(
    api: Api,
) -> None:
    api.start("alice", "api-burst", inactivity_duration="2h")
    values = [f"{hours}h" for hours in range(1, 51)]
    finished: list[tuple[str, int]] = []

    async def one_client(mine: list[str]) -> None:
        async with api.async_client("alice") as http:
            for value in mine:
                answer = await http.patch(
                    "/environments/api-burst", json={"inactivity_duration": value}
                )
                assert answer.status_code == 200, answer.text
                finished.append((value, answer.json()["inactivity_duration"]))

    await asyncio.gather(*(one_client(values[index::10]) for index in range(10)))
    assert len(finished) == 50
    for value, seen in finished:
        assert seen == parse_duration(value), "each answer shows its own change"

    with api.client("alice") as http:
        events = http.get("/environments/api-burst/events").json()
        changes = [CHANGED.search(event["message"]) for event in events]
        steps = [(m.group(1), m.group(2)) for m in changes if m is not None]
        assert len(steps) == 50
        assert steps[0][0] == "2h"
        for (_, to), (after, _) in itertools.pairwise(steps):
            assert after == to, "no change was lost or applied twice"
        assert sorted(parse_duration(to) or 0 for _, to in steps) == sorted(
            parse_duration(value) or 0 for value in values
        )
        final = http.get("/environments/api-burst").json()["inactivity_duration"]
        assert final == parse_duration(steps[-1][1]) == finished[-1][1], "the last one wins"
        assert http.delete("/environments/api-burst").status_code == 200
