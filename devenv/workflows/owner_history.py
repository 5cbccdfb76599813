"""``inactivity_duration: auto`` reads its owner's breaks in their other environments once,
in the background: the ``owner_breaks`` activity lists and reads them (bounded), and the
answer (or its failure) becomes an event. It never holds up the state machine: a stop or
a deadline is handled while it runs; the rule starts at the bounds' max anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from temporalio import workflow
from temporalio.exceptions import ActivityError
from temporalio.workflow import ActivityCancellationType

from devenv.models.auto_threshold import WINDOW, OwnerBreaks, OwnerBreaksInput
from devenv.models.names import Activity
from devenv.models.state import EnvState
from devenv.workflows import adaptive
from devenv.workflows.display import failure_message
from devenv.workflows.patches import ADAPTIVE_PATCH
from devenv.workflows.policies import OWNER_BREAKS_RETRY, OWNER_BREAKS_TIMEOUT, WORK_HEARTBEAT


class OwnerHistory:
    """The one read of an auto environment's owner history; ``wake`` asks the workflow for
    another pass once it is in (the threshold may move at the next break)."""

    def __init__(
        self, state: EnvState, event: Callable[[str], None], wake: Callable[[], None]
    ) -> None:
        self._state = state
        self._event = event
        self._wake = wake
        self._read: asyncio.Task[None] | None = None
        self._stopped = False

    def start(self) -> None:
        """Begin the read, once per environment (not again after continue-as-new)."""
        s = self._state
        if s.auto is None or s.auto.others_read or self._read is not None:
            return
        if not workflow.patched(ADAPTIVE_PATCH):
            return
        self._read = asyncio.create_task(self._run())

    def stop(self) -> None:
        """The environment is ending: the history no longer matters; cancel the read."""
        self._stopped = True
        if self._read is not None and not self._read.done():
            self._read.cancel()

    async def finished(self) -> None:
        """Wait until a cancelled read has stopped, so the workflow never completes with
        the activity outstanding (its heartbeats bring the cancel within seconds)."""
        if self._read is None:
            return
        with contextlib.suppress(asyncio.CancelledError):
            await self._read

    async def _run(self) -> None:
        s = self._state
        now = workflow.now()
        asked = OwnerBreaksInput(
            workflow_id=s.workflow_id, owner=s.spec.owner, since=now - WINDOW, until=now
        )
        read: OwnerBreaks | None = None
        why = ""
        try:
            read = await workflow.execute_activity(
                Activity.OWNER_BREAKS,
                asked,
                result_type=OwnerBreaks,
                start_to_close_timeout=OWNER_BREAKS_TIMEOUT,
                retry_policy=OWNER_BREAKS_RETRY,
                heartbeat_timeout=WORK_HEARTBEAT,
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                summary="auto: read the owner's breaks",
            )
        except ActivityError as err:
            why = failure_message(err)
        if self._stopped:
            return  # cancelled by the end: nothing to learn, nothing to say
        self._event(adaptive.take_owner_breaks(s, read, workflow.now(), why))
        self._wake()
