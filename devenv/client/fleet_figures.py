"""The fleet's figures behind `GET /metrics`, read from the visibility store alone.

Each workflow keeps its row current in its memo (``devenv.workflows.visibility``), so
one listing of the running workflows gives every gauge, and the closed workflows give
the totals: no environment is asked anything, however many there are. Closed
workflows never change, so each is read once: after the first pass only those closed
since the previous one (``CloseTime``) are listed, and their figures are added to
totals kept per audience (owner and the users it is shared with), which the API
filters per caller.

The totals are counters: they only grow while the server runs (an environment that
the namespace's retention later deletes stays counted) and restart from what the
store still holds when the server restarts, which Prometheus's ``rate()`` and
``increase()`` treat as a counter reset.

Cost and savings follow ``devenv report`` (``devenv.client.report``), from what the
memo keeps: idle cost is what the final idle stretch of each environment ended by
inactivity cost (the idle threshold in force at its end, at most its billed time: a
lower bound when it was extended); savings are ``report.seconds_saved`` from its end,
with its billing start (ready, or created) standing in for its creation.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from devenv.client.listing import LIST_PAGE_SIZE, LIST_TIMEOUT, Visibility
from devenv.client.report import seconds_saved, usd
from devenv.models.idle_spend import final_idle_seconds
from devenv.models.state import WORKFLOW_TYPE, Status, TerminationReason
from devenv.models.status import MEMO_KEY

CLOSED_SLACK = timedelta(minutes=2)
"""Each incremental pass lists the workflows closed since the previous pass began, minus
this: a store whose visibility lags (Elasticsearch: about a second) or a Temporal server
whose clock is a little behind this one loses none; the run ids already counted are
skipped."""
_STATUS = WorkflowExecutionStatus
CLOSED_REASONS: dict[int, str] = {
    _STATUS.WORKFLOW_EXECUTION_STATUS_TERMINATED: "terminated_outside_devenv",
    _STATUS.WORKFLOW_EXECUTION_STATUS_FAILED: "workflow_failed",
    _STATUS.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "workflow_timed_out",
    _STATUS.WORKFLOW_EXECUTION_STATUS_CANCELED: "workflow_canceled",
}
"""The ``reason`` of a workflow closed from outside before it recorded its own reason
(``devenv.client.closed`` words the same cases for `devenv ps`)."""
KNOWN_REASONS = frozenset(reason.value for reason in TerminationReason)
ENDED = frozenset(status.value for status in Status if status.ended)
SUSPENSION = frozenset({Status.SUSPENDING.value, Status.SUSPENDED.value, Status.RESUMING.value})

Audience = tuple[str | None, tuple[str, ...]]
"""Who may see an environment's figures: its owner and the users it is shared with."""


class MemoFigures(BaseModel):
    """The keys of a memo row (``EnvironmentStatus``) that the metrics read; the rest is
    ignored, so rows of any version validate."""

    model_config = ConfigDict(extra="ignore")

    status: str
    backend: str = "unknown"
    owner: str | None = None
    shared_with: tuple[str, ...] = ()
    connections: int = 0
    inactivity_duration: int | None = None
    max_duration: int | None = None
    termination_reason: str | None = None
    price_per_hour: float | None = None
    storage_price_per_hour: float | None = None
    billed_from: datetime | None = None
    billed_until: datetime | None = None
    policy_changes: int = 0

    @property
    def audience(self) -> Audience:
        return self.owner, tuple(sorted(self.shared_with))

    @property
    def billed_per_hour(self) -> float | None:
        """What it bills by the hour now: its volumes while suspended (or on the way in or
        out), its price otherwise."""
        if self.status in SUSPENSION:
            return self.storage_price_per_hour
        return self.price_per_hour


@dataclass(frozen=True)
class LiveRow:
    """A running workflow's figures (its status may say terminating, suspended...)."""

    run_id: str
    status: str
    backend: str
    owner: str | None
    shared_with: tuple[str, ...]
    connections: int
    price_per_hour: float | None
    """What it bills by the hour now (suspended: its storage price)."""
    policy_changes: int


@dataclass
class ClosedTotals:
    """The totals of the closed environments of one audience."""

    terminations: Counter[str] = field(default_factory=Counter)
    idle_cost: float = 0.0
    saved_settled: float = 0.0
    """Savings that no longer grow (capped by a max_duration that has passed)."""
    saved_open: list[tuple[float, datetime, datetime, int]] = field(default_factory=list)
    """(price, ended, billed from, max_duration) of savings still growing toward their cap."""
    uncapped_price: float = 0.0
    uncapped_price_ended: float = 0.0
    """Σ price and Σ price x end (epoch seconds) of savings without a cap, which grow
    with the clock: Σ price x (now - end) = now x Σ price - Σ price x end."""
    policy_changes: int = 0

    def copy(self) -> ClosedTotals:
        return replace(self, terminations=Counter(self.terminations), saved_open=[*self.saved_open])

    def add(self, other: ClosedTotals) -> None:
        self.terminations.update(other.terminations)
        self.idle_cost += other.idle_cost
        self.saved_settled += other.saved_settled
        self.saved_open += other.saved_open
        self.uncapped_price += other.uncapped_price
        self.uncapped_price_ended += other.uncapped_price_ended
        self.policy_changes += other.policy_changes

    def count(self, figures: MemoFigures, execution_status: int) -> None:
        """Add one closed environment."""
        self.terminations[reason_label(figures, execution_status)] += 1
        self.policy_changes += figures.policy_changes
        price, ended = figures.price_per_hour, figures.billed_until
        if figures.termination_reason != TerminationReason.INACTIVITY_DURATION_EXCEEDED.value:
            return
        if price is None or ended is None:
            return
        idle = final_idle_seconds(figures.inactivity_duration, figures.billed_from, ended)
        self.idle_cost += usd(price, idle) or 0.0
        if figures.max_duration is None or figures.billed_from is None:
            self.uncapped_price += price
            self.uncapped_price_ended += price * ended.timestamp()
        else:
            self.saved_open.append((price, ended, figures.billed_from, figures.max_duration))

    def settle(self, now: datetime) -> None:
        """Move the savings whose cap has passed to the settled sum."""
        still: list[tuple[float, datetime, datetime, int]] = []
        for price, ended, created, cap in self.saved_open:
            seconds, until = seconds_saved(ended, created, cap, now)
            if until == "max_duration":
                self.saved_settled += usd(price, seconds) or 0.0
            else:
                still.append((price, ended, created, cap))
        self.saved_open = still

    def saved(self, now: datetime) -> float:
        """USD saved as of ``now`` (``report.seconds_saved`` for each open one)."""
        growing = sum(
            usd(price, seconds_saved(ended, created, cap, now)[0]) or 0.0
            for price, ended, created, cap in self.saved_open
        )
        uncapped = max(now.timestamp() * self.uncapped_price - self.uncapped_price_ended, 0.0)
        return self.saved_settled + growing + uncapped / 3600


