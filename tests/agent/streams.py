"""Helpers of the agent's end-to-end tests: install the agent, read its stream over ssh."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devenv.backends.ssh.agent_bundle import AGENT_FILE, agent_zipapp
from tests.support.sshd import Account, KeyPair, Sshd, make_keypair

AGENT_NAME = AGENT_FILE
"""The name hosts install it under (presence_agent-5.py): the agent finds its own
processes, and its siblings', by it."""
SYSTEM_PYTHON = "/usr/bin/python3"
"""The host's own Python: the account cannot read the venv's, which lives under /root."""

Line = dict[str, Any]


def install_agent(folder: Path) -> Path:
    """The agent (the zipapp hosts get) where any account can read it: a 0755 folder, a
    0644 file."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.chmod(0o755)
    target = folder / AGENT_NAME
    target.write_bytes(agent_zipapp())
    target.chmod(0o644)
    return target


def forced_command_line(agent: Path, user: str, min_duration: float, key: KeyPair) -> str:
    """devenv's internal key as it appears in authorized_keys: the agent, nothing else."""
    command = (
        f"{SYSTEM_PYTHON} {agent} stream --user {user} --min-connection-duration {min_duration:g}"
    )
    return f'restrict,command="{command}" {key.line}'


@dataclass(frozen=True)
class Keys:
    user: KeyPair
    internal: KeyPair
    stranger: KeyPair
    """Authorized nowhere: for failed logins."""

    @classmethod
    def make(cls, folder: Path) -> Keys:
        return cls(
            make_keypair(folder / "user", "dvt-user"),
            make_keypair(folder / "internal", "dvt-internal"),
            make_keypair(folder / "stranger", "dvt-stranger"),
        )


def authorize(account: Account, keys: Keys, agent: Path, min_duration: float = 0) -> None:
    account.authorize(
        keys.user.line, forced_command_line(agent, account.name, min_duration, keys.internal)
    )


class AgentStream:
    """The agent's stream read through the internal key by the real ssh client.

    A thread collects every JSON line with the monotonic time it arrived, so tests
    can wait for a state (with a deadline) and measure reaction times.
    """

    def __init__(self, server: Sshd, account: Account, keys: Keys, *command: str) -> None:
        self.process = server.popen_ssh(
            account.name, keys.internal, *command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.lines: list[Line] = []
        self.arrived: list[float] = []
        self.raw: list[bytes] = []
        self._changed = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            with self._changed:
                self.raw.append(raw)
                self.lines.append(json.loads(raw))
                self.arrived.append(time.monotonic())
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(
        self, predicate: Callable[[Line], bool], what: str, after: int = 0, timeout: float = 15
    ) -> int:
        """Index of the first line from ``after`` on that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for index in range(after, len(self.lines)):
                    if predicate(self.lines[index]):
                        return index
                after = max(after, len(self.lines))
                left = deadline - time.monotonic()
                if left <= 0 or self._ended:
                    state = "ended" if self._ended else f"timed out after {timeout}s"
                    raise AssertionError(
                        f"agent stream {state} waiting for {what}; lines: {self.lines}; "
                        f"stderr: {self.stderr()}"
                    )
                self._changed.wait(left)

    def wait_connections(self, count: int, after: int = 0, timeout: float = 15, **more: int) -> int:
        """Index of the first line with ``connections == count`` (and ``waiting`` etc.)."""
        return self.wait_for(
            lambda line: (
                line["connections"] == count
                and all(line[key] == value for key, value in more.items())
            ),
            f"connections == {count} {more or ''}",
            after,
            timeout,
        )

    def stderr(self) -> str:
        if self.process.poll() is None or self.process.stderr is None:
            return "(still running)"
        return self.process.stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)
