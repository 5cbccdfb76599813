"""`devenv gc` calls only orphans leftovers: the instances of running environments it
finds are listed as live and kept, never counted as left over."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv, serving

pytestmark = pytest.mark.e2e


def test_instances_of_running_environments_are_not_called_leftovers(
    tmp_path: Path, example: Path
) -> None:
    with serving(Devenv(tmp_path)) as world:
        for name in ("gc-two-a", "gc-two-b"):
            world.run("start", str(example), "--name", name, "--inactivity", "1h")
        report = json.loads(world.run("gc", "--json").stdout)
        assert [item["status"] for item in report["leftovers"]] == ["live", "live"]
        listed = world.run("gc").stdout.splitlines()
        assert listed[-1] == (
            "No leftovers: only 2 instances of running environments, kept; nothing to terminate."
        )
        assert not any("leftover" in line for line in listed[:-1])
