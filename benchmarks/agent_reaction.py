"""Measures how fast the presence agent reports logins and logouts on a real sshd.

Starts the test harness's sshd on 127.0.0.1 and a throwaway account, reads the
agent's stream through the internal key (as devenv does), and for each round opens
an interactive shell with the real `ssh -tt`, then types `exit`, and measures
  * connect -> 1: from starting the ssh client to the line saying connections 1
    (includes the SSH handshake and authentication);
  * exit -> 0: from the ssh client's exit to the line saying connections 0.
Everything it creates (sshd, account, files) is removed at the end. Needs root.

Run from the repository root:  python -m benchmarks.agent_reaction [--rounds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import time

from devenv.agent.presence.account import DEFAULT_INTERVAL as POLL_INTERVAL
from tests.agent.streams import AgentStream, Keys, authorize, install_agent
from tests.support.sshd import Account, Sshd, running_sshd, unix_account


def one_round(
    server: Sshd, account: Account, keys: Keys, stream: AgentStream
) -> tuple[float, float]:
    # Random phases: acting right after a line would always land just after a poll.
    time.sleep(random.uniform(0, POLL_INTERVAL))
    after = len(stream.lines)
    started = time.monotonic()
    shell = subprocess.Popen(
        server.ssh_argv(account.name, keys.user, options=["-tt"]),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        up = stream.wait_connections(1, after=after)
        connect = stream.arrived[up] - started
        assert shell.stdin is not None
        time.sleep(random.uniform(0, POLL_INTERVAL))
        shell.stdin.write(b"exit\n")
        shell.stdin.flush()
        shell.wait(15)
        exited = time.monotonic()
        down = stream.wait_connections(0, after=up)
        return connect, stream.arrived[down] - exited
    finally:
        if shell.poll() is None:
            shell.kill()
            shell.wait(10)


def main(rounds: int, as_json: bool) -> None:
    with running_sshd() as server, unix_account() as account:
        keys = Keys.make(server.root / "keys")
        authorize(account, keys, install_agent(server.root / "agent"))
        stream = AgentStream(server, account, keys)
        try:
            stream.wait_connections(0)
            results = [one_round(server, account, keys, stream) for _ in range(rounds)]
        finally:
            stream.close()
    connect = [r[0] for r in results]
    logout = [r[1] for r in results]
    if as_json:
        print(
            json.dumps(
                {
                    "rounds": rounds,
                    "connect_to_1_s": {
                        "median": statistics.median(connect),
                        "max": max(connect),
                        "all": connect,
                    },
                    "exit_to_0_s": {
                        "median": statistics.median(logout),
                        "max": max(logout),
                        "all": logout,
                    },
                }
            )
        )
        return

    def line(label: str, values: list[float]) -> str:
        return (
            f"{label:24} min {min(values) * 1000:6.0f} ms   median "
            f"{statistics.median(values) * 1000:6.0f} ms   max {max(values) * 1000:6.0f} ms"
        )

    print(f"presence agent reaction, {rounds} rounds, real sshd, {os.cpu_count()} cores")
    print(line("connect -> connections 1", connect))
    print(line("ssh exit -> connections 0", logout))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args()
    main(arguments.rounds, arguments.json)
