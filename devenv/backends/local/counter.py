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
from dataclasses import dataclass
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
        return (json.dumps(body) + "\n").encode()


@dataclass(frozen=True)
class Session:
    """One user connection as ``devenv ps NAME -v`` shows it."""

    peer: str
    since: datetime
    user: str | None = None
    """Whose key logged in: the owner, or a colleague it is shared with."""

    def as_json(self) -> dict[str, object]:
        return {"from": self.peer, "since": self.since.isoformat(), "user": self.user}


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
        if (connections, waiting, jobs, sessions) == (
            previous.connections,
            previous.waiting,
            previous.jobs,
            previous.sessions,
        ):
            return
        in_use_changed = (connections, jobs) != (previous.connections, previous.jobs)
        last_change = self._clock() if in_use_changed else previous.last_change
        self._snapshot = ActivitySnapshot(connections, last_change, waiting, jobs, sessions)
        for queue in self._subscribers:
            queue.put_nowait(self._snapshot)
