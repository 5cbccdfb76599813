"""Groups over HTTP and the SDK: ``GET /environments?group=NAME`` lists only that group,
of the caller's environments only; the SDK's ``list(group=...)`` answers the same through
the HTTP transport and the direct one; a bad group is refused in one line (422)."""

from __future__ import annotations

import devenv
from devenv.client.transports.direct import DirectTransport
from devenv.client.transports.http import HttpTransport
from devenv.errors import InvalidValueError
from tests.api.conftest import Api


def names(rows: list[dict[str, object]]) -> list[str]:
    return sorted(str(row["name"]) for row in rows)


async def test_listing_a_group_over_http_and_both_sdk_transports(api: Api) -> None:
    ends = {"inactivity_duration": "1h"}
    api.start("alice", "api-grp-gpu", group="api-pair", keep_alive="group", **ends)
    api.start("alice", "api-grp-cpu", group="api-pair", **ends)
    api.start("alice", "api-grp-web", group="api-web", **ends)
    api.start("bob", "api-grp-bobs", group="api-pair", **ends)

    with api.client("alice") as http:
        answer = http.get("/environments", params={"group": "api-pair"})
        assert answer.status_code == 200, answer.text
        assert names(answer.json()) == ["api-grp-cpu", "api-grp-gpu"]
        assert {row["group"] for row in answer.json()} == {"api-pair"}
        bad = http.get("/environments", params={"group": 'x" OR DevEnvName="y'})
        assert bad.status_code == 422, bad.text
        assert "group: " in bad.text and "accepted: 1 to 40 lowercase letters" in bad.text
    with api.client("bob") as http:
        bobs = http.get("/environments", params={"group": "api-pair"}).json()
        assert names(bobs) == ["api-grp-bobs"]

    remote = devenv.AsyncClient(server_url=api.url, token=api.tokens["alice"])
    assert isinstance(remote.transport, HttpTransport)
    direct = devenv.AsyncClient(address=f"127.0.0.1:{api.world.temporal_port}")
    assert isinstance(direct.transport, DirectTransport)
    over_http = await remote.list(group="api-pair")
    assert names([row.model_dump() for row in over_http]) == ["api-grp-cpu", "api-grp-gpu"]
    everyone = await direct.list(group="api-pair")  # direct: the server's whole store
    assert names([r.model_dump() for r in everyone]) == [
        "api-grp-bobs",
        "api-grp-cpu",
        "api-grp-gpu",
    ]
    pages = [row async for page in direct.list_pages(group="api-web") for row in page]
    assert [row.name for row in pages] == ["api-grp-web"]
    for client in (remote, direct):
        try:
            await client.list(group="Not A Group")
        except InvalidValueError as refused:
            assert str(refused).startswith("group: 'Not A Group' is not a valid name; accepted:")
        else:
            raise AssertionError("a bad group must be refused")
    await remote.aclose()
    await direct.aclose()
    for user, name in (
        ("alice", "api-grp-gpu"),
        ("alice", "api-grp-cpu"),
        ("alice", "api-grp-web"),
        ("bob", "api-grp-bobs"),
    ):
        with api.client(user) as http:
            assert http.delete(f"/environments/{name}", params={"wait": "true"}).status_code == 200
