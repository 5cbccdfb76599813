"""What a slow provision is doing now, for whoever waits on it (``devenv start``).

A backend calls :func:`report` at each slow step ("waiting for SSH at ..."); the
activity's heartbeats carry the latest step, and ``wait_ready`` shows it beside the
elapsed time. Outside an activity (tests calling a backend directly) it does nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from temporalio import activity

_STEPS: ContextVar[list[str] | None] = ContextVar("devenv_progress_steps", default=None)


def report(step: str) -> None:
    """Record ``step`` as what this activity is doing now, and heartbeat it at once."""
    steps = _STEPS.get()
    if steps is None:
        return
    steps[:] = [step]
    if activity.in_activity():
        activity.heartbeat(step)


def latest() -> str | None:
    steps = _STEPS.get()
    return steps[0] if steps else None


@contextlib.contextmanager
def tracking() -> Iterator[None]:
    """Steps reported inside are visible to tasks created inside (the heartbeat loop)."""
    token = _STEPS.set([])
    try:
        yield
    finally:
        _STEPS.reset(token)
