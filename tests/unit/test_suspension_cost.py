"""What a suspended environment costs and what suspension saved: its volumes' price by the
hour while suspended, against the running price; in `ps`, `ps -v`, `report` and the
warning before it is deleted. All computed by readers from the memo row (no clock in the
workflow, no query per environment)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devenv.cli.views import cost_cell, ps_cells
from devenv.client.report import build_report, environment_report
from devenv.models.state import EnvSpec, EnvState, InstanceInfo, Status, TerminationReason
from devenv.models.status import EnvironmentStatus, suspension_costs
from devenv.models.suspension_cost import per_hour, suspension_words
from devenv.workflows import display
from devenv.workflows.display import warning_message
from devenv.workflows.visibility import memo_row
from tests.workflow.fakes import TEST_KEY

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
H = 3600.0
PRICE, STORAGE = 1.006, 0.011  # g5.xlarge; 100 GB of gp3 at $0.08/GB-month


def suspended_state(
    *,
    storage: float | None = STORAGE,
    price: float | None = PRICE,
    earlier: float = 0.0,
    status: Status = Status.SUSPENDED,
) -> EnvState:
    """Ready at T0, ran 2 h, suspended since T0 + 2h (and ``earlier`` seconds before)."""
    return EnvState(
        spec=EnvSpec(
            name="box", backend="aws", user_public_key=TEST_KEY, on_idle="suspend",
            suspendable=True,
        ),
        status=status,
        instance=InstanceInfo(
            instance_id="i-1", backend="aws", host="127.0.0.1", port=22, username="dev",
            host_public_key="ssh-ed25519 AAAAHostKey", task_queue="q",
            price_per_hour=price, storage_price_per_hour=storage,
        ),
        created_at=T0 - timedelta(minutes=3),
        ready_at=T0 - timedelta(seconds=earlier),
        suspended_at=T0 + timedelta(hours=2) if status == Status.SUSPENDED else None,
        suspended_seconds=earlier,
        suspend_reason="idle for 30m (on_idle: suspend)",
        deadline=T0 + timedelta(days=7) if status == Status.SUSPENDED else None,
        deadline_reason=TerminationReason.DELETE_AFTER_EXCEEDED
        if status == Status.SUSPENDED
        else None,
    )  # fmt: skip


def test_storage_cost_and_saving_are_hours_suspended_times_the_prices() -> None:
    assert suspension_costs(PRICE, STORAGE, 10 * H) == (0.11, 9.95)
    assert suspension_costs(PRICE, None, 10 * H) == (None, 10.06), "no storage price: 0 off"
    assert suspension_costs(None, STORAGE, 10 * H) == (0.11, None), "no running price"
    assert suspension_costs(PRICE, STORAGE, 0.0) == (0.0, 0.0)
    assert suspension_costs(0.01, 0.02, H) == (0.02, 0.0), "never a negative saving"


def test_a_suspended_row_bills_running_time_and_its_volumes_apart() -> None:
    now = T0 + timedelta(hours=12)  # 2 h running, then 10 h suspended
    row = EnvironmentStatus.from_state(suspended_state(), now)
    assert row.cost == round(PRICE * 2, 2) == 2.01
    assert (row.storage_price_per_hour, row.storage_cost, row.suspension_saved) == (
        STORAGE,
        0.11,
        9.95,
    )
    assert row.suspended_now
    assert cost_cell(row) == "$2.01 + $0.11 storage"
    assert ps_cells(row)[0][6] == "$2.01 + $0.11 storage"
    assert suspension_words(row) == (
        "storage $0.011/h ($0.11 so far) vs $1.01/h running; suspension saved $9.95"
    )


def test_earlier_suspensions_still_count_after_a_resume() -> None:
    state = suspended_state(earlier=6 * H, status=Status.RUNNING)
    row = EnvironmentStatus.from_state(state, T0 + timedelta(hours=2))
    assert row.cost == 2.01, "8 h since ready, 6 of them suspended"
    assert (row.storage_cost, row.suspension_saved) == (0.07, 5.97)
    assert not row.suspended_now
    assert cost_cell(row) == "$2.01", "running again: the cost column is the running cost"


def test_the_memo_keeps_the_storage_price_never_a_cost() -> None:
    row = memo_row(suspended_state())
    assert row["storage_price_per_hour"] == STORAGE
    assert not {"cost", "storage_cost", "suspension_saved"} & row.keys()
    listed = EnvironmentStatus.model_validate(row).costed(T0 + timedelta(hours=12))
    assert (listed.cost, listed.storage_cost, listed.suspension_saved) == (2.01, 0.11, 9.95)
    assert "storage_price_per_hour" not in memo_row(suspended_state(storage=None)), (
        "absent while unknown: rows of histories recorded before stay the same"
    )


def test_report_counts_suspended_hours_as_storage_not_running() -> None:
    now = T0 + timedelta(hours=12)
    env = environment_report(suspended_state(), T0 - timedelta(days=1), now)
    assert env.hours_running == 2.0 and env.hours_suspended == 10.0
    assert (env.cost, env.storage_cost, env.suspension_saved) == (2.01, 0.11, 9.95)
    report = build_report([suspended_state()], T0 - timedelta(days=1), now)
    total = report.total
    assert (total.cost, total.storage_cost, total.suspension_saved) == (2.01, 0.11, 9.95)
    assert total.hours_suspended == 10.0


def test_the_deletion_warning_says_storage_vs_running_and_the_saving(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(display, "clock", lambda moment: "09:00Z")  # no workflow clock here
    state = suspended_state()
    now = T0 + timedelta(days=6, hours=23)  # 165 h suspended
    words = warning_message(state, now, costs=True)
    assert "storage $0.011/h ($1.81 so far) vs $1.01/h running; suspension saved $164.18" in words
    assert words.endswith("; to keep it: devenv resume box")
    assert "storage" not in warning_message(state, now), "histories recorded before: unchanged"


@pytest.mark.parametrize(
    ("usd", "shown"),
    [
        (None, "-"),
        (0.0, "$0.00/h"),
        (0.011, "$0.011/h"),
        (0.00088, "$0.0009/h"),
        (1.006, "$1.01/h"),
    ],
)
def test_hourly_prices_keep_a_cent_fraction_only_when_small(usd: float | None, shown: str) -> None:
    assert per_hour(usd) == shown


def test_report_prints_storage_vs_running_and_the_saving() -> None:
    from rich.console import Console

    from devenv.cli.report import render

    now = T0 + timedelta(hours=12)
    console = Console(width=200, record=True)
    for part in render(build_report([suspended_state()], T0 - timedelta(days=1), now)):
        console.print(part)
    text = console.export_text()
    assert "box: 10h suspended, storage $0.11 (running cost $2.01), saved $9.95" in text
    assert "total: 10h suspended, storage $0.11 (running cost $2.01), suspension saved $9.95" in (
        text
    )
