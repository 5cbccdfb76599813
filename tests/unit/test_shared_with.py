"""``shared_with`` is the whole list of members: a lone name is refused, never taken as a
list of one that would unshare everyone else (the SDK's and the API's PATCH check)."""

from __future__ import annotations

import pytest

from devenv.client.sharing import check_names
from devenv.errors import InvalidValueError


def test_a_single_name_is_refused_saying_what_is_accepted() -> None:
    with pytest.raises(InvalidValueError) as refused:
        check_names("bob")
    assert str(refused.value) == (
        "shared_with: 'bob' is a single name; accepted: a list of user names "
        '(["bob"] for that user alone, [] for nobody)'
    )


@pytest.mark.parametrize("value", [["bob"], [], ["bob", "carol", "bob"]])
def test_lists_are_accepted_once_each(value: list[str]) -> None:
    assert check_names(value) == list(dict.fromkeys(value))
