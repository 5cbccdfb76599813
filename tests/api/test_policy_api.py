"""``GET/PUT/DELETE /api/v1/policy`` on a real server: admins set and clear, anyone else
gets a one-line 403 and sees only what binds them; a start outside a user's policy is a
422 naming the policy and the bound, and the remote CLI says the same."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Api

H = 3600


@pytest.fixture
def alices_policy(api: Api) -> Iterator[None]:
    """A policy for alice alone, removed after (the server is shared by the API tests)."""
    with api.client("admin") as http:
        answer = http.put("/policy", json={"user": "alice", "max_inactivity": "8h"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["policies"]["users"]["alice"]["max_inactivity"] == 8 * H
        try:
            yield
        finally:
            assert http.delete("/policy", params={"user": "alice"}).status_code == 200


def test_only_an_admin_sets_or_clears_a_policy(api: Api) -> None:
    with api.client("carol") as http:
        put = http.put("/policy", json={"max_inactivity": "1h"})
        delete = http.delete("/policy")
    for answer in (put, delete):
        assert answer.status_code == 403
        assert answer.json() == {
            "error": "carol is not an admin: only an admin can set or clear policies "
            "(`devenv policy show` shows those that bind you)"
        }
    refused = api.remote("alice", "policy", "set", "--max-inactivity", "1h", check=False)
    assert refused.returncode == 2
    assert "alice is not an admin" in refused.stderr


def test_a_bad_value_is_a_422_naming_the_key_and_changes_nothing(api: Api) -> None:
    with api.client("admin") as http:
        before = http.get("/policy").json()
        answer = http.put("/policy", json={"max_inactivity": "soon"})
        assert answer.status_code == 422
        assert answer.json()["error"].startswith("max-inactivity: 'soon' is not a duration")
        unknown = http.put("/policy", json={"max_idle": "1h"})
        assert unknown.status_code == 422
        assert http.get("/policy").json() == before


@pytest.mark.usefixtures("alices_policy")
def test_a_start_outside_the_users_policy_is_a_422_and_each_sees_what_binds_them(
    api: Api,
) -> None:
    with api.client("alice") as http:
        answer = http.post(
            "/environments",
            json={"type": "dev-environment", "name": "pol-api", "inactivity_duration": "12h"},
        )
        mine = http.get("/policy").json()
    assert answer.status_code == 422
    assert answer.json() == {
        "error": "inactivity_duration: 12h exceeds the policy's max-inactivity 8h "
        "(set by an admin for user alice; devenv policy show)"
    }
    assert list(mine["policies"]["users"]) == ["alice"]
    with api.client("bob") as http:
        assert http.get("/environments/pol-api").status_code == 404  # nothing created
        assert http.get("/policy").json()["policies"]["users"] == {}
    shown = api.remote("alice", "policy", "show").stdout
    assert "user alice: max-inactivity 8h" in shown


@pytest.mark.usefixtures("alices_policy")
def test_a_change_outside_the_users_policy_is_a_422_and_changes_nothing(api: Api) -> None:
    api.start("alice", "pol-api-change", backend="local", inactivity_duration="2h")
    with api.client("alice") as http:
        try:
            answer = http.patch("/environments/pol-api-change", json={"inactivity_duration": "12h"})
            row = http.get("/environments/pol-api-change").json()
        finally:
            http.delete("/environments/pol-api-change", params={"wait": "true"})
    assert answer.status_code == 422
    assert answer.json()["error"] == (
        "devenv-pol-api-change: inactivity_duration: 12h exceeds the policy's max-inactivity 8h "
        "(set by an admin for user alice; devenv policy show); nothing changed"
    )
    assert row["inactivity_duration"] == 2 * H
