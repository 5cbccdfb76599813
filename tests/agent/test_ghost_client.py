"""A user whose client froze (network gone, TCP still open) stops counting within the
host's keepalive bound: about sshd's ClientAliveInterval x (ClientAliveCountMax + 2)
(sshd disconnects once more than CountMax probes went unanswered).

The agent cannot see a dead peer itself (the kernel keeps ACKing a stopped process), so
the bound is sshd's: the README asks hosts to set 15 s x 3; this sshd uses 1 s x 2.
Measured here: 4-6 s.
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
INTERVAL, COUNT = 1, 2
BOUND = INTERVAL * (COUNT + 2)


@pytest.fixture(scope="module")
def keepalive_sshd() -> Iterator[Sshd]:
    with running_sshd(client_alive_interval=INTERVAL, client_alive_count_max=COUNT) as server:
        yield server


def test_a_frozen_client_stops_counting_within_the_keepalive_bound(keepalive_sshd: Sshd) -> None:
    keys = Keys.make(keepalive_sshd.root / "keys")
    agent = install_agent(keepalive_sshd.root / "agent")
    with unix_account() as account:
        authorize(account, keys, agent)
        stream = AgentStream(keepalive_sshd, account, keys)
        user = subprocess.Popen(
            keepalive_sshd.ssh_argv(account.name, keys.user, options=["-N"]),
            start_new_session=True,
        )
        try:
            up = stream.wait_connections(1)
            os.kill(user.pid, signal.SIGSTOP)  # the laptop lid closes: TCP stays open
            frozen = time.monotonic()
            down = stream.wait_connections(0, after=up, timeout=BOUND + 10)
            # Slack: sshd's timer and the agent's poll; the bound itself is sshd's.
            assert stream.arrived[down] - frozen <= BOUND + 3
        finally:
            os.killpg(user.pid, signal.SIGKILL)
            user.wait(10)
            stream.close()
