"""The authority table and the redaction filter, without a server: the docs show the
table the code enforces, a member's "would end it" is computed as the workflow would,
and no log line at any level carries a secret."""

from __future__ import annotations

import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from devenv import logging_redact
from devenv.api import authority
from devenv.errors import NotAllowedError
from devenv.models.state import EnvSpec, EnvState, Status

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def test_the_docs_show_the_table_the_api_enforces() -> None:
    teams = (Path(__file__).parents[2] / "docs" / "teams.md").read_text()
    assert authority.markdown() in teams


def idle_state(idle_for: timedelta, **spec: int) -> EnvState:
    state = EnvState(
        spec=EnvSpec(name="x", user_public_key="ssh-ed25519 AAAA", **spec),
        status=Status.RUNNING,
        created_at=NOW - timedelta(hours=1),
        idle_since=NOW - idle_for,
    )
    return state


@pytest.mark.parametrize(
    ("keys", "ends"),
    [
        ({"inactivity_duration": "1s"}, True),
        ({"inactivity_duration": "10m"}, True),  # idle 9m: it would end in 1m
        ({"inactivity_duration": "20m"}, False),
        ({"max_duration": "1s"}, True),
        ({"max_duration": "off"}, False),
        ({"stop_at": (NOW + timedelta(minutes=1)).isoformat()}, True),
        ({"stop_at": (NOW + timedelta(hours=1)).isoformat()}, False),
        ({"extend": "1h", "inactivity_duration": "1s"}, True),  # ends before the extend
        ({"extend": "1h"}, False),
        ({"inactivity_duration": "3h"}, False),
    ],
)
def test_a_members_change_that_would_end_it_soon_is_a_stop(
    keys: dict[str, str], ends: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import devenv.client.durations as durations

    real = durations.check_stop_at
    monkeypatch.setattr(durations, "check_stop_at", lambda k, v, now=None: real(k, v, NOW))
    state = idle_state(timedelta(minutes=9), inactivity_duration=7200, max_duration=86400)
    row = type("Row", (), {"name": "x", "owner": "alice"})()
    if ends:
        with pytest.raises(NotAllowedError, match="which is a stop"):
            authority.require_not_ending(row, state, keys, NOW)  # type: ignore[arg-type]
    else:
        authority.require_not_ending(row, state, keys, NOW)  # type: ignore[arg-type]


def test_no_log_line_at_any_level_carries_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    api_key = "planted-key-0123456789"
    monkeypatch.setenv("DEVENV_TEMPORAL_API_KEY", api_key)
    logger = logging.getLogger("devenv-test-redaction")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logging_redact.install(logger)
    token = "devenv_" + "Ab9_" * 11
    hook = "https://hooks.example.com/services/T0/B0/hook-secret-42?token=q-secret"
    key = "\n".join(
        [
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXktdjE",
            "-----END OPENSSH PRIVATE KEY-----",
        ]
    )
    try:
        logger.debug("HTTP Request: POST %s %r", hook, "HTTP/1.1 200 OK")
        logger.info("headers: Authorization: Bearer %s", token)
        logger.warning("api: 401 GET '/api/v1/environments': no bearer token")
        logger.warning("connect with api key %s failed; password=hunter2-secret", api_key)
        logger.error("key file:\n%s", key)
        try:
            raise httpx.ConnectError(f"cannot reach {hook}")
        except httpx.ConnectError:
            logger.exception("webhook failed")
    finally:
        logger.removeHandler(handler)
    written = stream.getvalue()
    for secret in (token, "hook-secret-42", "q-secret", api_key, "hunter2-secret", "b3Blbn"):
        assert secret not in written, secret
    assert "https://hooks.example.com/***" in written and "webhook failed" in written
    assert "no bearer token" in written, "prose stays readable"
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
