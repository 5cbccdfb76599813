"""A user whose client froze (network gone, TCP still open) stops counting within the
host's keepalive bound, which is sshd's own: the agent cannot see a dead peer itself
(the kernel keeps ACKing a stopped process).

Measured against Debian 12's OpenSSH 9.2 (after the client's last packet):
1 s x 2: 6.0 s; 2 s x 1: 8.1 s; 2 s x 2: 11.9 s; 2 s x 3: 16.2 s; 3 s x 2: 18.2 s;
15 s x 2: 90.1 s. That is 2 x ClientAliveInterval x (ClientAliveCountMax + 1): sshd
sends its probe only every second interval, and gives up at the (CountMax + 1)th
unanswered one. The README gives this formula and the settings for a minute (10 s x 2);
these tests hold it with small intervals, each setting on its own sshd.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.agent.streams import AgentStream, Keys, authorize, install_agent
from tests.support.sshd import Sshd, running_sshd, unix_account

pytestmark = pytest.mark.e2e


def keepalive_bound(interval: float, count_max: int) -> float:
    """When sshd drops a frozen client, in seconds after the client's last packet."""
    return 2 * interval * (count_max + 1)


SETTINGS = [(1, 2), (2, 1)]


@pytest.fixture(params=SETTINGS, ids=[f"{i}s-x{c}" for i, c in SETTINGS])
def keepalive_sshd(request: pytest.FixtureRequest) -> Iterator[Sshd]:
    interval, count = request.param
    with running_sshd(client_alive_interval=interval, client_alive_count_max=count) as server:
        yield server


def test_a_frozen_client_stops_counting_at_the_keepalive_bound(keepalive_sshd: Sshd) -> None:
    server = keepalive_sshd
    bound = keepalive_bound(server.client_alive_interval, server.client_alive_count_max)
    keys = Keys.make(server.root / "keys")
    agent = install_agent(server.root / "agent")
    with unix_account() as account:
        authorize(account, keys, agent)
        stream = AgentStream(server, account, keys)
        # -N: after logging in the client sends nothing, so its last packet is when the
        # agent first sees the connection.
        user = subprocess.Popen(
            server.ssh_argv(account.name, keys.user, options=["-N"]),
            start_new_session=True,
        )
        try:
            up = stream.wait_connections(1)
            os.kill(user.pid, signal.SIGSTOP)  # the laptop lid closes: TCP stays open
            frozen = time.monotonic()
            down = stream.wait_connections(0, after=up, timeout=bound + 10)
            gone = stream.arrived[down] - stream.arrived[up]
            # Slack: the agent's poll (0.25 s) and a loaded machine; the bound is sshd's.
            assert bound - 1 <= gone <= bound + 1.5, (bound, gone, stream.arrived[down] - frozen)
        finally:
            os.killpg(user.pid, signal.SIGKILL)
            user.wait(10)
            stream.close()
