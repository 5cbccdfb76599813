"""The connection counter alone: timers per connection, one update per change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from devenv.backends.local.counter import ActivitySnapshot, ConnectionCounter
from devenv.workflows.state import ActivityReport


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
    assert updates.empty()
    first = await asyncio.wait_for(updates.get(), 1)
    assert first.connections == 1
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
    report = ActivityReport.model_validate_json(snapshot.to_line())
    assert (report.connections, report.last_change) == (1, snapshot.last_change)
