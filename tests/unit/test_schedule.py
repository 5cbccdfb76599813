"""A policy's daily stop: the next one in its zone and on its days, and the lines a
bad time, zone or set of days gets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devenv.client.policy import policy_keys
from devenv.errors import InvalidValueError
from devenv.models.policy import Policy, PolicySet
from devenv.models.schedule import next_stop, parse_days


def test_the_next_stop_is_today_or_the_next_chosen_day_in_its_zone() -> None:
    friday_noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)  # a Friday; Berlin is UTC+1
    assert next_stop("20:00", "Europe/Berlin", "Mon-Fri", friday_noon) == datetime(
        2026, 12, 4, 19, 0, tzinfo=UTC
    )
    friday_late = datetime(2026, 12, 4, 20, 30, tzinfo=UTC)
    assert next_stop("20:00", "Europe/Berlin", "Mon-Fri", friday_late) == datetime(
        2026, 12, 7, 19, 0, tzinfo=UTC
    )  # Monday
    assert next_stop("20:00", None, None, friday_late) == datetime(2026, 12, 5, 20, 0, tzinfo=UTC)
    assert parse_days("Sat-Mon") == {5, 6, 0}


def test_the_effective_policy_carries_the_next_stop_only_when_asked_with_a_time() -> None:
    policies = PolicySet(version=1, everyone=Policy(stop_at_daily="20:00", tz="UTC"))
    assert policies.effective("bob").next_stop is None
    noon = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert policies.effective("bob", noon).next_stop == datetime(2026, 12, 4, 20, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("keys", "line"),
    [
        ({"stop_at_daily": "8pm"}, "stop-at-daily: '8pm' is not a time of day; accepted: HH:MM"),
        ({"tz": "Mars/Olympus"}, "tz: 'Mars/Olympus' is not a time zone"),
        ({"days": "weekdays"}, "days: 'weekdays' is not a set of days"),
    ],
)
def test_a_bad_schedule_key_is_one_line_naming_it(keys: dict[str, str], line: str) -> None:
    with pytest.raises(InvalidValueError) as refused:
        policy_keys(keys)
    assert str(refused.value).startswith(line)
    assert policy_keys({"stop_at_daily": "off"}) == {"stop_at_daily": None}
