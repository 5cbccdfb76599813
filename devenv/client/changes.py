"""A change of a running environment, checked once for both transports.

``AsyncEnvironment.update`` turns its keywords into ``Changes`` here (each value
checked, one line naming the key if bad); the direct transport sends them as the
workflow's ``Change``, the HTTP one as the ``PATCH`` body.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from devenv.client.durations import check_duration, check_stop_at
from devenv.client.options import UNSET, Duration, StopAt, Unset
from devenv.client.sharing import check_names
from devenv.errors import InvalidValueError


@dataclass(frozen=True)
class Changes:
    """What a change sets; ``UNSET`` for what it leaves alone. ``None``: switched off."""

    inactivity_duration: int | Unset | None = UNSET
    max_duration: int | Unset | None = UNSET
    stop_at: datetime | Unset | None = UNSET
    extend: int | Unset = UNSET
    shared_with: list[str] | Unset = UNSET

    @classmethod
    def parse(
        cls,
        *,
        inactivity_duration: Duration | Unset = UNSET,
        max_duration: Duration | Unset = UNSET,
        extend: Duration | Unset = UNSET,
        stop_at: StopAt | Unset = UNSET,
        shared_with: list[str] | Unset = UNSET,
    ) -> Changes:
        """Each given value checked as the YAML's (InvalidValueError naming the key);
        at least one must be given."""
        inactivity = _duration("inactivity_duration", inactivity_duration)
        maximum = _duration("max_duration", max_duration)
        end = UNSET if isinstance(stop_at, Unset) else check_stop_at("stop_at", stop_at)
        extended: int | Unset = UNSET
        if not isinstance(extend, Unset):
            pushed = check_duration("extend", extend)
            if not pushed:
                raise InvalidValueError(f"extend: {extend!r} is not a positive duration")
            extended = pushed
        members = UNSET if isinstance(shared_with, Unset) else check_names(shared_with)
        changes = cls(inactivity, maximum, end, extended, members)
        if not changes.given():
            raise InvalidValueError(
                "nothing to change: give inactivity_duration, max_duration, extend, stop_at "
                "or shared_with"
            )
        return changes

    def given(self) -> list[str]:
        """The names of the keys this change sets."""
        return [item.name for item in fields(self) if getattr(self, item.name) is not UNSET]


def _duration(key: str, value: Duration | Unset) -> int | Unset | None:
    return UNSET if isinstance(value, Unset) else check_duration(key, value)
