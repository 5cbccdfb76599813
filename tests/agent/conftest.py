"""Fixtures of the agent tests: one real sshd on loopback, fresh accounts, the agent installed.

Nothing is skipped: without /usr/sbin/sshd (Debian's openssh-server), the OpenSSH
client or root, the tests that need them fail and say what to install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.agent.streams import AgentStream, Keys, authorize, install_agent
from tests.support.sshd import (
    Account,
    HarnessError,
    Sshd,
    check_prerequisites,
    running_sshd,
    unix_account,
)


@pytest.fixture(scope="session")
def sshd() -> Iterator[Sshd]:
    try:
        check_prerequisites()
    except HarnessError as error:
        pytest.fail(f"the agent's end-to-end tests need a real sshd: {error}")
    with running_sshd() as server:
        yield server


@pytest.fixture(scope="session")
def agent_path(sshd: Sshd) -> Path:
    return install_agent(sshd.root / "agent")


@pytest.fixture(scope="session")
def keys(sshd: Sshd) -> Keys:
    return Keys.make(sshd.root / "keys")


@pytest.fixture
def accounts() -> Iterator[Callable[[], Account]]:
    """Makes fresh accounts; every one is emptied of processes and deleted after the test."""
    with ExitStack() as stack:
        yield lambda: stack.enter_context(unix_account())


@pytest.fixture
def account(accounts: Callable[[], Account], keys: Keys, agent_path: Path) -> Account:
    """An account with the user key and the internal key (agent, min duration 0)."""
    made = accounts()
    authorize(made, keys, agent_path)
    return made


@pytest.fixture
def streams(sshd: Sshd, keys: Keys) -> Iterator[Callable[..., AgentStream]]:
    """Opens agent streams through the internal key; all closed after the test."""
    opened: list[AgentStream] = []

    def open_stream(account: Account, *command: str) -> AgentStream:
        stream = AgentStream(sshd, account, keys, *command)
        opened.append(stream)
        return stream

    try:
        yield open_stream
    finally:
        for stream in opened:
            stream.close()
