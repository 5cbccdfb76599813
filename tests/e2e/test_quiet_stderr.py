"""No Python warning reaches a user's terminal: a dependency release (cryptography 51
deprecating DSA, which asyncssh still names) once printed ten lines of warnings before
every command's output. Each command a user runs, and a script using the SDK, is run
here with Python's default warning filters and its stderr read whole."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv

pytestmark = pytest.mark.e2e


def _quiet(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, (result.args, result.stdout, result.stderr)
    assert "Warning" not in result.stderr, result.stderr
    assert "warnings.warn" not in result.stderr and ".py:" not in result.stderr, result.stderr


def test_no_command_prints_a_python_warning(devenv: Devenv, tmp_path: Path) -> None:
    name = "e2e-quiet"
    path = tmp_path / "quiet.yml"
    path.write_text(f"type: dev-environment\nname: {name}\ninactivity_duration: 1h\n")
    try:
        started = devenv.run("start", str(path))
        _quiet(started)
        assert not [line for line in started.stderr.splitlines() if "Deprecat" in line]
        _quiet(devenv.run("ssh", name, "--", "true"))
        job = devenv.run("run", name, "--detach", "--id", "quiet", "--", "echo", "hello")
        _quiet(job)
        _quiet(devenv.run("jobs", name))
        _quiet(devenv.run("logs", name, "--job", "quiet"))
        _quiet(devenv.run("ps", name))
        _quiet(devenv.run("logs", name))
        _quiet(devenv.run("gc", "--json"))
        script = f"import devenv\nprint(devenv.get({name!r}).status().status)\n"
        sdk = subprocess.run(
            [sys.executable, "-c", script],
            env={**devenv.env, "PYTHONWARNINGS": "default"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        _quiet(sdk)
        assert sdk.stdout.strip() == "running"
    finally:
        devenv.run("stop", name, "--wait", check=False, timeout=60)
    assert json.loads(devenv.run("ps", name, "--json").stdout)[0]["status"] == "terminated"
