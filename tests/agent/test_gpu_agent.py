"""The presence agent as hosts run it (the shipped zipapp) samples the GPUs with
``nvidia-smi`` for ``utilization_policy``: a stand-in nvidia-smi on its PATH prints the
recorded samples of tests/agent/gpu_samples (no GPU is lent to these tests)."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

from devenv.backends.ssh.agent_bundle import AGENT_FILE, agent_zipapp

SAMPLES = Path(__file__).parent / "gpu_samples"
ME = pwd.getpwuid(os.getuid()).pw_name


def probe_with(tmp_path: Path, sample: str, *args: str) -> dict[str, Any]:
    recorded = next(SAMPLES.glob(f"{sample}.exit*.txt"))
    code = recorded.name.split(".exit")[1].split(".")[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stand_in = bin_dir / "nvidia-smi"
    stand_in.write_text(f"#!/bin/sh\ncat '{recorded}'\nexit {code}\n")
    stand_in.chmod(0o755)
    agent = tmp_path / AGENT_FILE
    agent.write_bytes(agent_zipapp())
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run(
        [sys.executable, str(agent), "probe", "--user", ME, *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=True,
    )
    line: dict[str, Any] = json.loads(done.stdout)
    return line


def test_quiet_busy_unreadable_and_failing_gpus_as_the_agent_reports_them(
    tmp_path: Path,
) -> None:
    quiet = probe_with(tmp_path, "eight_idle", "--gpu-min", "10")
    assert "gpu_quiet_since" in quiet and "gpu_error" not in quiet
    busy = probe_with(tmp_path, "two_gpus", "--gpu-min", "10")
    assert "gpu_quiet_since" not in busy and "gpu_error" not in busy
    assert "gpu_quiet_since" in probe_with(tmp_path, "two_gpus", "--gpu-min", "50")
    unreadable = probe_with(tmp_path, "mig_na", "--gpu-min", "10")
    assert "gpu_quiet_since" not in unreadable, "[N/A] counts as in use"
    failed = probe_with(tmp_path, "driver_failed", "--gpu-min", "10")
    assert "gpu_quiet_since" not in failed
    assert failed["gpu_error"].startswith("nvidia-smi exited 9: NVIDIA-SMI has failed")
    unwatched = probe_with(tmp_path, "eight_idle")
    assert "gpu_quiet_since" not in unwatched and "gpu_error" not in unwatched
