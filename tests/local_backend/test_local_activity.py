"""The ``devenv-activity`` stream: who counts as connected, and when it changes."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncssh
import pytest

from devenv.backends.local.files import PRESENCE_SUBSYSTEM
from devenv.backends.presence_stream import PresenceStreamEndedError, ssh_presence
from devenv.models.state import InstanceInfo, PresenceReport
from tests.local_backend.conftest import Instance, Lab

QUIET = 1.0
"""How long "no report arrives" is watched for."""


def stream_activity(instance: InstanceInfo, internal_key: Path) -> AsyncIterator[PresenceReport]:
    """The monitor's reader of a local instance: the presence subsystem, internal key."""
    return ssh_presence(instance, internal_key, subsystem=PRESENCE_SUBSYSTEM)


class Stream:
    """Reports of one ``stream_activity`` reader, collected in the background."""

    def __init__(self, instance: Instance) -> None:
        self.reports: asyncio.Queue[PresenceReport] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._read(instance))

    async def _read(self, instance: Instance) -> None:
        async for report in stream_activity(instance.info, instance.settings.internal_key):
            self.reports.put_nowait(report)

    async def next(self, timeout: float = 10.0) -> PresenceReport:
        return await asyncio.wait_for(self.reports.get(), timeout)

    async def until(self, connections: int, timeout: float = 10.0) -> PresenceReport:
        while (report := await self.next(timeout)).connections != connections:
            pass
        return report

    async def assert_quiet(self, seconds: float = QUIET) -> None:
        with contextlib.suppress(TimeoutError):
            report = await self.next(seconds)
            raise AssertionError(f"unexpected report {report}")

    async def assert_never_counted(self, seconds: float) -> None:
        """For ``seconds``, no report counts a connection (a ``waiting`` one may be shown)."""
        give_up = asyncio.get_running_loop().time() + seconds
        while (left := give_up - asyncio.get_running_loop().time()) > 0:
            with contextlib.suppress(TimeoutError):
                report = await self.next(left)
                assert report.connections == 0, f"a short connection counted: {report}"

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task


@pytest.fixture
async def stream(shared: Instance) -> AsyncIterator[Stream]:
    reader = Stream(shared)
    await reader.until(0)  # the previous test's connections are gone
    try:
        yield reader
    finally:
        await reader.close()


async def open_session(instance: Instance, *extra: str) -> asyncio.subprocess.Process:
    """A user connection held open until its stdin is closed."""
    return await asyncio.create_subprocess_exec(
        *instance.ssh_argv(*extra, instance.alias, "cat"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def close_session(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    await asyncio.wait_for(proc.wait(), 10)


async def test_a_user_session_counts_while_open(shared: Instance, stream: Stream) -> None:
    session = await open_session(shared)
    opened = await stream.until(1)
    assert opened.last_change.tzinfo is not None
    before_close = datetime.now(UTC)
    await close_session(session)
    closed = await stream.next()
    assert closed.connections == 0
    assert before_close - timedelta(seconds=0.5) <= closed.last_change <= datetime.now(UTC)
    assert closed.last_change > opened.last_change


async def test_the_readers_themselves_do_not_count(shared: Instance, stream: Stream) -> None:
    second = Stream(shared)
    try:
        assert (await second.next()).connections == 0
        await stream.assert_quiet(0.5)
    finally:
        await second.close()


async def test_two_user_connections_count_two(shared: Instance, stream: Stream) -> None:
    first, second = await open_session(shared), await open_session(shared)
    await stream.until(2)
    await close_session(first)
    assert (await stream.next()).connections == 1
    await close_session(second)
    assert (await stream.next()).connections == 0


async def test_unauthenticated_tcp_never_counts_and_is_dropped(
    shared: Instance, stream: Stream
) -> None:
    """A port scan or a socket held open is not a user; login_timeout (2 s here) ends it."""
    loop = asyncio.get_running_loop()
    raw = socket.create_connection((shared.info.host, shared.info.port))
    raw.setblocking(False)
    try:
        await stream.assert_quiet()
        session = await open_session(shared)
        assert (await stream.next()).connections == 1  # not 2
        await close_session(session)
        assert (await stream.next()).connections == 0
        # The server hangs up on the silent socket once its login time is over.
        async with asyncio.timeout(5):
            while await loop.sock_recv(raw, 4096):
                pass
    finally:
        raw.close()


async def test_a_client_whose_network_died_stops_counting(shared: Instance, stream: Stream) -> None:
    """A frozen client answers no keepalive (1 s x 2 here): it is dropped, then idle."""
    session = await open_session(shared, "-o", "ServerAliveInterval=0")
    try:
        await stream.until(1)
        session.send_signal(signal.SIGSTOP)
        # Within 8 s; a report about the session's CPU (connected_idle_cpu) may come first.
        report = await asyncio.wait_for(stream.until(0), 8)
        assert report.connections == 0
    finally:
        session.kill()
        session.send_signal(signal.SIGCONT)
        await session.wait()


async def test_short_connections_are_ignored(lab: Lab) -> None:
    instance = await lab.provision("patient", min_connection_duration=1)
    stream = Stream(instance)
    try:
        assert (await stream.next()).connections == 0
        quick = await instance.ssh(instance.alias, "true")
        assert quick.returncode == 0
        await stream.assert_never_counted(1.2)

        started = datetime.now(UTC)
        session = await open_session(instance)
        counted = await stream.until(1, timeout=5)
        assert counted.last_change - started >= timedelta(seconds=0.9)
        await close_session(session)
        assert (await stream.next()).connections == 0
    finally:
        await stream.close()


async def test_the_stream_refuses_a_server_with_another_host_key(shared: Instance) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    forged = shared.info.model_copy(update={"host_public_key": other_key.strip()})
    believed: list[PresenceReport] = []
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        async for report in stream_activity(forged, shared.settings.internal_key):
            believed.append(report)
    assert believed == [], "no report may be read from a server with another host key"


async def test_the_stream_raises_when_the_instance_goes_away(lab: Lab) -> None:
    """The monitor learns of the end from the stream itself (not a silent stop), and the
    next connection is refused, so it checks whether the instance is lost."""
    instance = await lab.provision("vanishing")
    reports = stream_activity(instance.info, instance.settings.internal_key)
    assert (await anext(reports)).connections == 0
    await lab.backend.terminate(instance.terminate_request())
    with pytest.raises(PresenceStreamEndedError) as ended:
        await asyncio.wait_for(anext(reports), 10)
    assert str(ended.value) == f"presence stream of {instance.info.instance_id} ended"
    with pytest.raises(ConnectionRefusedError):
        await anext(stream_activity(instance.info, instance.settings.internal_key))
    assert not await lab.backend.is_alive(instance.info)
