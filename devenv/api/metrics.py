"""`GET /metrics`: the fleet's figures in Prometheus's text format, for one caller.

Any API user may scrape with their bearer token (a loopback client is not trusted
without one: on a shared host every local account can reach loopback, and the owners'
names and costs are not theirs to read). An admin's scrape covers every environment;
anyone else's only those they own or that are shared with them, exactly what their
``GET /api/v1/environments`` lists, totals included.

The figures come from ``devenv.client.fleet_figures`` (the visibility store, no query
per environment). One read serves every scrape while it is fresh: ``FRESH_SECONDS``, or
``READ_SHARE`` times as long as the read took, so that reading a large fleet keeps the
Temporal server busy a quarter of the time at most. A scrape that finds it stale starts
a new read and answers with the previous snapshot (``devenv_metrics_snapshot_age_seconds``
says how old); it waits for the new read, at most ``WAIT_SECONDS``, only when the last
read was that quick. So a scrape of a fleet of 10,000 takes milliseconds; only the very
first after the server started waits for its read (``FIRST_WAIT_SECONDS`` at most).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from fastapi import FastAPI, Request, Response
from temporalio.service import RPCError

from devenv.api.auth import Caller
from devenv.api.exposition import CONTENT_TYPE, Family, render
from devenv.client.async_client import AsyncClient
from devenv.client.fleet_figures import Audience, FleetReader, Snapshot
from devenv.client.listing import Visibility
from devenv.client.tokens import User
from devenv.errors import NotAnsweringError
from devenv.models.state import Status

PATH = "/metrics"
FRESH_SECONDS = 5.0
READ_SHARE = 4.0
WAIT_SECONDS = 0.5
FIRST_WAIT_SECONDS = 8.0
"""The first scrape waits this long for the first read, under Prometheus's default
``scrape_timeout`` (10 s); past it, a one-line 503 and the read goes on for the next."""
ALIVE = [status.value for status in Status if not status.ended]
"""The statuses ``devenv_cost_dollars_per_hour`` always shows (0 when none)."""

log = logging.getLogger("devenv.api")


class MetricsCache:
    """The latest snapshot and the read in progress (at most one at a time)."""

    def __init__(self, client: AsyncClient, reader: FleetReader | None = None) -> None:
        self.client = client
        self.reader = reader or FleetReader()
        self.latest: Snapshot | None = None
        self._reading: asyncio.Task[Snapshot] | None = None

    async def snapshot(self) -> Snapshot:
        latest = self.latest
        if latest is not None and _age(latest) < fresh_for(latest):
            return latest
        if self._reading is None:
            self._reading = asyncio.create_task(self._read(), name="devenv-metrics-read")
            self._reading.add_done_callback(_retrieved)
        reading = self._reading
        if latest is None:
            try:
                return await asyncio.wait_for(asyncio.shield(reading), FIRST_WAIT_SECONDS)
            except TimeoutError:
                raise NotAnsweringError(
                    f"the metrics' first read of the fleet takes over {FIRST_WAIT_SECONDS:.0f} s; "
                    "it goes on, and the next scrape gets its figures"
                ) from None
        if latest.read_seconds > WAIT_SECONDS:
            return latest  # a large fleet: the read goes on in the background
        with contextlib.suppress(TimeoutError, NotAnsweringError):
            return await asyncio.wait_for(asyncio.shield(reading), WAIT_SECONDS)
        return latest

    async def _read(self) -> Snapshot:
        try:
            source = Visibility.of(await self.client.temporal())
            snapshot = await self.reader.read(source)
        except RPCError as problem:
            log.warning("metrics: the visibility store did not answer: %s", problem.message)
            raise NotAnsweringError(
                f"the Temporal server did not answer the metrics' listing: {problem.message}"
            ) from None
        finally:
            self._reading = None
        self.latest = snapshot
        return snapshot


def fresh_for(snapshot: Snapshot) -> float:
    """How long ``snapshot`` serves scrapes before a new read starts."""
    return max(FRESH_SECONDS, READ_SHARE * snapshot.read_seconds)


def _retrieved(task: asyncio.Task[Snapshot]) -> None:
    """A read nobody waited for: its failure is logged, not left unretrieved."""
    if task.cancelled():
        return
    problem = task.exception()
    if problem is not None and not isinstance(problem, NotAnsweringError):  # that one is
        log.warning("metrics: reading the fleet failed: %s", problem)


def _age(snapshot: Snapshot) -> float:
    return (datetime.now(UTC) - snapshot.at).total_seconds()


def _sees(user: User, audience: Audience) -> bool:
    """Whether ``user``'s scrape counts an environment of ``audience`` (as their listing)."""
    owner, shared_with = audience
    return user.admin or owner == user.name or user.name in shared_with


