"""``keep_alive: group`` inside the workflow: ask the group before an idle end or its warning.

When the idle deadline (or its warning) is due, the ``group_presence`` activity answers
the group's latest presence from the visibility store; if it is later than this
environment's own, the idle clock moves to it (``devenv.models.group``), the deadline
with it, and the one timer sleeps to the new deadline. Asked once per deadline and phase
(warning, end), so a moved deadline is the only reason to ask again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError

from devenv.models import deadline
from devenv.models.group import GroupInput, GroupPresence, keeps, take
from devenv.models.names import Activity
from devenv.models.state import EnvState, Status
from devenv.workflows.display import clock, failure_message
from devenv.workflows.patches import GROUP_PATCH
from devenv.workflows.policies import GROUP_RETRY, GROUP_TIMEOUT


class GroupKeeper:
    """Asks the group, at most once per (deadline, phase)."""

    def __init__(
        self,
        state: EnvState,
        event: Callable[[str], None],
        cancelled: Callable[[], None],
    ) -> None:
        self._state = state
        self._event = event
        self._cancelled = cancelled
        """Called when the workflow is cancelled while it asks: it must stop, not leak."""
        self._asked: tuple[datetime, bool] | None = None

    def due(self, now: datetime) -> bool:
        """An idle deadline of a ``keep_alive: group`` environment, or its warning, is due
        and the group was not asked for it yet."""
        s = self._state
        if (
            not keeps(s)
            or s.status != Status.RUNNING
            or s.termination_reason is not None
            or s.deadline is None
            or s.deadline_reason not in deadline.IDLE_REASONS
        ):
            return False
        at_end = s.deadline <= now
        if not at_end and not deadline.warning_due(s, now):
            return False
        return self._asked != (s.deadline, at_end)

    async def ask(self, now: datetime) -> bool:
        """Ask the group; True when its presence moved the idle clock (and the deadline)."""
        s = self._state
        assert s.deadline is not None and s.spec.group is not None
        self._asked = (s.deadline, s.deadline <= now)
        if not workflow.patched(GROUP_PATCH):
            return False
        try:
            seen = await workflow.execute_activity(
                Activity.GROUP_PRESENCE,
                GroupInput(workflow_id=s.workflow_id, owner=s.spec.owner, group=s.spec.group),
                result_type=GroupPresence,
                start_to_close_timeout=GROUP_TIMEOUT,
                retry_policy=GROUP_RETRY,
                summary=f"group {s.spec.group}: latest presence",
            )
        except (ActivityError, asyncio.CancelledError) as err:
            if workflow.cancellation_reason() is not None:  # the ask stopped on a cancel
                self._cancelled()
                return False
            if not isinstance(err, ActivityError):
                raise
            self._event(
                f"group {s.spec.group}: presence could not be read ({failure_message(err)}); "
                "counting this environment's own"
            )
            return False
        if s.termination_reason is not None or s.status != Status.RUNNING:
            return False
        told = take(s, seen, workflow.now(), clock)
        if told is None:
            return False
        self._event(told)
        deadline.recompute(s)
        return True
