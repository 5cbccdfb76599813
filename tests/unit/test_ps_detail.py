"""`devenv ps NAME -v`: the verbose view, rendered from constructed states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.text import Text
from typer.testing import CliRunner

from devenv.cli.app import app
from devenv.cli.detail import render
from devenv.models.deadline import recompute
from devenv.models.state import (
    EnvEvent,
    EnvSpec,
    EnvState,
    InstanceInfo,
    SessionInfo,
    Status,
    TerminationReason,
)

NOW = datetime(2025, 6, 2, 15, 0, tzinfo=UTC)
CREATED = NOW - timedelta(hours=3)


def state(**changes: Any) -> EnvState:
    """A running local environment created 3h ago, ready a minute later, deadline computed."""
    spec = EnvSpec(
        name="my-env",
        user_public_key="ssh-ed25519 AAAA test",
        inactivity_duration=7200,
        **changes.pop("spec", {}),
    )
    s = EnvState(
        spec=spec,
        status=Status.RUNNING,
        created_at=CREATED,
        ready_at=CREATED + timedelta(minutes=1),
        instance=InstanceInfo(
            instance_id="i-1",
            backend="local",
            host="127.0.0.1",
            port=2222,
            username="dev",
            host_public_key="ssh-ed25519 AAAA host",
            task_queue="q",
            price_per_hour=0.5,
        ),
        events=[EnvEvent(at=CREATED, message="provisioned")],
    )
    s = s.model_copy(update=changes)
    recompute(s)
    return s


def shown(s: EnvState) -> str:
    return "\n".join(Text.from_markup(line).plain for line in render(s, NOW))


def test_idle_with_a_deadline_and_a_warning_due() -> None:
    s = state(idle_since=NOW - timedelta(minutes=40), last_report_at=NOW - timedelta(minutes=40))
    text = shown(s)
    first = text.splitlines()[0]
    assert first.startswith("my-env  running  local  dev@127.0.0.1:2222  cost $1.49 so far")
    assert "($0.50/h)" in first
    assert "0 connections, 0 jobs: idle since 14:20:00Z (40m ago)" in text
    assert "16:20:00Z (in 1h20m)" in text
    assert "rule: idle for 2h since 14:20:00Z (inactivity_duration)" in text
    assert "warning due at 16:10:00Z (in 1h10m)" in text
    assert "settings: inactivity_duration 2h, max_duration off, warn_before default" in text
    assert "12:00:00Z  provisioned" in text


def test_active_counts_only_when_the_backend_names_no_sessions() -> None:
    s = state(connections=2, jobs=1, last_report_at=NOW - timedelta(seconds=30))
    text = shown(s)
    assert "2 connections, 1 job" in text
    assert "counts only" in text
    assert "jobs: devenv jobs my-env" in text
    assert "last presence report 14:59:30Z (30s ago)" in text
    assert "none while in use" in text
    assert "warning" not in text


def test_active_with_sessions_shows_who_from_where_since_when() -> None:
    base = state(connections=1, spec={"max_duration": 5 * 3600})
    session = SessionInfo(
        pid=4242, peer="10.0.0.7:50122", since=NOW - timedelta(minutes=4), kind="shell"
    )
    s = base.model_copy(update={"sessions": [session]})
    text = shown(s)
    assert "shell from 10.0.0.7:50122 since 14:56:00Z (4m ago), pid 4242" in text
    assert "counts only" not in text
    # In use, but max_duration still sets a deadline.
    assert "17:00:00Z (in 2h)" in text
    assert "rule: max_duration 5h since creation at 12:00:00Z (max_duration)" in text
    assert "warning due at 16:50:00Z (in 1h50m)" in text


def test_extended_and_warned() -> None:
    deadline = NOW + timedelta(hours=1)
    s = state(
        idle_since=NOW - timedelta(hours=2, minutes=10),
        deadline_floor=deadline,
        events=[
            EnvEvent(at=NOW - timedelta(minutes=20), message="warning: my-env terminates at x"),
            EnvEvent(at=NOW - timedelta(minutes=15), message="deadline extended"),
        ],
    )
    assert s.deadline == deadline
    s.warned_for = deadline
    text = shown(s)
    assert "16:00:00Z (in 1h)" in text
    assert "extended to 16:00:00Z (devenv signal --extend); the rule alone: 14:50:00Z" in text
    assert "warning sent at 14:40:00Z (20m ago) for this deadline" in text


def test_scheduled_stop() -> None:
    s = state(connections=1, stop_at=NOW + timedelta(hours=3, minutes=30))
    text = shown(s)
    assert "18:30:00Z (in 3h30m)" in text
    assert "rule: the scheduled stop at 18:30:00Z (stop_at)" in text
    assert "warning due at 18:20:00Z" in text


def test_a_scheduled_stop_later_than_the_deadline_is_still_shown() -> None:
    s = state(idle_since=NOW, stop_at=NOW + timedelta(days=1), spec={"warn_before": 0})
    text = shown(s)
    assert "rule: idle for 2h since 15:00:00Z (inactivity_duration)" in text
    assert "scheduled stop at 2025-06-03 15:00:00Z (in 1d) (devenv signal --stop-at)" in text
    assert "no warning for this deadline" in text
    assert "warn_before never" in text


def test_ended() -> None:
    s = state(
        status=Status.TERMINATED,
        termination_reason=TerminationReason.INACTIVITY_DURATION_EXCEEDED,
        ended_at=NOW - timedelta(minutes=5),
    )
    text = shown(s)
    assert "terminated (inactivity_duration_exceeded)" in text.splitlines()[0]
    assert "cost $1.45 ($0.50/h)  ran 12:01:00Z to 14:55:00Z" in text  # until it ended
    assert "In use" not in text
    assert "ended at 14:55:00Z (5m ago): inactivity_duration_exceeded" in text


def test_the_last_ten_events_markup_escaped() -> None:
    events = [EnvEvent(at=NOW - timedelta(minutes=30 - i), message=f"event {i}") for i in range(12)]
    events.append(EnvEvent(at=NOW, message="user [bold]x[/] connected"))
    text = shown(state(idle_since=NOW, events=events))
    assert "(3 earlier: devenv logs my-env)" in text
    assert "event 2" not in text and "event 3" in text
    assert "user [bold]x[/] connected" in text


def test_verbose_needs_a_name() -> None:
    result = CliRunner().invoke(app, ["ps", "-v"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: -v/--verbose shows one environment: devenv ps NAME -v"
    ]


def test_an_extension_made_in_use_adds_at_most_its_length_to_the_idle_rule() -> None:
    # Extended by 1h while in use (max_duration's end 17:00 -> floor 18:00); idle since
    # 14:20 now: the idle rule's 16:20 plus the hour, not 18:00.
    s = state(
        spec={"max_duration": 5 * 3600},
        idle_since=NOW - timedelta(minutes=40),
        deadline_floor=NOW + timedelta(hours=3),
        deadline_extension=3600,
    )
    assert s.deadline == NOW + timedelta(hours=2, minutes=20)
    text = shown(s)
    assert (
        "extended to 17:20:00Z (devenv signal --extend, at most 1h past the rule); "
        "the rule alone: 16:20:00Z"
    ) in text


def test_a_suspended_environment_says_since_when_why_and_when_it_is_deleted() -> None:
    at = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    state = EnvState(
        spec=EnvSpec(name="nap", user_public_key="ssh-ed25519 AAAA", delete_after=2 * 86_400),
        status=Status.SUSPENDED,
        created_at=at - timedelta(hours=2),
        ready_at=at - timedelta(hours=2),
        suspended_at=at,
        suspend_reason="idle for 30m (on_idle: suspend)",
    )
    recompute(state)
    text = "\n".join(render(state, now=at + timedelta(hours=1)))
    assert "suspended since 09:00:00Z: idle for 30m" in text
    assert "idle for 30m (on_idle: suspend)" in text
    assert "`devenv resume nap` brings it back" in text
    assert "(in 1d23h)" in text and "since 09:00:00Z (delete_after)" in text


def test_a_suspended_free_machine_says_since_when_and_no_storage_words() -> None:
    """local costs nothing: its summary line has no "no storage price known ... saved
    $0.00", and says since when it is suspended, not since when it was up."""
    at = NOW - timedelta(minutes=30)
    s = state(status=Status.SUSPENDED, suspended_at=at, suspend_reason="asked")
    assert s.instance is not None
    s.instance.price_per_hour = 0.0
    first = shown(s).splitlines()[0]
    assert "suspended since 14:30:00Z" in first, first
    assert "up since" not in first and "storage" not in first and "saved" not in first


def test_a_suspended_aws_machine_says_storage_against_running() -> None:
    at = NOW - timedelta(minutes=30)
    s = state(status=Status.SUSPENDED, suspended_at=at, suspend_reason="asked")
    assert s.instance is not None
    s.instance.storage_price_per_hour = 0.011
    first = shown(s).splitlines()[0]
    assert "storage $0.011/h" in first and "vs $0.50/h running" in first, first
