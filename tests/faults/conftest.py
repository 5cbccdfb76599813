"""One deployment for the fault tests: Temporal and the worker as separate processes.

Tests kill parts of it on purpose; the ``cluster`` fixture brings back whatever an
earlier test left dead, and the session ends by killing every process it started.
Measured figures are printed at the end of the run (``figures`` fixture).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from tests.faults.cluster import Cluster

FIGURES: dict[str, str] = {}


@pytest.fixture(scope="session")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client is required (apt-get install openssh-client)")
    world = Cluster(tmp_path_factory.mktemp("faults"))
    try:
        world.ensure_up()
        yield world
    finally:
        world.teardown()


@pytest.fixture
def cluster(deployment: Cluster) -> Cluster:
    deployment.ensure_up()
    return deployment


@pytest.fixture
def figures() -> dict[str, str]:
    """What a test measured, shown in the run's summary (the README's numbers)."""
    return FIGURES


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("crash-safety figures")
        for key, value in FIGURES.items():
            terminalreporter.write_line(f"{key}: {value}")
