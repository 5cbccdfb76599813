"""What the monitor's reports and the probe's answer do to an environment's state.

Pure: it changes the state and says what to log; the workflow decides the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from devenv.models import connected_idle, gpu_policy
from devenv.models.deadline import idle_deadline, plural
from devenv.models.durations import format_duration
from devenv.models.state import EnvState, LateLogin, PresenceReport, Status
from devenv.workflows.display import clock, presence_words, utc


@dataclass(frozen=True)
class Taken:
    """What the workflow records of a monitor's report."""

    message: str | None = None
    """The event, if any."""
    changed: bool = False
    """Who is present changed: publish it."""
    flipped: bool = False
    """Active/idle flipped: the deadline appears or disappears, so wake the timer."""


def take_report(s: EnvState, report: PresenceReport, now: datetime) -> Taken:
    """Take in a report of who is present (or a keepalive: only its time counts)."""
    if s.status != Status.RUNNING:
        return Taken(
            f"activity report ignored while {s.status.value} "
            f"({plural(report.connections, 'connection')})"
        )
    s.last_report_at = now
    if s.spec.connected_idle is not None:  # keepalives carry the latest signs of life too
        connected_idle.note_signs(s, report, now)
    if not report.keepalive or s.spec.connected_idle is not None:
        s.sessions = report.sessions
    gpus = gpu_policy.note(s, report, now)  # its deadline may come earlier: wake
    if (report.connections, report.jobs) == (s.connections, s.jobs):
        return Taken(flipped=gpus)  # keepalive or repeat: do not wake the timer
    before = s.connections + s.jobs
    after = report.connections + report.jobs
    if after == 0:
        assert s.ready_at is not None
        s.idle_since = min(max(utc(report.last_change), s.ready_at), now)
    message = presence_change(s, report)
    s.connections, s.jobs = report.connections, report.jobs
    return Taken(message, changed=True, flipped=(before == 0) != (after == 0) or gpus)


def probe_answer(
    s: EnvState, seen: PresenceReport, now: datetime, late_login: bool = True
) -> str | None:
    """Take in what the instance says about presence at the deadline; the event to log.

    Someone the monitor missed keeps it up; a disconnect later than the monitor knew
    moves the idle clock to it. Someone still inside min_connection_duration is the
    late-login rule: the decision waits until that connection would count, and is
    then made once, so connections that close before counting never keep it up
    (``late_login`` False: histories from before the rule restarted the idle clock).
    """
    if seen.in_use > 0 and s.connections + s.jobs == 0:
        s.connections, s.jobs = seen.connections, seen.jobs
        s.last_report_at = now
        found = presence_words(seen.connections, seen.jobs)
        return f"deadline reached, but the instance reports {found}; staying up"
    if seen.waiting > 0 and s.connections == 0:
        if late_login:
            return _late_login(s, seen, now)
        s.idle_since = now
        return (
            f"deadline reached, but {plural(seen.waiting, 'user connection')} "
            f"opened within min_connection_duration "
            f"({format_duration(s.spec.min_connection_duration)}); idle clock restarted"
        )
    if seen.connections == 0 and s.connections == 0 and s.idle_since is not None:
        last_change = min(utc(seen.last_change), now)
        if last_change > s.idle_since:
            s.idle_since = last_change
            return (
                f"deadline reached, but a user was connected until "
                f"{clock(last_change)}; idle since then"
            )
    return None


def _late_login(s: EnvState, seen: PresenceReport, now: datetime) -> str | None:
    """Put the idle deadline off until the waiting connections would count, once.

    At the put-off moment a connection that counted is present (the monitor or this
    probe says so); one that closed before counting was never a user, and any opened
    since is not waited for: the deadline is not put off again, so short connections
    in a loop cannot keep a machine alive.
    """
    due = idle_deadline(s)
    if due is None:
        return None
    minimum = format_duration(s.spec.min_connection_duration)
    if s.late_login is not None and s.late_login.deadline == due:
        return (
            f"deadline reached again: the connections waited for closed before "
            f"min_connection_duration ({minimum}); "
            f"{plural(seen.waiting, 'connection')} opened since not waited for"
        )
    until = count_moment(s, seen, now)
    s.late_login = LateLogin(deadline=due, until=until)
    return (
        f"deadline reached, but {plural(seen.waiting, 'user connection')} opened "
        f"within min_connection_duration ({minimum}); deciding at {clock(until)}, "
        f"when {'it' if seen.waiting == 1 else 'they'} would count"
    )


def count_moment(s: EnvState, seen: PresenceReport, now: datetime) -> datetime:
    """When every connection the probe saw waiting would count: the latest start plus the
    minimum (the instance's clock), kept between 1 s from now and one minimum from now.

    At an idle deadline nothing is counted, so every session the probe lists is waiting;
    without start times the whole minimum is waited. The agent of sshd hosts counts no
    connection before 1 s, whatever the minimum.
    """
    window = timedelta(seconds=max(s.spec.min_connection_duration, 1))
    starts = [utc(session.since) for session in seen.sessions if session.since is not None]
    latest = max(starts) + timedelta(seconds=s.spec.min_connection_duration) if starts else None
    soonest = now + timedelta(seconds=1)
    if latest is None:
        return now + window
    return min(max(latest, soonest), now + window)


def presence_change(s: EnvState, seen: PresenceReport) -> str:
    """The event for a change of who is present (before ``s`` takes in ``seen``)."""
    users, jobs = seen.connections, seen.jobs
    if s.jobs == 0 and jobs == 0:  # the words every history before jobs has
        if users == 0:
            return f"last user disconnected; idle since {clock(_idle(s))}"
        if s.connections == 0:
            return f"user connected ({plural(users, 'connection')})"
        return f"connections changed from {s.connections} to {users}"
    if users + jobs == 0:
        gone = "last job ended" if s.connections == 0 else "last user and job ended"
        return f"{gone}; idle since {clock(_idle(s))}"
    parts = []
    if users != s.connections:
        parts.append(f"connections {s.connections} -> {users}")
    if jobs != s.jobs:
        parts.append(f"jobs {s.jobs} -> {jobs}")
    return f"in use: {plural(users, 'connection')}, {plural(jobs, 'job')} ({', '.join(parts)})"


def _idle(s: EnvState) -> datetime:
    assert s.idle_since is not None
    return s.idle_since
