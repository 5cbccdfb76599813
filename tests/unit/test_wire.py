"""The API serves exactly the names of ``devenv.wire``, which the SDK's HTTP transport
sends: a path or a parameter renamed on one side only fails here, not in production."""

from __future__ import annotations

from pathlib import Path

from devenv import wire
from devenv.api import metrics
from devenv.api.app import create_app
from devenv.client.async_client import AsyncClient
from devenv.client.tokens import UserStore
from devenv.client.transports.direct import DirectTransport
from devenv.settings import Settings


def openapi(tmp_path: Path) -> dict[str, dict[str, dict[str, object]]]:
    settings = Settings.load().model_copy(update={"home": tmp_path})
    client = AsyncClient(transport=DirectTransport(settings))  # never connects here
    paths: dict[str, dict[str, dict[str, object]]] = create_app(
        client, UserStore(settings)
    ).openapi()["paths"]
    return paths


def parameters(operation: dict[str, object]) -> set[str]:
    listed = operation.get("parameters", [])
    assert isinstance(listed, list)
    return {p["name"] for p in listed if p["in"] == "query"}


def test_the_api_serves_the_wire_paths_and_parameters(tmp_path: Path) -> None:
    paths = openapi(tmp_path)
    below = {path: wire.PREFIX + path for path in (wire.ENVIRONMENTS, wire.ENVIRONMENT)}
    assert set(paths) == {
        *below.values(),
        wire.PREFIX + wire.EVENTS,
        wire.PREFIX + wire.CONNECTION,
        wire.PREFIX + wire.SUSPEND,
        wire.PREFIX + wire.RESUME,
        metrics.PATH,  # Prometheus's, not the SDK's: outside the prefix, not in the wire
        wire.PREFIX + wire.POLICY,
    }
    policy = paths[wire.PREFIX + wire.POLICY]
    assert set(policy) == {"get", "put", "delete"}
    assert parameters(policy["delete"]) == {wire.USER}
    assert "max_inactivity" in str(policy["put"])
    listing = paths[below[wire.ENVIRONMENTS]]
    assert parameters(listing["get"]) == {wire.ALL, wire.GROUP}
    assert parameters(listing["post"]) == {wire.WAIT}
    assert wire.WAIT_READY in str(listing["post"]["parameters"])
    assert parameters(paths[below[wire.ENVIRONMENT]]["delete"]) == {wire.WAIT, wire.PURGE}
    assert parameters(paths[wire.PREFIX + wire.SUSPEND]["post"]) == {wire.WAIT}
    assert parameters(paths[wire.PREFIX + wire.RESUME]["post"]) == {wire.WAIT}
    patch = paths[below[wire.ENVIRONMENT]]["patch"]
    assert "ThresholdChanges" in str(patch) or "inactivity_duration" in str(patch)


def test_the_transport_builds_its_paths_from_the_same_templates() -> None:
    assert wire.environment("a") == "/environments/a"
    assert wire.events("a") == "/environments/a/events"
    assert wire.connection("a") == "/environments/a/connection"
    assert wire.suspend("a") == "/environments/a/suspend"
    assert wire.resume("a") == "/environments/a/resume"
    assert wire.flag(True) == wire.TRUE and wire.flag(False) == wire.FALSE
