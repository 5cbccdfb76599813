"""The figures of `GET /metrics` from a real Temporal dev server's visibility store:
workflows carrying memo rows as the environment workflow writes them (no worker runs
them: the metrics must read memos only), some closed, read by ``FleetReader`` and
rendered per caller."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from devenv.api import metrics
from devenv.api.exposition import render
from devenv.api.metrics import MetricsCache, families
from devenv.client.async_client import AsyncClient
from devenv.client.fleet_figures import FleetReader, Snapshot
from devenv.client.listing import Visibility
from devenv.client.tokens import User
from devenv.errors import NotAnsweringError
from devenv.models.state import WORKFLOW_TYPE
from devenv.models.status import MEMO_KEY
from devenv.settings import Settings
from tests.servers import start_test_dev_server

NOBODY_POLLS = "metrics-test-no-worker"
NOW = datetime.now(UTC)
DAY_AGO = NOW - timedelta(days=1)


def hours_since(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds() / 3600


@pytest.fixture(scope="module")
async def temporal() -> AsyncIterator[Client]:
    """A dev server of its own: no other test's workflows in its store."""
    async with await start_test_dev_server() as env:
        assert isinstance(env, WorkflowEnvironment)
        yield env.client


def row(name: str, status: str, **keys: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "workflow_id": f"devenv-{name}",
        "backend": "local",
        "status": status,
        "activity": None,
        "connections": 0,
        "inactivity_duration": 600,
        "max_duration": None,
        "idle_since": None,
        "deadline": None,
        "termination_reason": None,
    }
    return {**base, **keys}


async def seed(client: Client, memo_row: dict[str, Any] | None, close: str | None = None) -> None:
    """One workflow of the environment's type with ``memo_row`` as its memo; terminated
    with ``close`` as the reason when given."""
    handle = await client.start_workflow(
        WORKFLOW_TYPE,
        id=f"devenv-metrics-{uuid.uuid4().hex[:8]}",
        task_queue=NOBODY_POLLS,
        memo=None if memo_row is None else {MEMO_KEY: memo_row},
    )
    if close is not None:
        await handle.terminate(reason=close)


def stopped(name: str) -> dict[str, Any]:
    return row(name, "terminated", owner="alice", termination_reason="stopped_by_user")


def user(name: str, admin: bool = False) -> User:
    return User(name=name, admin=admin, token_sha256="0" * 64, created_at=NOW)


def scrape(snapshot: Snapshot, who: User) -> dict[str, float]:
    """The scrape's samples: ``name{labels}`` -> value."""
    samples = {}
    for line in render(families(snapshot, who)).splitlines():
        if not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


