"""A --stop-at replaces an earlier --extend: the answer and the log say so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.e2e.harness import Devenv

pytestmark = pytest.mark.e2e


def test_a_stop_at_after_an_extend_says_the_extension_no_longer_holds(
    devenv: Devenv, example: Path
) -> None:
    devenv.run("start", str(example), "--name", "e2e-stopat", "--inactivity", "1h")
    try:
        extended = json.loads(devenv.run("signal", "e2e-stopat", "--extend", "1h", "--json").stdout)
        until = datetime.fromisoformat(extended["deadline"]).astimezone(UTC)
        end = (datetime.now(UTC) + timedelta(minutes=30)).replace(microsecond=0)
        answer = devenv.run("signal", "e2e-stopat", "--stop-at", end.isoformat()).stdout
        said = [line.strip() for line in answer.splitlines() if "no longer holds" in line]
        assert len(said) == 1, answer
        assert said[0].startswith("The extension to ")  # the date too, if not today's
        assert said[0].endswith(f"{until:%H:%M:%S}Z no longer holds (--stop-at replaces it).")
        assert f"{until:%H:%M:%S}Z no longer holds" in devenv.run("logs", "e2e-stopat").stdout
        assert devenv.ps("e2e-stopat")["deadline"] == end.isoformat().replace("+00:00", "Z")
    finally:
        devenv.run("stop", "e2e-stopat", "--wait", check=False)
