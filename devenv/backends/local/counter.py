"""The number of user connections (and jobs) that count as "in use", and who is told
when it changes.

Event driven: a connection is counted by a per-connection timer once it has lasted
``min_connection_duration`` (until then it is ``waiting``), and uncounted when it
closes; every change is pushed to the subscribers (the ``devenv-activity`` streams),
never polled. Jobs (``devenv-keepalive``, connected to the server while they run) count
at once and until they end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ActivitySnapshot:
    connections: int
    """Authenticated user connections open for at least ``min_connection_duration``."""
    last_change: datetime
    """When ``connections`` or ``jobs`` last changed (and only then)."""
    waiting: int = 0
    """Authenticated user connections still younger than ``min_connection_duration``."""
    jobs: int = 0
    """Jobs running in the instance (devenv-keepalive processes)."""
    sessions: tuple[Session, ...] = ()
    """Who is connected (counted or waiting), oldest first."""
    last_input: datetime | None = None
    """The latest terminal input of any session (``connected_idle``)."""
    busy_at: datetime | None = None
    """The last moment the instance's processes used the busy CPU share."""
    gpu_quiet_since: datetime | None = None
    """Since when every GPU sample was under ``utilization_policy``'s minimum."""
    gpu_error: str | None = None
    """Why the last GPU sample failed, if it did."""

    def to_line(self) -> bytes:
        """One line of the activity stream (parsed by the monitor's report model)."""
        body: dict[str, object] = {
            "connections": self.connections,
            "waiting": self.waiting,
            "last_change": self.last_change.isoformat(),
        }
        if self.jobs:  # absent means none, as in the lines of servers before jobs
            body["jobs"] = self.jobs
        if self.sessions:
            body["sessions"] = [session.as_json() for session in self.sessions]
        if self.last_input is not None:
            body["last_input"] = self.last_input.isoformat()
        if self.busy_at is not None:
            body["busy_at"] = self.busy_at.isoformat()
        if self.gpu_quiet_since is not None:
            body["gpu_quiet_since"] = self.gpu_quiet_since.isoformat()
        if self.gpu_error is not None:
            body["gpu_error"] = self.gpu_error
        return (json.dumps(body) + "\n").encode()


@dataclass(frozen=True)
class Session:
    """One user connection as ``devenv ps NAME -v`` shows it."""

    peer: str
    since: datetime
    user: str | None = None
    """Whose key logged in: the owner, or a colleague it is shared with."""
    last_input: datetime | None = None
    """Its last terminal input (a keystroke into its pty), if any."""

    def as_json(self) -> dict[str, object]:
        body: dict[str, object] = {
            "from": self.peer,
            "since": self.since.isoformat(),
            "user": self.user,
        }
        if self.last_input is not None:
            body["last_input"] = self.last_input.isoformat()
        return body


INPUT_RESOLUTION_SECONDS = 1.0
"""A keystroke moves the reported input time only this long after the last one told:
typing does not send a line per key."""
BUSY_RESOLUTION_SECONDS = 5.0
"""Likewise for busy CPU samples: a long compile does not send a line per sample."""


class ConnectionCounter:
    """Counts authenticated user connections open for at least ``min_duration`` seconds.

    The ones not yet that old are ``waiting``: present, not yet counted. Every change
    of either number is published, so the first snapshot a subscriber gets is always
    the current truth; ``last_change`` moves only when the count does.
    """

    def __init__(self, min_duration: float, clock: Callable[[], datetime] = utc_now) -> None:
        self._min_duration = min_duration
        self._clock = clock
        self._pending: dict[Hashable, asyncio.TimerHandle] = {}
        self._counted: set[Hashable] = set()
        self._jobs: set[Hashable] = set()
        self._sessions: dict[Hashable, Session] = {}
        self._last_input: datetime | None = None
        self._busy_at: datetime | None = None
        self._gpu: tuple[datetime | None, str | None] = (None, None)
        self._snapshot = ActivitySnapshot(0, clock())
        self._subscribers: set[asyncio.Queue[ActivitySnapshot]] = set()

    @property
    def snapshot(self) -> ActivitySnapshot:
        return self._snapshot

    def user_connected(self, conn: Hashable, session: Session | None = None) -> None:
        """A user connection authenticated: count it once it has lasted long enough."""
        if conn in self._pending or conn in self._counted:
            return
        if session is not None:
            self._sessions[conn] = session
        if self._min_duration <= 0:
            self._count(conn)
            return
        loop = asyncio.get_running_loop()
        self._pending[conn] = loop.call_later(self._min_duration, self._count, conn)
        self._publish()

    def user_disconnected(self, conn: Hashable) -> None:
        """A user connection closed: forget a waiting one, uncount a counted one."""
        timer = self._pending.pop(conn, None)
        if timer is not None:
            timer.cancel()
        self._counted.discard(conn)
        self._sessions.pop(conn, None)
        self._publish()

    def job_started(self, job: Hashable) -> None:
        """A job began: the instance is in use until it ends."""
        self._jobs.add(job)
        self._publish()

    def job_ended(self, job: Hashable) -> None:
        self._jobs.discard(job)
        self._publish()

    def input_seen(self, conn: Hashable) -> None:
        """A keystroke in a terminal of ``conn``: a sign of life (``connected_idle``)."""
        now = self._clock()
        session = self._sessions.get(conn)
        told = session.last_input if session is not None else self._last_input
        if told is not None and (now - told).total_seconds() < INPUT_RESOLUTION_SECONDS:
            return
        if session is not None:
            self._sessions[conn] = replace(session, last_input=now)
        self._last_input = now
        self._publish()

    def busy(self) -> None:
        """The instance's processes used the busy CPU share over the last sample."""
        now = self._clock()
        told = self._busy_at
        if told is not None and (now - told).total_seconds() < BUSY_RESOLUTION_SECONDS:
            return
        self._busy_at = now
        self._publish()

    def gpus(self, quiet_since: float | None, error: str | None) -> None:
        """The last GPU sample: since when every GPU was quiet (wall clock), or why
        the GPUs could not be read."""
        moment = None if quiet_since is None else datetime.fromtimestamp(quiet_since, UTC)
        if (moment, error) != self._gpu:
            self._gpu = (moment, error)
            self._publish()

    def subscribe(self) -> asyncio.Queue[ActivitySnapshot]:
        """A queue that gets the current state now and every change after it."""
        queue: asyncio.Queue[ActivitySnapshot] = asyncio.Queue()
        queue.put_nowait(self._snapshot)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[ActivitySnapshot]) -> None:
        self._subscribers.discard(queue)

    def _count(self, conn: Hashable) -> None:
        self._pending.pop(conn, None)
        self._counted.add(conn)
        self._publish()

    def _publish(self) -> None:
        """A new snapshot for every subscriber, if anything changed."""
        previous = self._snapshot
        connections, waiting, jobs = len(self._counted), len(self._pending), len(self._jobs)
        sessions = tuple(self._sessions.values())
        signs = (self._last_input, self._busy_at, *self._gpu)
        if (connections, waiting, jobs, sessions, signs) == (
            previous.connections,
            previous.waiting,
            previous.jobs,
            previous.sessions,
            (previous.last_input, previous.busy_at, previous.gpu_quiet_since, previous.gpu_error),
        ):
            return
        in_use_changed = (connections, jobs) != (previous.connections, previous.jobs)
        last_change = self._clock() if in_use_changed else previous.last_change
        self._snapshot = ActivitySnapshot(connections, last_change, waiting, jobs, sessions, *signs)
        for queue in self._subscribers:
            queue.put_nowait(self._snapshot)