async def test_gauges_and_totals_per_caller_from_memos_alone(temporal: Client) -> None:
    await seed(temporal, row("a1", "running", owner="alice", connections=2, price_per_hour=1.5))
    await seed(
        temporal,
        row(
            "b1",
            "suspended",
            backend="aws",
            owner="bob",
            shared_with=["alice"],
            price_per_hour=1,
            storage_price_per_hour=0.02,
        ),
    )
    await seed(temporal, row("b2", "running", owner="bob", policy_changes=2))
    await seed(temporal, None)  # started before memos: not counted, said so to admins
    await seed(temporal, stopped("a6"))  # ended, its workflow in its last moments
    # alice's, ended by inactivity 2h after ready, max_duration 3h: saved 1h at 3.6 $/h
    ended_a = row(
        "a2",
        "terminated",
        owner="alice",
        termination_reason="inactivity_duration_exceeded",
        max_duration=3 * 3600,
        price_per_hour=3.6,
        billed_from=iso(DAY_AGO),
        billed_until=iso(DAY_AGO + timedelta(hours=2)),
    )
    await seed(temporal, ended_a, close="test: closed")
    # bob's, ended by inactivity an hour ago without max_duration: saved until now
    ended_b = row(
        "b3",
        "terminated",
        owner="bob",
        termination_reason="inactivity_duration_exceeded",
        price_per_hour=7.2,
        billed_from=iso(NOW - timedelta(hours=3)),
        billed_until=iso(NOW - timedelta(hours=1)),
        policy_changes=1,
    )
    await seed(temporal, ended_b, close="test: closed")
    await seed(temporal, stopped("a3"), close="x")
    await seed(temporal, row("a4", "running", owner="alice"), close="terminated from the Web UI")

    reader = FleetReader(page_size=2)  # several pages, as a fleet of thousands reads
    scraped_after = datetime.now(UTC)
    snapshot = await reader.read(Visibility.of(temporal))

    admin = scrape(snapshot, user("root", admin=True))
    scraped_by = datetime.now(UTC)
    assert admin['devenv_environments{backend="local",owner="alice",status="running"}'] == 1
    assert admin['devenv_environments{backend="local",owner="bob",status="running"}'] == 1
    assert admin['devenv_environments{backend="aws",owner="bob",status="suspended"}'] == 1
    assert admin["devenv_connections"] == 2
    assert admin['devenv_cost_dollars_per_hour{status="running"}'] == 1.5
    # Suspended, an aws instance bills its volumes only, never its running price.
    assert admin['devenv_cost_dollars_per_hour{status="suspended"}'] == 0.02
    assert admin['devenv_cost_dollars_per_hour{status="suspending"}'] == 0
    assert admin['devenv_terminations_total{reason="inactivity_duration_exceeded"}'] == 2
    assert admin['devenv_terminations_total{reason="stopped_by_user"}'] == 1
    assert admin['devenv_terminations_total{reason="terminated_outside_devenv"}'] == 1
    # idle: the 600 s threshold at 3.6 and 7.2 $/h
    assert admin["devenv_idle_cost_dollars_total"] == pytest.approx(0.6 + 1.2)
    # saved: 1 h at 3.6 (capped) + about 1 h at 7.2 (until now, growing)
    # (NOW is when this module was imported: in a full suite, minutes before the scrape)
    saved = admin["devenv_saved_dollars_total"]
    assert 3.6 + 7.2 * hours_since(NOW - timedelta(hours=1), scraped_after) <= saved + 1e-6
    assert saved <= 3.6 + 7.2 * hours_since(NOW - timedelta(hours=1), scraped_by) + 1e-6
    assert admin["devenv_policy_changes_total"] == 3
    assert admin["devenv_environments_without_memo"] == 1
    assert not [key for key in admin if 'status="terminated"' in key]

    alice = scrape(snapshot, user("alice"))
    assert "bob" not in "".join(k for k in alice if not k.startswith("devenv_environments{"))
    assert alice['devenv_environments{backend="aws",owner="bob",status="suspended"}'] == 1  # shared
    assert 'devenv_environments{backend="local",owner="bob",status="running"}' not in alice
    assert alice["devenv_connections"] == 2
    assert alice['devenv_terminations_total{reason="inactivity_duration_exceeded"}'] == 1
    assert alice["devenv_idle_cost_dollars_total"] == pytest.approx(0.6)
    assert alice["devenv_saved_dollars_total"] == pytest.approx(3.6)
    assert "devenv_environments_without_memo" not in alice

    carol = scrape(snapshot, user("carol"))
    assert not [k for k in carol if k.startswith(("devenv_environments{", "devenv_terminations"))]
    assert carol["devenv_saved_dollars_total"] == 0

    # The next read lists only what closed since: nothing counted twice, new ends added.
    await seed(temporal, stopped("a5"), close="x")
    again = scrape(await reader.read(Visibility.of(temporal)), user("root", admin=True))
    assert again['devenv_terminations_total{reason="inactivity_duration_exceeded"}'] == 2
    assert again['devenv_terminations_total{reason="stopped_by_user"}'] == 2
    assert again["devenv_saved_dollars_total"] >= admin["devenv_saved_dollars_total"]
    assert re.fullmatch(r"\d+(\.\d+)?", str(again["devenv_metrics_read_seconds"]))


async def test_a_slow_first_read_is_a_503_and_a_stale_snapshot_is_served_at_once(
    temporal: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    address = temporal.service_client.config.target_host
    client = AsyncClient(settings=Settings(home=tmp_path, address=address, namespace="default"))
    cache = MetricsCache(client)
    monkeypatch.setattr(metrics, "FIRST_WAIT_SECONDS", 0.0)
    with pytest.raises(NotAnsweringError, match="first read of the fleet"):
        await cache.snapshot()  # the read goes on...
    await wait_until(lambda: cache.latest is not None)
    first = await cache.snapshot()  # ...and a later scrape gets it
    assert first.live
    # a stale snapshot of a fleet whose read is slow: served at once, a read starts
    stale = replace(first, at=first.at - timedelta(minutes=5), read_seconds=30.0)
    cache.latest = stale
    assert await cache.snapshot() is stale
    await wait_until(lambda: cache.latest is not stale)
    assert cache.latest is not None and cache.latest.at > first.at


async def wait_until(done: Callable[[], bool], timeout: float = 30) -> None:
    give_up = asyncio.get_running_loop().time() + timeout
    while not done():
        assert asyncio.get_running_loop().time() < give_up, "timed out"
        await asyncio.sleep(0.05)
