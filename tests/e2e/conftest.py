"""One real devenv server (embedded Temporal dev server + worker) for the e2e tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, serving

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def devenv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devenv]:
    if shutil.which("ssh") is None:
        pytest.fail("the OpenSSH client is required (apt-get install openssh-client)")
    with serving(Devenv(tmp_path_factory.mktemp("e2e"))) as world:
        yield world


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return Path(__file__).parents[2] / "examples" / "dev.yml"
