"""`devenv report`: in-use intervals from recorded events, the figures, the suggestion."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

from devenv.cli.report import render
from devenv.client.report import (
    Report,
    break_stats,
    build_report,
    in_use_intervals,
    parse_since,
    suggested_threshold,
)
from devenv.errors import InvalidValueError
from devenv.models.state import (
    EnvEvent,
    EnvSpec,
    EnvState,
    InstanceInfo,
    Status,
    TerminationReason,
)

HISTORIES = Path(__file__).parents[1] / "histories"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SEC = timedelta(seconds=1)


def recorded(name: str) -> EnvState:
    """The final state (events included) a recorded history's workflow returned."""
    history = json.loads((HISTORIES / f"{name}.json").read_text())
    for event in history["events"]:
        done = event.get("workflowExecutionCompletedEventAttributes")
        if done:
            data = base64.b64decode(done["result"]["payloads"][0]["data"])
            return EnvState.model_validate_json(data)
    raise AssertionError(f"{name}: no result")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def events(*lines: tuple[timedelta, str]) -> list[EnvEvent]:
    return [EnvEvent(at=T0 + offset, message=message) for offset, message in lines]


def hms(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


# ------------------------------------------------------------ in-use intervals


def test_two_users_then_the_last_leaves_one_interval() -> None:
    state = recorded("user_activity_and_updates")
    assert in_use_intervals(state.events, state.ended_at or T0) == [
        (at("2026-11-23T22:40:19.230+00:00"), at("2026-11-24T00:55:19.246+00:00"))
    ]


def test_repeated_sessions_across_continue_as_new() -> None:
    state = recorded("web_ui_run2")
    got = in_use_intervals(state.events, state.ended_at or T0)
    assert [(a.isoformat(), b.isoformat()) for a, b in got] == [
        ("2026-11-23T10:40:10.379263+00:00", "2026-11-23T10:40:10.388388+00:00"),
        ("2026-11-23T10:40:10.401046+00:00", "2026-11-23T10:40:10.406253+00:00"),
        ("2026-11-23T10:40:10.425667+00:00", "2026-11-23T10:40:10.432231+00:00"),
        ("2026-11-23T10:40:10.452989+00:00", "2026-11-23T10:40:10.461414+00:00"),
        # "idle since 10:40:10Z", a second before it connected: an instant of use
        ("2026-11-23T10:40:11.469658+00:00", "2026-11-23T10:40:11.469658+00:00"),
    ]


def test_a_silent_monitor_ends_use_at_its_last_report() -> None:
    state = recorded("silent_monitor")
    ((start, end),) = in_use_intervals(state.events, state.ended_at or T0)
    assert start == at("2036-11-20T22:40:19.263+00:00")
    # "monitor silent since 22:40:19Z", written five minutes later: the end of that second
    assert end == at("2036-11-20T22:40:20+00:00")


def test_use_the_probe_found_is_an_instant_of_use() -> None:
    found = recorded("probe_idle")  # "a user was connected until 10:45:23Z"
    assert in_use_intervals(found.events, found.ended_at or T0) == [
        (at("2026-11-23T10:45:24+00:00"), at("2026-11-23T10:45:24+00:00"))
    ]
    waiting = recorded("probe_waiting")  # "opened within min_connection_duration"
    moment = at("2026-11-30T20:52:36.937663+00:00")
    assert in_use_intervals(waiting.events, waiting.ended_at or T0) == [(moment, moment)]


@pytest.mark.parametrize(
    "name", ["idle_timeout", "stop", "lowered_threshold", "provisioning_failure", "instance_lost"]
)
def test_environments_nobody_used_have_no_interval(name: str) -> None:
    state = recorded(name)
    assert in_use_intervals(state.events, state.ended_at or T0) == []


def test_a_user_connected_at_the_end_is_in_use_until_then() -> None:
    state = recorded("max_duration")
    assert state.ended_at is not None
    ((start, end),) = in_use_intervals(state.events, state.ended_at)
    assert (start, end) == (at("2046-11-18T23:40:19.329+00:00"), state.ended_at)


def test_jobs_words_and_a_dated_idle_clock() -> None:
    late = T0 + timedelta(hours=16)  # the next day: the workflow writes the date too
    got = in_use_intervals(
        events(
            (MIN, "in use: 0 connections, 1 job (jobs 0 -> 1)"),
            (2 * MIN, "in use: 1 connection, 1 job (connections 0 -> 1)"),
            (3 * MIN, "in use: 0 connections, 1 job (connections 1 -> 0)"),
            (4 * MIN, f"last job ended; idle since {hms(T0 + 4 * MIN)}"),
            (5 * MIN, "in use: 1 connection, 0 jobs (connections 0 -> 1)"),
            (
                timedelta(hours=16, seconds=30),
                f"last user and job ended; idle since {late:%Y-%m-%d %H:%M:%SZ}",
            ),
        ),
        T0 + timedelta(days=1),
    )
    assert got == [(T0 + MIN, T0 + 4 * MIN), (T0 + 5 * MIN, late + SEC)]


def test_the_idle_clock_gives_the_end_when_the_event_came_late() -> None:
    got = in_use_intervals(
        events(
            (MIN, "user connected (1 connection)"),
            (2 * MIN, "connections changed from 1 to 2"),
            (30 * MIN, f"last user disconnected; idle since {hms(T0 + 10 * MIN)}"),
            (31 * MIN, "user connected (2 connections)"),
            (32 * MIN, "last user disconnected; idle since half past"),  # unparseable: the event
        ),
        T0 + timedelta(hours=1),
    )
    assert got == [(T0 + MIN, T0 + 10 * MIN + SEC), (T0 + 31 * MIN, T0 + 32 * MIN)]


def test_an_open_interval_ends_at_end() -> None:
    got = in_use_intervals(events((MIN, "user connected (1 connection)")), T0 + 9 * MIN)
    assert got == [(T0 + MIN, T0 + 9 * MIN)]


def test_a_truncated_history_starts_use_at_its_first_kept_event() -> None:
    got = in_use_intervals(
        events(
            (MIN, "inactivity threshold changed from 2h to 1h; deadline 11:00:00Z"),
            (2 * MIN, "connections changed from 2 to 1"),
            (3 * MIN, f"last user disconnected; idle since {hms(T0 + 3 * MIN)}"),
        ),
        T0 + timedelta(hours=1),
    )
    assert got == [(T0 + MIN, T0 + 3 * MIN)]


def test_other_events_change_nothing() -> None:
    assert (
        in_use_intervals(
            events(
                (MIN, "activity report ignored while terminating (1 connection)"),
                (2 * MIN, "monitor failed: agent crashed; restarting"),
                (3 * MIN, "stop requested"),
            ),
            T0 + timedelta(hours=1),
        )
        == []
    )


# ------------------------------------------------------------------ figures


def state(
    name: str,
    lines: list[tuple[timedelta, str]],
    *,
    ended: timedelta | None,
    reason: TerminationReason | None = None,
    price: float | None = 2.0,
    inactivity: int | None = 3600,
    max_duration: int | None = None,
    idle_since: timedelta | None = None,
) -> EnvState:
    """An environment created and ready at T0."""
    return EnvState(
        spec=EnvSpec(
            name=name,
            user_public_key="ssh-ed25519 AAAA test",
            inactivity_duration=inactivity,
            max_duration=max_duration,
        ),
        status=Status.RUNNING if ended is None else Status.TERMINATED,
        instance=InstanceInfo(
            instance_id="i-1",
            backend="local",
            host="127.0.0.1",
            port=22,
            username="dev",
            host_public_key="ssh-ed25519 AAAA host",
            task_queue="q",
            price_per_hour=price,
        ),
        created_at=T0,
        ready_at=T0,
        ended_at=None if ended is None else T0 + ended,
        termination_reason=reason,
        idle_since=None if idle_since is None else T0 + idle_since,
        events=events(
            (timedelta(0), f"environment {name!r} created (backend local, inactivity 1h, ...)"),
            (timedelta(0), "instance i-1 ready at dev@127.0.0.1:22"),
            *lines,
        ),
    )


def session(start: timedelta, end: timedelta) -> list[tuple[timedelta, str]]:
    return [
        (start, "user connected (1 connection)"),
        (end + timedelta(milliseconds=20), f"last user disconnected; idle since {hms(T0 + end)}"),
    ]


# Used 0:02-1:02 and 1:22-2:00 (a 20 minute break), idle-terminated at 3:00 (threshold 1h).
WORKDAY = state(
    "workday",
    [*session(2 * MIN, 62 * MIN), *session(82 * MIN, 120 * MIN)],
    ended=timedelta(minutes=180),
    reason=TerminationReason.INACTIVITY_DURATION_EXCEEDED,
    max_duration=8 * 3600,
    idle_since=timedelta(minutes=120),
)


def test_an_idle_terminated_environment() -> None:
    now = T0 + timedelta(hours=24)
    report = build_report([WORKDAY], now - timedelta(days=7), now)
    (env,) = report.environments
    assert env.hours_running == 3.0
    assert env.hours_in_use == pytest.approx(98 / 60, abs=1e-4)
    assert env.hours_idle_before_termination == 1.0
    assert env.cost == 6.0
    # created + max_duration (8h) came before now: saved the 5 hours up to it
    assert (env.saved_until, env.hours_saved, env.saved) == ("max_duration", 5.0, 10.0)
    assert env.breaks_seconds == pytest.approx([20 * 60 - 0.02], abs=0.05)
    assert env.wait_before_first_use_seconds == 120
    assert env.idle_at_end_since == T0 + 120 * MIN
    assert env.history_complete


def test_saved_runs_to_now_without_max_duration_or_before_it() -> None:
    now = T0 + timedelta(hours=5)
    for max_duration in (None, 8 * 3600):
        day = WORKDAY.model_copy(deep=True)
        day.spec.max_duration = max_duration
        (env,) = build_report([day], now - timedelta(days=1), now).environments
        assert (env.saved_until, env.hours_saved, env.saved) == ("now", 2.0, 4.0)


def test_the_suggestion_is_past_the_longest_break_and_what_it_saves() -> None:
    now = T0 + timedelta(hours=24)
    report = build_report([WORKDAY], now - timedelta(days=7), now)
    suggestion = report.suggestion
    assert suggestion.threshold_seconds == 20 * 60  # the break lasted 19m59.98s
    assert suggestion.longest_break_seconds == pytest.approx(20 * 60, abs=0.05)
    assert suggestion.longest_wait_before_first_use_seconds == 120
    # the final idle hour cut to 20 minutes: 40 minutes at $2/h
    assert suggestion.hours_saved == pytest.approx(40 / 60, abs=1e-4)
    assert suggestion.saved == 1.33
    assert report.environments[0].hours_saved_with_suggestion == suggestion.hours_saved


def test_a_suggestion_longer_than_a_threshold_in_force_costs_more() -> None:
    now = T0 + timedelta(hours=24)
    brief = state(
        "brief",
        session(2 * MIN, 10 * MIN),
        ended=timedelta(minutes=15),
        reason=TerminationReason.INACTIVITY_DURATION_EXCEEDED,
        inactivity=300,
        idle_since=timedelta(minutes=10),
    )
    report = build_report([WORKDAY, brief], now - timedelta(days=7), now)
    by_name = {env.name: env for env in report.environments}
    assert by_name["brief"].hours_saved_with_suggestion == pytest.approx(-15 / 60, abs=1e-5)
    assert report.suggestion.hours_saved == pytest.approx((40 - 15) / 60, abs=1e-4)
    assert report.suggestion.saved == pytest.approx(0.83, abs=0.01)


def test_idle_ends_other_than_by_inactivity_are_cut_too_but_never_lengthened() -> None:
    now = T0 + timedelta(hours=24)
    stopped = state(  # used 0:02-0:12, then idle for 3 hours until stopped: 20m would cut 2h40m
        "stopped",
        session(2 * MIN, 12 * MIN),
        ended=timedelta(minutes=192),
        reason=TerminationReason.STOPPED_BY_USER,
        inactivity=None,
        idle_since=timedelta(minutes=12),
    )
    quick = state(  # stopped 5 minutes after its last use: nothing to cut
        "quick",
        session(2 * MIN, 12 * MIN),
        ended=timedelta(minutes=17),
        reason=TerminationReason.STOPPED_BY_USER,
    )
    report = build_report([WORKDAY, stopped, quick], now - timedelta(days=7), now)
    by_name = {env.name: env for env in report.environments}
    assert by_name["stopped"].hours_saved_with_suggestion == pytest.approx(160 / 60, abs=1e-5)
    assert by_name["quick"].hours_saved_with_suggestion == 0
    assert (by_name["stopped"].saved, by_name["stopped"].hours_idle_before_termination) == (
        None,
        None,
    )


def test_a_running_environment_counts_until_now() -> None:
    now = T0 + timedelta(hours=2)
    running = state("live", session(2 * MIN, 30 * MIN), ended=None, idle_since=30 * MIN)
    (env,) = build_report([running], now - timedelta(days=1), now).environments
    assert env.hours_running == 2.0
    assert env.idle_at_end_since == T0 + 30 * MIN
    assert env.hours_idle_before_termination is None and env.saved_until is None
    in_use = state("busy", [(2 * MIN, "user connected (1 connection)")], ended=None)
    (env,) = build_report([in_use], now - timedelta(days=1), now).environments
    assert env.hours_in_use == pytest.approx(118 / 60, abs=1e-5)
    assert env.idle_at_end_since is None


def test_hours_are_counted_inside_the_period() -> None:
    now = T0 + timedelta(hours=24)
    since = T0 + timedelta(minutes=90)  # 8 minutes into the second session
    report = build_report([WORKDAY], since, now)
    (env,) = report.environments
    assert env.hours_running == 1.5
    assert env.hours_in_use == pytest.approx(30 / 60, abs=1e-4)
    assert env.cost == 3.0
    assert len(env.breaks_seconds) == 0  # it ended before the period began
    assert report.breaks.count == 0


def test_environments_outside_the_period_are_left_out() -> None:
    now = T0 + timedelta(days=30)
    report = build_report([WORKDAY], now - timedelta(days=7), now)
    assert report.environments == [] and report.total.environments == 0


def test_an_empty_period() -> None:
    now = T0
    report = build_report([], now - timedelta(days=7), now, unanswered=["devenv-x"])
    assert report.total.model_dump() == {
        "environments": 0,
        "hours_running": 0.0,
        "hours_in_use": 0.0,
        "hours_idle_before_termination": 0.0,
        "cost": 0.0,
        "hours_saved": 0.0,
        "saved": 0.0,
        "unpriced": 0,
        "hours_suspended": 0.0,
        "storage_cost": 0.0,
        "suspension_saved": 0.0,
    }
    assert report.breaks.count == 0 and report.breaks.max_seconds is None
    assert report.suggestion.threshold_seconds is None and report.unanswered == ["devenv-x"]
    text = render_text(report)
    assert "No environments ran in this period." in text


def test_nobody_used_anything_suggests_nothing_and_unknown_prices_are_not_summed() -> None:
    now = T0 + timedelta(hours=24)
    idle = recorded("idle_timeout")  # price unknown (recorded before prices existed)
    report = build_report([idle], idle.created_at or now, now)
    (env,) = report.environments
    assert env.hours_running == pytest.approx(12.0, abs=1e-4)
    assert env.hours_idle_before_termination == pytest.approx(12.0, abs=1e-4)
    assert (env.cost, env.saved, env.saved_until) == (None, None, "now")
    assert report.total.unpriced == 1 and report.total.cost == 0.0
    assert report.suggestion.threshold_seconds is None


def test_a_failed_environment_counts_nothing() -> None:
    failed = recorded("provisioning_failure")
    now = (failed.ended_at or T0) + timedelta(hours=1)
    (env,) = build_report([failed], now - timedelta(days=1), now).environments
    assert (env.hours_running, env.hours_in_use, env.cost) == (0.0, 0.0, None)


# ------------------------------------------------------ rounding, distribution


@pytest.mark.parametrize(
    ("longest", "threshold"),
    [(0, 300), (1, 300), (299.9, 300), (300, 600), (899, 900), (900, 1200), (7201, 7500)],
)
def test_the_suggestion_rounds_up_past_the_longest_break(longest: float, threshold: int) -> None:
    assert suggested_threshold(longest) == threshold
    assert suggested_threshold(None) is None


def test_buckets_and_percentiles() -> None:
    minutes = [1, 2, 4.99, 5, 14, 15, 29, 30, 59, 60, 119, 120, 600]
    stats = break_stats([m * 60 for m in minutes])
    assert stats.count == 13
    assert stats.buckets == {
        "<5m": 3,
        "5-15m": 2,
        "15-30m": 2,
        "30m-1h": 2,
        "1-2h": 2,
        ">2h": 2,
    }
    assert (stats.p50_seconds, stats.p90_seconds, stats.max_seconds) == (29 * 60, 120 * 60, 36000)
    empty = break_stats([])
    assert (empty.count, empty.p50_seconds, sum(empty.buckets.values())) == (0, None, 0)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7d", 604800), ("1d12h", 129600), (" 12H ", 43200), ("90", 90), (3600, 3600),
     (timedelta(days=30), 2592000), ("52w", 52 * 604800)],
)  # fmt: skip
def test_periods(value: str | int | timedelta, seconds: int) -> None:
    assert parse_since(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", ["1x", "", "0", "off", "-1d", "53w", "7 d", timedelta(0)])
def test_bad_periods_are_one_line(value: str | timedelta) -> None:
    with pytest.raises(InvalidValueError, match=r"^since: invalid value .*accepted"):
        parse_since(value)


# ------------------------------------------------------------- presentation


def render_text(report: Report) -> str:
    console = Console(width=160, record=True, force_terminal=False)
    for part in render(report):
        console.print(part)
    return console.export_text()


def test_the_table_and_the_json() -> None:
    now = T0 + timedelta(hours=24)
    report = build_report([WORKDAY], now - timedelta(days=7), now)
    text = render_text(report)
    row = next(line for line in text.splitlines() if line.strip().startswith("workday"))
    assert row.split() == [
        "workday", "terminated", "inactivity", "3h", "1h38m", "1h", "$6.00",
        "$10.00", "(to", "max)",
    ]  # fmt: skip
    assert "<5m 0  5-15m 0  15-30m 1  30m-1h 0" in text
    assert "Suggested inactivity threshold: 20m" in text
    assert "it would have saved 40m ($1.33)" in text
    again = Report.model_validate_json(report.model_dump_json())
    assert again == report
