"""The failsafe under ``on_idle: suspend``: idleness suspends, a maximum duration ends.

As in ``test_failsafe``: the decision as a pure function, then the agent's real
``failsafe`` process as root watching a real account, nobody connected, nobody reading.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devenv.agent.presence.failsafe import FailsafePolicy, parse_policy, suspends
from devenv.backends.ssh import failsafe as host_failsafe
from devenv.models import messages
from tests.agent.streams import SYSTEM_PYTHON
from tests.agent.test_failsafe import (
    REAL_INTERVAL,
    T0,
    WALL,
    good_policy,
    process,
    reason,
)
from tests.support.sshd import Account, wait_until


def rule(
    on_idle: str, inactivity: float | None = 60, max_duration: float | None = None
) -> FailsafePolicy:
    return FailsafePolicy(inactivity, max_duration, WALL, 30, on_idle)


def test_idleness_suspends_only_under_on_idle_suspend_and_max_duration_always_ends() -> None:
    idle = reason(rule("suspend"), T0 + 100)
    assert idle is not None and suspends(rule("suspend"), idle)
    assert not suspends(rule("terminate"), idle), "the default ends, as before"
    limited = rule("suspend", inactivity=None, max_duration=3600)
    over = reason(limited, T0 + 60, users=1, wall=WALL + 3600)
    assert over is not None and not suspends(limited, over), "max_duration ends for good"


def test_the_policy_devenv_writes_carries_on_idle() -> None:
    model = messages.FailsafePolicy.of(60, None, datetime(2030, 1, 1, tzinfo=UTC), 300, "suspend")
    assert parse_policy(host_failsafe.policy_json(model)).on_idle == "suspend"
    assert parse_policy(json.dumps(good_policy())).on_idle == "terminate", "older policies"
    with pytest.raises(ValueError, match="on_idle"):
        parse_policy(json.dumps(good_policy(on_idle="hibernate")))


@pytest.mark.e2e
def test_an_idle_unread_machine_under_on_idle_suspend_runs_the_suspend_action(
    account: Account, agent_path: Path, tmp_path: Path
) -> None:
    ended, suspended = tmp_path / "ended", tmp_path / "suspended"
    policy_file = tmp_path / "policy.json"
    policy = messages.FailsafePolicy.of(1, None, datetime.now(UTC), 1, on_idle="suspend")
    policy_file.write_text(host_failsafe.policy_json(policy))
    log = tmp_path / "failsafe.log"
    argv = [
        SYSTEM_PYTHON,
        str(agent_path),
        "failsafe",
        "--user",
        account.name,
        "--policy",
        str(policy_file),
        "--action",
        f"touch '{ended}'",
        "--suspend-action",
        f"touch '{suspended}'",
        "--interval",
        str(REAL_INTERVAL),
    ]
    with process(argv, log) as failsafe:
        wait_until(suspended.exists, 15, "the suspend action to run")
        assert failsafe.wait(10) == 0
    assert not ended.exists(), "idleness under on_idle: suspend never ends the machine"
    text = log.read_text()
    assert "on_idle suspend" in text and "suspending it, running the suspend action" in text
