"""The workflow's side of ``auto`` without a server: what a report or the probe records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow

from devenv.models.auto_threshold import Break, OwnerBreaks
from devenv.models.config import InactivityBounds
from devenv.models.state import EnvSpec, EnvState, PresenceReport, Status
from devenv.workflows import adaptive
from devenv.workflows.presence import probe_answer, take_report

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def workflow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The events' clock words read the workflow's time; outside one it is pinned."""
    monkeypatch.setattr(workflow, "now", lambda: T0)


def auto_state() -> EnvState:
    spec = EnvSpec(
        name="box",
        user_public_key="k",
        inactivity_duration=4 * 3600,
        inactivity_auto=InactivityBounds(min=300, max=4 * 3600),
    )
    s = EnvState(spec=spec, status=Status.RUNNING, ready_at=T0, idle_since=T0)
    adaptive.start(s)
    others = [Break(ended=T0 - timedelta(days=1), seconds=s) for s in (240, 300)]
    adaptive.take_owner_breaks(s, OwnerBreaks(breaks=others, environments=1), T0)
    return s


def report(s: EnvState, users: int, at: datetime) -> str | None:
    idle_since, was_idle = s.idle_since, s.connections + s.jobs == 0
    take_report(s, PresenceReport(connections=users, last_change=at), at)
    return adaptive.after_report(s, idle_since, was_idle, at)


def test_the_wait_before_first_use_is_not_a_break() -> None:
    s = auto_state()
    assert report(s, 1, T0 + 30 * M) is None
    assert s.auto is not None and s.auto.breaks == [] and s.auto.used


def test_a_return_after_everyone_left_is_a_break_and_moves_the_threshold() -> None:
    s = auto_state()
    report(s, 1, T0 + M)
    report(s, 0, T0 + 60 * M)
    moved = report(s, 1, T0 + 70 * M)
    assert moved == "auto: inactivity 4h -> 15m (longest of 3 breaks in 14d: 10m)"
    assert s.spec.inactivity_duration == 900
    assert report(s, 2, T0 + 71 * M) is None, "more users is no break"


def test_a_user_the_probe_finds_ends_a_break_too() -> None:
    """The monitor missed the return; the probe at the deadline found the user."""
    s = auto_state()
    report(s, 1, T0 + M)
    report(s, 0, T0 + 60 * M)
    idle_since = s.idle_since
    at = T0 + 80 * M
    seen = PresenceReport(connections=1, last_change=at)
    assert probe_answer(s, seen, at) is not None
    moved = adaptive.after_report(s, idle_since, True, at)
    assert moved == "auto: inactivity 4h -> 30m (longest of 3 breaks in 14d: 20m)"


def test_without_auto_nothing_is_recorded() -> None:
    s = EnvState(
        spec=EnvSpec(name="box", user_public_key="k", inactivity_duration=3600),
        status=Status.RUNNING,
        ready_at=T0,
        idle_since=T0,
    )
    adaptive.start(s)
    assert s.auto is None
    assert report(s, 1, T0 + M) is None and report(s, 0, T0 + 2 * M) is None
    assert report(s, 1, T0 + 9 * M) is None and s.spec.inactivity_duration == 3600