def reason_label(figures: MemoFigures, execution_status: int) -> str:
    """The ``reason`` label: the workflow's own reason, else how it was closed from
    outside; a bounded set either way (never free text)."""
    if figures.termination_reason in KNOWN_REASONS:
        return figures.termination_reason
    return CLOSED_REASONS.get(execution_status, "unknown")


@dataclass(frozen=True)
class Snapshot:
    """The figures of one moment, which a scrape renders (per caller)."""

    at: datetime
    live: list[LiveRow]
    closed: dict[Audience, ClosedTotals]
    without_memo: int
    """Running workflows without a memo row (started before devenv kept one): not counted."""
    read_seconds: float


@dataclass
class FleetReader:
    """Reads snapshots; keeps the closed totals between reads (one reader per server, one
    read at a time: ``devenv.api.metrics.MetricsCache`` sees to it)."""

    page_size: int = LIST_PAGE_SIZE
    _closed: dict[Audience, ClosedTotals] = field(default_factory=dict)
    _counted: dict[str, datetime] = field(default_factory=dict)
    """Run ids of closed workflows already counted, and when they closed (pruned)."""
    _since: datetime | None = None

    async def read(self, source: Visibility) -> Snapshot:
        """One snapshot: every running workflow's row and the totals, new closes added."""
        began, clock = datetime.now(UTC), time.perf_counter()
        live: list[LiveRow] = []
        without_memo = 0
        running = f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus="Running"'
        async for execution in self._pages(source, running):
            figures = _figures(execution)
            if figures is None:
                without_memo += 1
                continue
            if figures.status in ENDED:
                continue  # its last moments: counted once its workflow closed
            live.append(
                LiveRow(
                    run_id=execution.execution.run_id,
                    status=figures.status,
                    backend=figures.backend,
                    owner=figures.owner,
                    shared_with=figures.audience[1],
                    connections=figures.connections,
                    price_per_hour=figures.billed_per_hour,
                    policy_changes=figures.policy_changes,
                )
            )
        added, counted = await self._newly_closed(source)
        # No await from here on: the totals and the snapshot change together.
        live = [row for row in live if row.run_id not in counted]  # closed since listed
        self._counted.update(counted)
        for audience, totals in added.items():
            self._closed.setdefault(audience, ClosedTotals()).add(totals)
        for totals in self._closed.values():
            totals.settle(began)
        self._since = began - CLOSED_SLACK
        self._counted = {run: at for run, at in self._counted.items() if at >= self._since}
        return Snapshot(
            at=began,
            live=live,
            closed={audience: totals.copy() for audience, totals in self._closed.items()},
            without_memo=without_memo,
            read_seconds=time.perf_counter() - clock,
        )

    async def _newly_closed(
        self, source: Visibility
    ) -> tuple[dict[Audience, ClosedTotals], dict[str, datetime]]:
        query = (
            f'WorkflowType="{WORKFLOW_TYPE}" AND ExecutionStatus!="Running" '
            'AND ExecutionStatus!="ContinuedAsNew"'
        )
        if self._since is not None:
            query += f' AND CloseTime>="{self._since.isoformat()}"'
        added: dict[Audience, ClosedTotals] = {}
        counted: dict[str, datetime] = {}
        async for execution in self._pages(source, query):
            run = execution.execution.run_id
            if run in self._counted or run in counted:
                continue
            counted[run] = execution.close_time.ToDatetime(tzinfo=UTC)
            figures = _figures(execution)
            if figures is None:
                figures = MemoFigures(status="unknown")
            added.setdefault(figures.audience, ClosedTotals()).count(figures, execution.status)
        return added, counted

    async def _pages(self, source: Visibility, query: str) -> AsyncIterator[WorkflowExecutionInfo]:
        token = b""
        while True:
            response = await source.service.workflow_service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace=source.namespace,
                    page_size=self.page_size,
                    next_page_token=token,
                    query=query,
                ),
                retry=True,
                timeout=LIST_TIMEOUT,
            )
            for execution in response.executions:
                yield execution
            token = response.next_page_token
            if not token:
                return


def _figures(execution: WorkflowExecutionInfo) -> MemoFigures | None:
    """The memo row's figures; None without a row (or with one this version cannot read).
    Parsed by pydantic straight from the payload's JSON: a fleet has thousands."""
    payload = execution.memo.fields.get(MEMO_KEY)
    if payload is None or payload.metadata.get("encoding") != b"json/plain":
        return None
    try:
        return MemoFigures.model_validate_json(payload.data)
    except ValidationError:
        return None
