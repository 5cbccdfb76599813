"""``utilization_policy`` on the local backend, as a user lives it: a connected ``ssh -tt``
session does not keep an environment whose GPUs sit idle. No GPU is lent to these tests:
a stand-in ``nvidia-smi`` first on the server's PATH prints recorded samples
(tests/agent/gpu_samples), swapped by the test as a GPU's load would change."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import Devenv, serving, wait_for

pytestmark = pytest.mark.e2e

SAMPLES = Path(__file__).parents[1] / "agent" / "gpu_samples"


@pytest.fixture(scope="module")
def gpu_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Devenv, Path]]:
    root = tmp_path_factory.mktemp("gpu-e2e")
    bin_dir = root / "bin"
    bin_dir.mkdir()
    current = root / "sample.txt"
    shutil.copy(SAMPLES / "one_full.exit0.txt", current)
    stand_in = bin_dir / "nvidia-smi"
    stand_in.write_text(f"#!/bin/sh\ncat '{current}'\n")
    stand_in.chmod(0o755)
    path = f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    with serving(Devenv(root, extra_env={"PATH": path, "DEVENV_API_PORT": "0"})) as world:
        yield world, current


def test_idle_gpus_end_it_while_connected_and_a_busy_gpu_keeps_it(
    gpu_world: tuple[Devenv, Path], tmp_path: Path
) -> None:
    devenv, current = gpu_world
    name = "e2e-idle-gpus"
    doc = {
        "type": "dev-environment",
        "name": name,
        "inactivity_duration": "1h",
        "warn_before": "5s",
        "utilization_policy": {"min_gpu_utilization": 10, "time_window": "15s"},
    }
    path = tmp_path / "dev.yml"
    path.write_text(yaml.safe_dump(doc))
    devenv.run("start", str(path))
    session = devenv.open_session(name)
    try:
        session.expect(f"devenv: this is '{name}'")
        verbose = wait_for(
            lambda: "a GPU was in use" in (v := devenv.run("ps", name, "-v").stdout) and v,
            30,
            "ps -v to show a busy GPU",
        )
        assert "utilization_policy: GPUs under 10% for 15s end it" in verbose
        time.sleep(20)  # more than a whole window with a busy GPU: nothing may happen
        assert devenv.ps(name)["status"] == "running", "a GPU at 100% keeps it"

        shutil.copy(SAMPLES / "eight_idle.exit0.txt", current)  # the job finished
        text = session.expect_terminal_warning(name, timeout=40)
        assert "every GPU under 10% for 15s (utilization_policy)" in text
        row = wait_for(
            lambda: (r := devenv.ps(name))["status"] == "terminated" and r, 30, "the end"
        )
    finally:
        if session.process.poll() is None:
            session.kill()
    assert row["termination_reason"] == "gpu_underutilized"
    logs = devenv.run("logs", name).stdout
    assert "GPUs underutilized: every GPU under 10% for 15s (utilization_policy), since" in logs
