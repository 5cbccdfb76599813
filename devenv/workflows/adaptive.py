"""``inactivity_duration: auto`` inside the workflow: record each break, pick the threshold.

Pure functions of the state (and the time passed in); the rule itself is
``devenv.models.auto_threshold``. The workflow calls ``after_report`` on every presence
report and ``take_owner_breaks`` once with what the ``owner_breaks`` activity read.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from devenv.models.auto_threshold import (
    WINDOW,
    AutoState,
    Break,
    OwnerBreaks,
    change_words,
    choose,
    kept,
)
from devenv.models.durations import format_duration
from devenv.models.money import format_usd
from devenv.models.state import EnvSpec, EnvState


def start(s: EnvState) -> None:
    """A new auto environment gets its (empty) memory of breaks."""
    if s.spec.inactivity_auto is not None and s.auto is None:
        s.auto = AutoState()


def after_report(
    s: EnvState, idle_since: datetime | None, was_idle: bool, now: datetime
) -> str | None:
    """After a presence report: someone came back after everyone left -> a break ended.

    Record it and move the threshold (the event to log, or None). The wait before the
    first use is not a break: nobody had left yet."""
    memory = s.auto
    if memory is None or s.spec.inactivity_auto is None or not was_idle:
        return None
    if s.connections + s.jobs == 0:
        return None
    if not memory.used:
        memory.used = True
        return None
    if idle_since is None:
        return None
    seconds = max((now - idle_since).total_seconds(), 0.0)
    memory.breaks = kept([*memory.breaks, Break(ended=now, seconds=seconds)], now)
    return rechoose(s, now)


def rechoose(s: EnvState, now: datetime) -> str | None:
    """Apply the rule to every break known; the event of a change, None if it holds."""
    memory, bounds = s.auto, s.spec.inactivity_auto
    if memory is None or bounds is None:
        return None
    choice = choose([*memory.breaks, *memory.others], bounds.min, bounds.max, now)
    ceiling = s.org_policy.max_inactivity if s.org_policy is not None else None
    capped = False
    if ceiling is not None and choice.seconds > ceiling:
        # An admin's policy bounds auto too: it learns within the policy's max-inactivity.
        choice, capped = dataclasses.replace(choice, seconds=ceiling), True
    old = s.spec.inactivity_duration
    if choice.seconds == old:
        return None
    s.spec.inactivity_duration = choice.seconds
    words = change_words(old, choice.seconds, choice)
    if capped:
        words += f"; capped by policy max-inactivity {format_duration(ceiling)}"
    return words


def take_owner_breaks(s: EnvState, read: OwnerBreaks | None, now: datetime, why: str = "") -> str:
    """Keep the owner's breaks the activity read (None: it could not); the event."""
    memory = s.auto
    assert memory is not None
    memory.others_read = True
    window = f"{WINDOW.days}d"
    if read is None:
        return (
            f"auto: the owner's other environments could not be read ({why}); "
            "learning from this one alone"
        )
    memory.others = kept(read.breaks, now)
    count = len(memory.others)
    return (
        f"auto: read {count} break{'s' if count != 1 else ''} in {window} from the owner's "
        f"{read.environments} other environment{'s' if read.environments != 1 else ''}"
    )


def created_words(spec: EnvSpec) -> str:
    """What the creation event adds for the adaptive rules (empty without them)."""
    words = ""
    if spec.inactivity_auto is not None:
        bounds = spec.inactivity_auto
        words += f", auto within {format_duration(bounds.min)}..{format_duration(bounds.max)}"
    if spec.idle_budget is not None:
        words += f", idle budget {format_usd(spec.idle_budget)}"
    if spec.price_per_hour is not None:
        words += f", price {format_usd(spec.price_per_hour)}/h"
    return words
