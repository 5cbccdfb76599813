"""benchmarks/auto_threshold.py: its month of breaks holds the rule's promise."""

from __future__ import annotations

import json

import pytest

from benchmarks.auto_threshold import main


def test_no_false_kill_for_users_whose_breaks_follow_their_history(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["false_kills_following_history"] == 0
    users = {row["user"]: row for row in figures["users"]}
    assert users["coffee"]["saved"] > 0, "short breaks: a short threshold"
    assert users["habit-change"]["false_kills_auto"] >= 1, "an unseen break is not covered"