def families(snapshot: Snapshot, user: User) -> list[Family]:
    """The metrics of ``snapshot`` that ``user`` may see."""
    environments = Family(
        "devenv_environments",
        "gauge",
        "Environments whose workflow runs, by status (provisioning, running, suspending, "
        "suspended, resuming, terminating), backend and owner.",
    )
    connections = Family(
        "devenv_connections", "gauge", "User connections counted now, all environments."
    )
    per_hour = Family(
        "devenv_cost_dollars_per_hour",
        "gauge",
        "USD per hour of the environments in each status (their price_per_hour; while "
        "suspending, suspended or resuming their storage_price_per_hour, the kept volumes; "
        "unknown prices count 0).",
    )
    for status in ALIVE:
        per_hour.set(0.0, status=status)
    connections.set(0.0)
    seen = [row for row in snapshot.live if _sees(user, (row.owner, row.shared_with))]
    for row in seen:
        environments.add(1, status=row.status, backend=row.backend, owner=row.owner or "")
        connections.add(row.connections)
        per_hour.add(row.price_per_hour or 0.0, status=row.status)
    terminations = Family(
        "devenv_terminations_total",
        "counter",
        "Environments ended, by reason (inactivity_duration_exceeded, max_duration_exceeded, "
        "stopped_by_user, ...), counted once their workflow closed.",
    )
    idle = Family(
        "devenv_idle_cost_dollars_total",
        "counter",
        "USD the final idle stretch of environments ended by inactivity cost (the idle "
        "threshold in force at their end x price).",
    )
    saved = Family(
        "devenv_saved_dollars_total",
        "counter",
        "USD that ending idle environments saved, as `devenv report` counts it: price x "
        "(min(created + max_duration, now) - ended).",
    )
    policy = Family(
        "devenv_policy_changes_total",
        "counter",
        "Policy changes applied to environments (0 until policies exist).",
    )
    idle.set(0.0)
    saved.set(0.0)
    policy.set(float(sum(r.policy_changes for r in seen)))
    for audience, totals in snapshot.closed.items():
        if not _sees(user, audience):
            continue
        for reason, count in totals.terminations.items():
            terminations.add(count, reason=reason)
        idle.add(totals.idle_cost)
        saved.add(totals.saved(snapshot.at))
        policy.add(totals.policy_changes)
    age = Family(
        "devenv_metrics_snapshot_age_seconds",
        "gauge",
        f"How old the figures of this scrape are (a read serves scrapes for {FRESH_SECONDS:.0f} "
        f"s, or {READ_SHARE:.0f} times as long as it took).",
    )
    age.set(round(max(_age(snapshot), 0.0), 3))
    found = [environments, connections, per_hour, terminations, idle, saved, policy, age]
    if user.admin:
        read = Family("devenv_metrics_read_seconds", "gauge", "How long reading the snapshot took.")
        read.set(round(snapshot.read_seconds, 3))
        unread = Family(
            "devenv_environments_without_memo",
            "gauge",
            "Running workflows without a memo row (started by an old devenv): not counted.",
        )
        unread.set(snapshot.without_memo)
        found += [read, unread]
    return found


def add_route(app: FastAPI) -> None:
    """``GET /metrics`` on ``app`` (whose ``state.client`` is the server's SDK client)."""
    app.state.metrics = MetricsCache(app.state.client)

    @app.get(
        PATH,
        response_class=Response,
        summary="Prometheus metrics of the environments this user may see",
        responses={
            200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."},
            401: {"description": "No token, or a token no user holds."},
            503: {"description": "The Temporal server did not answer (first scrape only)."},
        },
    )
    async def metrics(request: Request, user: Caller) -> Response:
        """Environments by status, backend and owner; connections; cost per hour; totals
        of terminations, idle cost, savings and policy changes. An admin sees every
        owner, anyone else their own and those shared with them."""
        cache: MetricsCache = request.app.state.metrics
        snapshot = await cache.snapshot()
        return Response(render(families(snapshot, user)), media_type=CONTENT_TYPE)
