"""What an environment has cost so far: computed from the price its backend reported and
its timestamps, listed from the memo (which carries the price, never a stale cost)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console
from temporalio import activity
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from devenv.cli.views import money, ps_table, statuses_json
from devenv.models.messages import ProvisionInput
from devenv.models.names import Activity
from devenv.models.state import EnvSpec, EnvState, InstanceInfo, Status, Tuning
from devenv.models.status import EnvironmentStatus, cost_so_far
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.visibility import memo_row
from tests.workflow.fakes import TEST_KEY, FakeBackend, listed_row, make_state, start, wait_for

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OLD_MEMO_KEYS = {
    "name", "workflow_id", "backend", "status", "activity", "connections",
    "inactivity_duration", "max_duration", "idle_since", "deadline", "termination_reason",
}  # fmt: skip


def instance(price: float | None) -> InstanceInfo:
    return InstanceInfo(
        instance_id="i-1",
        backend="aws",
        host="127.0.0.1",
        port=22,
        username="dev",
        host_public_key="ssh-ed25519 AAAAHostKey",
        task_queue="q",
        price_per_hour=price,
    )


def state(
    price: float | None,
    *,
    ready: datetime | None = T0,
    ended: datetime | None = None,
    status: Status = Status.RUNNING,
) -> EnvState:
    return EnvState(
        spec=EnvSpec(name="box", backend="aws", user_public_key=TEST_KEY),
        status=status,
        instance=instance(price),
        created_at=T0 - timedelta(minutes=3),
        ready_at=ready,
        ended_at=ended,
    )


def test_cost_is_price_times_hours_rounded_to_cents() -> None:
    assert cost_so_far(1.006, T0, None, T0 + timedelta(hours=2)) == 2.01
    assert cost_so_far(0.0104, T0, None, T0 + timedelta(minutes=30)) == 0.01
    assert cost_so_far(3.06, T0, T0 + timedelta(hours=4), T0 + timedelta(days=9)) == 12.24
    assert cost_so_far(0.0, T0, None, T0 + timedelta(days=30)) == 0.0
    assert cost_so_far(None, T0, None, T0 + timedelta(hours=1)) is None
    assert cost_so_far(1.0, None, None, T0) is None
    assert cost_so_far(1.0, T0, None, T0 - timedelta(hours=1)) == 0.0, "a clock behind counts 0"


def test_a_row_counts_from_ready_to_ended_or_now() -> None:
    running = EnvironmentStatus.from_state(state(2.0), T0 + timedelta(hours=1, minutes=30))
    assert (running.price_per_hour, running.cost) == (2.0, 3.0)
    ended = state(2.0, ended=T0 + timedelta(hours=1), status=Status.TERMINATED)
    assert EnvironmentStatus.from_state(ended, T0 + timedelta(days=2)).cost == 2.0
    never_ready = state(12.0, ready=None, ended=T0 + timedelta(minutes=2), status=Status.TERMINATED)
    assert EnvironmentStatus.from_state(never_ready, T0 + timedelta(hours=5)).cost == 1.0, (
        "stopped while provisioning: from created to ended"
    )


def test_an_unknown_price_is_an_unknown_cost() -> None:
    row = EnvironmentStatus.from_state(state(None), T0 + timedelta(hours=3))
    assert (row.price_per_hour, row.cost) == (None, None)
    provisioning = EnvState(spec=EnvSpec(name="box", user_public_key=TEST_KEY))
    assert EnvironmentStatus.from_state(provisioning).cost is None


def test_the_memo_carries_the_price_and_period_never_a_cost() -> None:
    memo = memo_row(state(0.5, ended=T0 + timedelta(hours=6), status=Status.TERMINATED))
    assert "cost" not in memo and memo["price_per_hour"] == 0.5
    assert memo["billed_from"] is not None and memo["billed_until"] is not None
    listed = EnvironmentStatus.model_validate(json.loads(json.dumps(memo)))
    assert listed.costed(T0 + timedelta(days=3)).cost == 3.0
    running = EnvironmentStatus.model_validate(memo_row(state(0.5)))
    assert running.costed(T0 + timedelta(hours=1)).cost == 0.5
    assert running.costed(T0 + timedelta(hours=2)).cost == 1.0


def test_the_memo_of_a_history_without_prices_is_unchanged() -> None:
    """Recorded histories carry no price: their memo rows must stay byte-identical, or
    replaying them would upsert a memo their history lacks."""
    assert set(memo_row(state(None))) == OLD_MEMO_KEYS
    assert set(memo_row(EnvState(spec=EnvSpec(name="box", user_public_key=TEST_KEY)))) == (
        OLD_MEMO_KEYS
    )


def rendered(rows: list[EnvironmentStatus]) -> str:
    console = Console(width=200, record=True, color_system=None)
    console.print(ps_table(rows))
    return console.export_text()


def test_ps_shows_a_cost_column() -> None:
    now = T0 + timedelta(hours=12, minutes=20)
    rows = [
        EnvironmentStatus.from_state(state(1.006), now).model_copy(update={"name": "gpu"}),
        EnvironmentStatus.from_state(state(0.0), now).model_copy(update={"name": "free"}),
        EnvironmentStatus.from_state(state(None), now).model_copy(update={"name": "old"}),
    ]
    text = rendered(rows)
    header, *lines = [line for line in text.splitlines() if line.strip()]
    assert "COST" in header.split()
    by_name = {line.split()[0]: line for line in lines}
    assert "$12.41" in by_name["gpu"]
    assert "$0.00" in by_name["free"]
    assert by_name["old"].split()[-2:] == ["-", "-"], "no price: no cost (and no reason)"
    assert money(1234.5) == "$1,234.50"


def test_ps_json_has_price_and_cost() -> None:
    rows = [
        EnvironmentStatus.from_state(state(0.096), T0 + timedelta(hours=10)),
        EnvironmentStatus.from_state(state(None), T0 + timedelta(hours=10)),
    ]
    priced, unknown = json.loads(statuses_json(rows))
    assert (priced["price_per_hour"], priced["cost"]) == (0.096, 0.96)
    assert datetime.fromisoformat(priced["billed_from"]) == T0
    assert priced["billed_until"] is None
    assert (unknown["price_per_hour"], unknown["cost"], unknown["billed_from"]) == (
        None,
        None,
        None,
    )


class PricedBackend(FakeBackend):
    """The fake backend, reporting a price like the real ones."""

    @activity.defn(name=Activity.PROVISION)
    async def provision(self, args: ProvisionInput) -> InstanceInfo:
        info = await super().provision(args)
        return info.model_copy(update={"price_per_hour": 3.06})


async def test_listing_computes_the_cost_from_the_memo_and_the_history_replays(
    dev_server_env: WorkflowEnvironment,
) -> None:
    client: Client = dev_server_env.client
    fake = PricedBackend(task_queue=f"tq-{uuid.uuid4().hex[:10]}")
    initial = make_state(tuning=Tuning(monitor=False))
    async with Worker(
        client, task_queue=fake.task_queue, workflows=[DevEnvironmentWorkflow],
        activities=fake.activities(),
    ):  # fmt: skip
        handle = await start(client, fake, initial)
        running = await wait_for(handle, lambda s: s.status == Status.RUNNING)
        await handle.execute_update(DevEnvironmentWorkflow.request_stop, None)
        final = await handle.result()
    assert running.instance is not None and running.instance.price_per_hour == 3.06
    assert final.ready_at is not None and final.ended_at is not None
    # The worker is gone: the listing answers from the memo alone.
    row, silent = await listed_row(
        client, initial.spec.name, lambda r: r is not None and r.status == "terminated",
        include_ended=True,
    )  # fmt: skip
    assert row is not None
    expected = round(3.06 * (final.ended_at - final.ready_at).total_seconds() / 3600, 2)
    assert (row.price_per_hour, row.cost) == (3.06, expected)
    # The session's server is shared: other tests' environments may be silent, not this one.
    assert row.workflow_id not in silent
    assert row == EnvironmentStatus.from_state(final)

    history = await handle.fetch_history()
    replayer = Replayer(workflows=[DevEnvironmentWorkflow], data_converter=pydantic_data_converter)
    assert (await replayer.replay_workflow(history)).replay_failure is None


def test_time_suspended_is_not_billed_at_the_hourly_price() -> None:
    state = EnvState(
        spec=EnvSpec(name="nap", user_public_key=TEST_KEY),
        status=Status.SUSPENDED,
        instance=instance(2.0),
        created_at=T0,
        ready_at=T0,
        suspended_at=T0 + timedelta(hours=3),
        suspended_seconds=3600.0,  # an earlier suspension of an hour
    )
    # Ready 5 h ago: suspended an hour earlier, and for the last 2 h: 2 h ran, $4.
    row = EnvironmentStatus.from_state(state, now=T0 + timedelta(hours=5))
    assert row.cost == 4.0
    assert row.suspended_since == T0 + timedelta(hours=3)
    memo = memo_row(state)
    assert memo["suspended_seconds"] == 3600.0 and "cost" not in memo
    assert EnvironmentStatus.model_validate(memo).costed(T0 + timedelta(hours=5)).cost == 4.0
