"""The gate every signal and update input of the environment workflow passes: garbage
becomes an InputError naming what is accepted; a boolean is never a number."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from devenv.workflows import inputs

GARBAGE: list[tuple[Any, ...]] = [
    (),
    (True,),
    (False,),
    ("1s",),
    ("5",),
    (1.5,),
    ([1],),
    ({},),
    (5, 6),
]


@pytest.mark.parametrize("args", GARBAGE, ids=repr)
def test_a_threshold_is_whole_seconds_or_null_and_nothing_else(args: tuple[Any, ...]) -> None:
    with pytest.raises(inputs.InputError) as refused:
        inputs.strict_threshold("inactivity_duration", args)
    assert "inactivity_duration must be whole seconds or null (off)" in str(refused.value)


def test_valid_thresholds_pass_as_they_are() -> None:
    assert inputs.strict_threshold("max_duration", (7200,)) == 7200
    assert inputs.strict_threshold("max_duration", (None,)) is None
    assert inputs.strict_threshold("max_duration", (0,)) == 0


@pytest.mark.parametrize("args", [*GARBAGE, (None,)], ids=repr)
def test_extend_is_whole_seconds(args: tuple[Any, ...]) -> None:
    with pytest.raises(inputs.InputError, match="extend must be whole seconds"):
        inputs.strict_extend(args)


@pytest.mark.parametrize("value", [True, 5, "tomorrow", "2030-01-01T10:00", {}, [1]])
def test_stop_at_is_a_time_with_its_zone(value: Any) -> None:
    with pytest.raises(inputs.InputError, match="stop_at accepts an ISO-8601 time"):
        inputs.strict_stop_at((value,))


def test_a_stop_at_with_its_zone_passes() -> None:
    at = inputs.strict_stop_at(("2030-01-01T10:00:00+00:00",))
    assert at == datetime(2030, 1, 1, 10, tzinfo=UTC)
    assert inputs.strict_stop_at((None,)) is None


@pytest.mark.parametrize("value", ["true", 1, 0, None, {}])
def test_purge_is_a_boolean(value: Any) -> None:
    with pytest.raises(inputs.InputError, match="accepts true or false"):
        inputs.strict_bool("set_purge_workspace", (value,))


@pytest.mark.parametrize("args", [(5,), ({"why": "x"},), (True,), ("x" * 501,), ("a", "b")])
def test_a_stop_reason_is_optional_text(args: tuple[Any, ...]) -> None:
    with pytest.raises(inputs.InputError):
        inputs.strict_reason(args)
    assert inputs.strict_reason(()) is None
    assert inputs.strict_reason(("done",)) == "done"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"inactivity": {"seconds": True}}, "inactivity.seconds"),
        ({"inactivity": {"seconds": "60"}}, "inactivity.seconds"),
        ({"extend": 1.5}, "extend"),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"inactivity": {"seconds": 5, "unit": "m"}}, "inactivity.unit: unknown key"),
        ({"shared_with": "bob"}, "shared_with"),
        ("inactivity", "is not an object"),
        (None, "is not an object"),
    ],
)
def test_a_change_has_its_types_exactly_and_no_unknown_key(value: Any, problem: str) -> None:
    with pytest.raises(inputs.InputError) as refused:
        inputs.strict_change((value,))
    assert problem in str(refused.value)
    assert "change accepts one object with the keys" in str(refused.value)


def test_a_valid_change_passes_with_a_time_as_text() -> None:
    change = inputs.strict_change(
        ({"inactivity": {"seconds": 60}, "stop_at": {"at": "2030-01-01T10:00:00Z"}, "by": "bob"},)
    )
    assert change.inactivity is not None and change.inactivity.seconds == 60
    assert change.stop_at is not None and change.stop_at.at == datetime(2030, 1, 1, 10, tzinfo=UTC)


def test_a_presence_report_refuses_a_boolean_count() -> None:
    now = "2030-01-01T10:00:00Z"
    assert inputs.strict_presence(({"connections": 2, "last_change": now},)).connections == 2
    with pytest.raises(inputs.InputError, match="connections"):
        inputs.strict_presence(({"connections": True, "last_change": now},))


def test_a_presence_report_of_a_newer_worker_with_a_new_key_still_counts() -> None:
    """A rolling upgrade: the monitor (new code) may add a field the workflow (old code)
    does not know; dropping the report would end an environment someone is using."""
    report = {"connections": 1, "last_change": "2030-01-01T10:00:00Z", "new_field": 7}
    assert inputs.strict_presence((report,)).connections == 1


def test_a_refused_value_is_quoted_short() -> None:
    with pytest.raises(inputs.InputError) as refused:
        inputs.strict_threshold("max_duration", ("x" * 10_000,))
    assert len(str(refused.value)) < 200
