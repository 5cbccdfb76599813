"""What a change does to an environment's state, and which are refused, without a server.

The pure half of the workflow's change handlers (devenv/workflows/changes.py) and of
its presence signal (presence.take_report); the workflow tests (test_change.py,
test_extend.py, test_environment.py) check the same through a real server, end to end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio import workflow

from devenv.models.durations import MAX_SECONDS
from devenv.models.state import (
    Change,
    DurationSetting,
    EnvState,
    PresenceReport,
    SharedUser,
    Status,
    StopAtSetting,
    TerminationReason,
)
from devenv.workflows import changes
from devenv.workflows.presence import take_report
from tests.workflow.fakes import TEST_KEY, H, make_state

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def workflow_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The events' clock words (display.clock) read the workflow's time to drop today's
    date; outside a workflow it is pinned to NOW."""
    monkeypatch.setattr(workflow, "now", lambda: NOW)


def running(inactivity: int | None = 2 * H, idle_for: timedelta = timedelta(hours=1)) -> EnvState:
    """Running since two hours, nobody connected for ``idle_for``."""
    s = make_state(inactivity=inactivity)
    s.status = Status.RUNNING
    s.created_at = s.ready_at = NOW - timedelta(hours=2)
    s.idle_since = NOW - idle_for
    return s


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("seconds", "refusal"),
    [
        (-1, "inactivity_duration must be between 0 (off) and"),
        (MAX_SECONDS + 1, "inactivity_duration must be between 0 (off) and"),
        (True, "inactivity_duration must be whole seconds or null (off), got True"),
        (1.5, "inactivity_duration must be whole seconds or null (off), got 1.5"),
    ],
)
def test_a_threshold_out_of_range_is_refused_naming_the_key(seconds: int, refusal: str) -> None:
    with pytest.raises(ValueError, match=refusal.replace("(", r"\(").replace(")", r"\)")):
        changes.validate_threshold(running(), "inactivity_duration", seconds)


@pytest.mark.parametrize("seconds", [None, 0, 60, MAX_SECONDS])
def test_off_and_any_whole_seconds_up_to_four_weeks_are_accepted(seconds: int | None) -> None:
    changes.validate_threshold(running(), "inactivity_duration", seconds)


def test_an_ending_environment_takes_no_change() -> None:
    s = running()
    s.status, s.termination_reason = Status.TERMINATING, TerminationReason.STOPPED_BY_USER
    with pytest.raises(ValueError, match="environment is terminating: stopped_by_user"):
        changes.validate_threshold(s, "max_duration", 60)
    s.status = Status.TERMINATED
    with pytest.raises(ValueError, match="environment has ended: stopped_by_user"):
        changes.validate_change(s, Change(extend=60), NOW)


def test_extend_needs_a_deadline_to_push() -> None:
    with pytest.raises(ValueError, match="extend must be a positive duration"):
        changes.validate_extend(running(), 0)
    in_use = running()
    in_use.connections = 1
    with pytest.raises(ValueError, match="nothing to extend: no deadline now"):
        changes.validate_extend(in_use, H)
    provisioning = make_state(inactivity=H)
    with pytest.raises(ValueError, match=r"not running yet \(provisioning\)"):
        changes.validate_extend(provisioning, H)
    changes.validate_extend(running(), H)


def test_stop_at_must_be_a_later_time_with_its_zone() -> None:
    for at in (NOW - timedelta(minutes=1), NOW, (NOW + timedelta(hours=1)).replace(tzinfo=None)):
        with pytest.raises(ValueError, match="is not in the future; accepted: a later time"):
            changes.validate_stop_at(running(), at, NOW)
    changes.validate_stop_at(running(), NOW + timedelta(hours=1), NOW)
    changes.validate_stop_at(running(), None, NOW)  # removing it


def test_a_change_is_refused_whole_when_one_part_is_bad() -> None:
    s = running()
    before = s.model_copy(deep=True)
    bad = Change(
        inactivity=DurationSetting(seconds=3 * H),
        stop_at=StopAtSetting(at=NOW - timedelta(hours=1)),
    )
    with pytest.raises(ValueError, match="is not in the future"):
        changes.validate_change(s, bad, NOW)
    assert s == before
    with pytest.raises(ValueError, match="nothing to change"):
        changes.validate_change(s, Change(), NOW)
    with pytest.raises(ValueError, match="by: 'Not A User' is not a user name"):
        changes.validate_change(s, Change(extend=H, by="Not A User"), NOW)
    owner = running()
    owner.spec.owner = "alice"
    mine = Change(shared_with=[SharedUser(name="alice", public_key=TEST_KEY)])
    with pytest.raises(ValueError, match="shared_with: 'alice' owns it already"):
        changes.validate_change(owner, mine, NOW)


# ---------------------------------------------------------------- application


