"""``inactivity_duration: auto`` under an admin's policy: the policy's bounds apply on top
(issue 24). A start is not refused for choosing auto, it starts and learns at most at the
policy's max-inactivity, and the event says when the policy capped what auto chose."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devenv.client.policy import bind_start
from devenv.models.auto_threshold import AutoState, Break
from devenv.models.config import InactivityBounds
from devenv.models.policy import Policy, PolicySet
from devenv.workflows.adaptive import rechoose
from tests.workflow.fakes import make_state

H = 3600
NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


def test_an_auto_start_under_a_lower_max_inactivity_starts_at_the_policys_max() -> None:
    spec = make_state(inactivity=4 * H).spec
    spec.inactivity_auto = InactivityBounds(min=900, max=4 * H)
    state = bind_start(
        PolicySet(version=1, everyone=Policy(max_inactivity=H, default_inactivity=H // 2)),
        spec,
        {"inactivity_duration": "auto"},  # type: ignore[dict-item]  # as the parsed config gives it
    )
    assert state.spec.inactivity_duration == H  # not the policy's default: auto chose
    assert state.spec.inactivity_auto == InactivityBounds(min=900, max=H)
    assert state.org_policy is not None and state.org_policy.max_inactivity == H


def test_auto_learns_within_the_policys_max_inactivity_and_says_so() -> None:
    state = make_state(inactivity=H)
    state.spec.inactivity_auto = InactivityBounds(min=900, max=4 * H)
    state.org_policy = PolicySet(version=1, everyone=Policy(max_inactivity=H)).effective(None)
    # three long breaks: unbounded, auto would pick 1.5 x 2h = 3h
    breaks = [Break(ended=NOW - timedelta(days=d), seconds=2 * H) for d in (1, 2, 3)]
    state.auto = AutoState(breaks=breaks, used=True, others_read=True)
    state.spec.inactivity_duration = 30 * 60
    said = rechoose(state, NOW)
    assert state.spec.inactivity_duration == H
    assert said is not None and said.endswith("; capped by policy max-inactivity 1h"), said
