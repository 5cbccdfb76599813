"""The connection counter: timers per connection, one update per change, who is waiting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncssh

from devenv.backends.local.counter import ActivitySnapshot, ConnectionCounter
from devenv.backends.local.files import ACTIVITY_SUBSYSTEM
from devenv.models.state import PresenceReport
from tests.local_backend.conftest import Instance, Lab


def drain(queue: asyncio.Queue[ActivitySnapshot]) -> list[ActivitySnapshot]:
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def test_counts_after_the_minimum_duration_and_uncounts_at_close() -> None:
    counter = ConnectionCounter(min_duration=0.1)
    updates = counter.subscribe()
    assert (await updates.get()).connections == 0

    counter.user_connected("short")
    counter.user_disconnected("short")  # gone before its timer: never counted
    counter.user_connected("long")
    counter.user_connected("long")  # a repeated call changes nothing
    # Only who is waiting changed so far: the count and its last change did not.
    waits = drain(updates)
    assert [(s.connections, s.waiting) for s in waits] == [(0, 1), (0, 0), (0, 1)]
    assert {s.last_change for s in waits} == {counter.snapshot.last_change}
    first = await asyncio.wait_for(updates.get(), 1)
    assert (first.connections, first.waiting) == (1, 0)
    await asyncio.sleep(0.15)
    assert updates.empty()

    counter.user_disconnected("long")
    closed = updates.get_nowait()
    assert closed.connections == 0
    assert closed.last_change >= first.last_change
    assert datetime.now(UTC) - closed.last_change < timedelta(seconds=1)
    counter.user_disconnected("long")  # closing twice is harmless
    assert updates.empty()


async def test_every_subscriber_gets_the_current_state_then_every_change() -> None:
    counter = ConnectionCounter(min_duration=0)
    early = counter.subscribe()
    counter.user_connected("a")
    counter.user_connected("b")
    late = counter.subscribe()
    assert [s.connections for s in drain(early)] == [0, 1, 2]
    assert [s.connections for s in drain(late)] == [2]
    counter.unsubscribe(early)
    counter.user_disconnected("a")
    assert early.empty()
    snapshot = late.get_nowait()
    assert snapshot.connections == 1
    report = PresenceReport.model_validate_json(snapshot.to_line())
    assert (report.connections, report.last_change) == (1, snapshot.last_change)


async def test_waiting_connections_are_published_without_moving_last_change() -> None:
    counter = ConnectionCounter(min_duration=0.1)
    updates = counter.subscribe()
    start = updates.get_nowait()
    assert (start.connections, start.waiting) == (0, 0)

    counter.user_connected("a")
    counter.user_connected("b")
    counter.user_disconnected("b")  # a waiting one closes
    states = drain(updates)
    assert [(s.connections, s.waiting) for s in states] == [(0, 1), (0, 2), (0, 1)]
    assert all(s.last_change == start.last_change for s in states)

    counted = await asyncio.wait_for(updates.get(), 1)  # the waiting one becomes counted
    assert (counted.connections, counted.waiting) == (1, 0)
    assert counted.last_change > start.last_change
    counter.user_disconnected("a")
    closed = updates.get_nowait()
    assert (closed.connections, closed.waiting) == (0, 0)
    assert closed.last_change >= counted.last_change
    assert updates.empty()


async def test_a_new_subscriber_first_sees_who_is_waiting() -> None:
    counter = ConnectionCounter(min_duration=10)
    counter.user_connected("a")
    late = counter.subscribe()
    first = late.get_nowait()
    assert (first.connections, first.waiting) == (0, 1)
    assert late.empty()
    counter.user_disconnected("a")
    assert (late.get_nowait().waiting, counter.snapshot.waiting) == (0, 0)


async def test_without_a_minimum_nobody_waits() -> None:
    counter = ConnectionCounter(min_duration=0)
    updates = counter.subscribe()
    counter.user_connected("a")
    counter.user_disconnected("a")
    assert [(s.connections, s.waiting) for s in drain(updates)] == [(0, 0), (1, 0), (0, 0)]


def test_the_line_carries_connections_waiting_and_last_change() -> None:
    at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    line = ActivitySnapshot(connections=2, last_change=at, waiting=1).to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {
        "connections": 2,
        "waiting": 1,
        "last_change": "2030-01-02T03:04:05+00:00",
    }


def moment(line: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(line["last_change"])


async def read_activity_lines(instance: Instance) -> AsyncIterator[dict[str, Any]]:
    """The raw ``devenv-activity`` stream, as devenv's internal key reads it."""
    async with asyncssh.connect(
        instance.info.host,
        instance.info.port,
        username=instance.info.username,
        client_keys=[asyncssh.read_private_key(str(instance.settings.internal_key))],
        agent_path=None,
        known_hosts=([asyncssh.import_public_key(instance.info.host_public_key)], [], []),
        config=None,
    ) as conn:
        async with conn.create_process(subsystem=ACTIVITY_SUBSYSTEM, encoding="utf-8") as proc:
            async for line in proc.stdout:
                yield json.loads(line)


async def test_the_stream_shows_a_user_still_inside_min_connection_duration(lab: Lab) -> None:
    instance = await lab.provision("waiting", min_connection_duration=1)
    lines = read_activity_lines(instance)
    session: asyncio.subprocess.Process | None = None
    try:
        first = await asyncio.wait_for(anext(lines), 10)
        assert (first["connections"], first["waiting"]) == (0, 0)
        session = await asyncio.create_subprocess_exec(
            *instance.ssh_argv(instance.alias, "cat"),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        waiting = await asyncio.wait_for(anext(lines), 10)
        assert (waiting["connections"], waiting["waiting"]) == (0, 1)
        assert waiting["last_change"] == first["last_change"]
        counted = await asyncio.wait_for(anext(lines), 10)
        assert (counted["connections"], counted["waiting"]) == (1, 0)
        assert moment(counted) > moment(first)

        # A second reader (the probe) gets the current truth first.
        probe = read_activity_lines(instance)
        try:
            now = await asyncio.wait_for(anext(probe), 10)
            assert (now["connections"], now["waiting"]) == (1, 0)
        finally:
            await probe.aclose()

        assert session.stdin is not None
        session.stdin.close()
        await asyncio.wait_for(session.wait(), 10)
        closed = await asyncio.wait_for(anext(lines), 10)
        assert (closed["connections"], closed["waiting"]) == (0, 0)
    finally:
        await lines.aclose()
        if session is not None and session.returncode is None:
            session.kill()
            await session.wait()