def test_a_raised_threshold_moves_the_deadline_and_drops_an_extension() -> None:
    s = running()
    s.deadline_floor = NOW + timedelta(hours=5)
    applied = changes.apply_threshold(s, "inactivity_duration", 3 * H, NOW, by="bob")
    assert s.spec.inactivity_duration == 3 * H and s.deadline_floor is None
    assert applied.ends is None
    assert applied.answers == (
        NOW + timedelta(hours=2),
        TerminationReason.INACTIVITY_DURATION_EXCEEDED,
    )
    assert applied.message.startswith(
        "inactivity threshold changed by bob from 2h to 3h; deadline "
    )


def test_a_threshold_lowered_below_the_idle_time_ends_it_at_once() -> None:
    s = running(idle_for=timedelta(hours=1))
    applied = changes.apply_threshold(s, "inactivity_duration", 30 * 60, NOW)
    reason = TerminationReason.INACTIVITY_DURATION_EXCEEDED
    assert applied.ends == reason
    assert applied.answers == (NOW - timedelta(minutes=30), reason)  # the exceeded one
    assert applied.message == (
        "inactivity threshold changed from 2h to 30m; already exceeded, terminating"
    )


def test_zero_switches_a_threshold_off() -> None:
    s = running()
    applied = changes.apply_threshold(s, "inactivity_duration", 0, NOW)
    assert s.spec.inactivity_duration is None
    assert applied.answers == (None, None)
    assert applied.message == "inactivity threshold changed from 2h to off; deadline none"


@pytest.mark.parametrize("capped", [True, False])
def test_extend_pushes_the_deadline_once_and_keeps_the_thresholds(capped: bool) -> None:
    s = running()
    applied = changes.apply_extend(s, H, capped, by="bob")
    assert s.deadline == NOW + timedelta(hours=2)  # idle deadline (now + 1 h) + 1 h
    assert s.deadline_floor == s.deadline
    assert s.deadline_extension == (H if capped else None)
    assert s.spec.inactivity_duration == 2 * H
    assert applied.ends is None and applied.answers is None
    assert applied.message.startswith("deadline extended by 1h by bob to ")
    assert applied.message.endswith("thresholds unchanged)")


def test_a_scheduled_stop_replaces_an_extension_and_says_so() -> None:
    s = running()
    changes.apply_extend(s, H, capped=True)
    at = NOW + timedelta(minutes=30)
    applied = changes.apply_stop_at(s, at)
    assert s.stop_at == at and s.deadline_floor is None
    assert s.deadline == at and s.deadline_reason == TerminationReason.SCHEDULED_STOP
    assert applied.message.startswith("scheduled stop at ")
    assert "the extension to " in applied.message and "no longer holds" in applied.message
    removed = changes.apply_stop_at(s, None, by="alice")
    assert s.stop_at is None and removed.message == "scheduled stop removed by alice"


def test_sharing_says_who_was_added_and_removed() -> None:
    s = running()
    bob, carol = (SharedUser(name=n, public_key=TEST_KEY) for n in ("bob", "carol"))
    assert changes.apply_shared(s, [bob, carol], "alice").message == (
        "shared with bob, carol by alice"
    )
    assert changes.apply_shared(s, [carol], None).message == "no longer shared with bob"
    assert changes.apply_shared(s, [carol], None).message == "members' keys renewed"
    assert changes.apply_shared(s, [], None).message == "no longer shared with carol"
    assert s.shared_with == []


def test_the_answer_says_whether_it_is_terminating() -> None:
    s = running()
    assert not changes.answer(s).terminating
    s.status = Status.TERMINATING
    answer = changes.answer(s, NOW, TerminationReason.MAX_DURATION_EXCEEDED)
    assert answer.terminating and answer.deadline == NOW and answer.inactivity_duration == 2 * H


def test_purge_and_stop_words() -> None:
    s = running()
    assert changes.apply_purge_workspace(s, True).startswith("the workspace will be deleted")
    assert s.purge_workspace
    assert changes.stop_message(None) == "stop requested"
    assert changes.stop_message("done") == "stop requested: done"


# ---------------------------------------------------------------- presence


def test_a_keepalive_only_counts_its_time() -> None:
    s = running()
    s.connections = 1
    taken = take_report(s, PresenceReport(connections=1, last_change=NOW, keepalive=True), NOW)
    assert taken == type(taken)() and s.last_report_at == NOW


def test_the_last_user_leaving_starts_the_idle_clock_when_they_left() -> None:
    s = running()
    s.connections = 1
    left = NOW - timedelta(minutes=5)
    taken = take_report(s, PresenceReport(connections=0, last_change=left), NOW)
    assert taken.changed and taken.flipped and s.connections == 0
    assert s.idle_since == left
    assert taken.message is not None and taken.message.startswith("last user disconnected")


def test_a_report_after_the_end_is_only_noted() -> None:
    s = running()
    s.status = Status.TERMINATED
    taken = take_report(s, PresenceReport(connections=2, last_change=NOW), NOW)
    assert not taken.changed and s.connections == 0
    assert taken.message == "activity report ignored while terminated (2 connections)"
