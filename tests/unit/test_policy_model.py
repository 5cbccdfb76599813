"""The policy model without a server: a user's scope over everyone's, the refusal
lines users see, a start's defaults, and what ``policy set`` refuses before storing."""

from __future__ import annotations

import pytest

from devenv.models.policy import (
    OrgPolicy,
    Policy,
    PolicyChange,
    PolicyRefusal,
    PolicySet,
    check_thresholds,
    start_defaults,
)

H = 3600


def policies() -> PolicySet:
    return PolicySet(
        version=3,
        everyone=Policy(max_inactivity=8 * H, default_inactivity=2 * H, max_duration=24 * H),
        users={"alice": Policy(max_inactivity=12 * H, no_off=True)},
    )


def test_a_users_scope_overrides_everyones_key_by_key() -> None:
    alice = policies().effective("alice")
    assert (alice.max_inactivity, alice.default_inactivity, alice.no_off) == (12 * H, 2 * H, True)
    assert alice.scopes["max_inactivity"] == "user alice"
    assert alice.scopes["max_duration"] == "everyone"
    assert policies().effective("bob").max_inactivity == 8 * H
    assert policies().effective(None).version == 3


@pytest.mark.parametrize(
    ("user", "values", "line"),
    [
        (
            "bob",
            {"inactivity_duration": 12 * H},
            "inactivity_duration: 12h exceeds the policy's max-inactivity 8h "
            "(set by an admin for everyone; devenv policy show)",
        ),
        (
            "alice",
            {"inactivity_duration": None},
            "inactivity_duration: off is refused by the policy's no-off "
            "(set by an admin for user alice; devenv policy show)",
        ),
        (
            "bob",
            {"max_duration": None},
            "max_duration: off is refused by the policy's max-duration 1d "
            "(set by an admin for everyone; devenv policy show)",
        ),
    ],
)
def test_a_value_outside_the_policy_is_refused_in_one_line_naming_the_bound(
    user: str, values: dict[str, int | None], line: str
) -> None:
    with pytest.raises(PolicyRefusal) as refused:
        check_thresholds(policies().effective(user), values)
    assert str(refused.value) == line


def test_values_within_the_policy_and_absent_keys_pass() -> None:
    check_thresholds(policies().effective("bob"), {"inactivity_duration": 8 * H})
    check_thresholds(policies().effective("bob"), {})


def test_a_start_without_thresholds_gets_the_default_and_the_caps() -> None:
    bob = policies().effective("bob")
    assert start_defaults(bob, {}) == {"inactivity_duration": 2 * H, "max_duration": 24 * H}
    assert start_defaults(bob, {"inactivity_duration": H, "max_duration": H}) == {}
    only_max = OrgPolicy(version=1, max_inactivity=4 * H)
    assert start_defaults(only_max, {}) == {"inactivity_duration": 4 * H}


def test_policy_set_merges_keys_unsets_with_none_and_refuses_bad_ones() -> None:
    merged = PolicyChange(keys={"max_duration": None, "delete_after": 7 * 24 * H}).applied_to(
        policies()
    )
    assert merged.everyone.max_duration is None
    assert merged.everyone.max_inactivity == 8 * H  # kept
    assert merged.everyone.delete_after == 7 * 24 * H
    cleared = PolicyChange(user="alice", clear=True).applied_to(policies())
    assert "alice" not in cleared.users
    for change, line in (
        (PolicyChange(keys={"max_idle": H}), "max_idle: not a policy key"),
        (PolicyChange(keys={"default_inactivity": 9 * H}), "--default-inactivity: 9h exceeds"),
        (PolicyChange(user="Bad Name", keys={"max_duration": H}), "--user: 'Bad Name'"),
        (PolicyChange(keys={"max_inactivity": -1}), "max-inactivity: Input should be"),
        (
            PolicyChange(keys={"no_off": True}).model_copy(),
            None,
        ),
    ):
        if line is None:
            change.applied_to(policies())  # everyone has a max-inactivity to fall back to
            continue
        with pytest.raises(PolicyRefusal) as refused:
            change.applied_to(policies())
        assert str(refused.value).startswith(line)
    with pytest.raises(PolicyRefusal, match="--no-off: needs"):
        PolicyChange(keys={"no_off": True}).applied_to(PolicySet())


def test_the_memo_row_carries_policy_changes_only_once_a_policy_changed_it() -> None:
    """Histories recorded before the count existed upsert the same memo on replay; the
    count reaches `devenv_policy_changes_total` through the memo."""
    from devenv.models.state import EnvSpec, EnvState
    from devenv.models.status import POLICY_CHANGES_KEY
    from devenv.workflows.visibility import memo_row

    state = EnvState(spec=EnvSpec(name="m", user_public_key="ssh-ed25519 AAAA"))
    assert POLICY_CHANGES_KEY not in memo_row(state)
    state.policy_changes = 3
    assert memo_row(state)[POLICY_CHANGES_KEY] == 3
