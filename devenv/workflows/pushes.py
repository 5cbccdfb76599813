"""What the workflow tells the outside in the background: the instance's failsafe policy
and login banner, warnings written into open terminals, and the webhook's notices.

None of it may hold up the state machine: each runs as a workflow task of its own
(a few tries on the instance's queue), and what could not be told becomes an event.
Deterministic workflow code, like ``monitoring.py``: the activities are named by
``devenv.models.names``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from devenv.models.deadline import plural
from devenv.models.messages import ApplyLoginInput, ApplyPolicyInput, Notice, TellInput
from devenv.models.names import Activity
from devenv.models.sharing import shared_key_line
from devenv.models.state import (
    EnvState,
    FailsafePolicy,
    InstanceInfo,
    LoginSettings,
    Status,
    TerminationReason,
)
from devenv.workflows.display import (
    extend_command,
    failure_message,
    login_banner,
    terminal_warning,
)
from devenv.workflows.patches import FAILSAFE_PATCH
from devenv.workflows.policies import (
    APPLY_LOGIN_RETRY,
    APPLY_POLICY_RETRY,
    APPLY_POLICY_TIMEOUT,
    NOTIFY_RETRY,
    NOTIFY_TIMEOUT,
)


class InstancePushes:
    """The background tells of one environment; ``wake`` asks the workflow for another
    pass (a change that arrived while a push ran is pushed then)."""

    def __init__(
        self, state: EnvState, event: Callable[[str], None], wake: Callable[[], None]
    ) -> None:
        self._state = state
        self._event = event
        self._wake = wake
        self._policy_push: asyncio.Task[None] | None = None
        self._login_push: asyncio.Task[None] | None = None
        self._notifications: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ the failsafe

    def failsafe_policy(self) -> None:
        """Tell a machine with a failsafe the thresholds now in force, in the background.

        The machine enforces them itself only when no control plane has read it for a
        long while; it must never act on a threshold the user has since raised.
        """
        s = self._state
        if (
            s.instance is None
            or not s.instance.failsafe
            or s.ready_at is None
            or s.status != Status.RUNNING
            or (self._policy_push is not None and not self._policy_push.done())
        ):
            return
        policy = FailsafePolicy.of(
            s.spec.inactivity_duration,
            s.spec.max_duration,
            # max_duration counts running time only: its start moves by the time suspended.
            s.ready_at + timedelta(seconds=s.suspended_seconds),
            on_idle=s.spec.on_idle,
        )
        if policy == s.failsafe_policy or not workflow.patched(FAILSAFE_PATCH):
            return
        self._policy_push = asyncio.create_task(self._apply_policy(s.instance, policy))

    async def _apply_policy(self, instance: InstanceInfo, policy: FailsafePolicy) -> None:
        s = self._state
        request = ApplyPolicyInput(workflow_id=s.workflow_id, instance=instance, policy=policy)
        summary = "tell the machine's failsafe the thresholds"
        what = "the machine's failsafe"
        if await self._push(instance, Activity.APPLY_POLICY, request, summary, what) is not None:
            return
        s.failsafe_policy = policy
        self._wake()  # a change that arrived meanwhile is pushed on the next pass

    # ------------------------------------------------------------ the login banner

    def login(self) -> None:
        """Keep the instance's login banner current (its rules and fixed end), in the
        background; only instances that show one are asked."""
        s = self._state
        if (
            s.instance is None
            or not s.instance.login_messages
            or s.ready_at is None
            or s.status != Status.RUNNING
            or (self._login_push is not None and not self._login_push.done())
        ):
            return
        login = self._wanted_login()
        if login == s.login:
            return
        self._login_push = asyncio.create_task(self._apply_login(s.instance, login))

    async def _apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        s = self._state
        request = ApplyLoginInput(workflow_id=s.workflow_id, instance=instance, login=login)
        failed = await self._push(
            instance,
            Activity.APPLY_LOGIN,
            request,
            "update the login banner",
            "the login banner",
            retry=APPLY_LOGIN_RETRY,
        )
        s.login = login  # also when it failed: not retried for this banner, the next change is
        s.login_error = failed
        if failed is None and login != self._wanted_login():
            self._wake()  # a change arrived meanwhile: pushed on the next pass

    def _wanted_login(self) -> LoginSettings:
        s = self._state
        return LoginSettings(
            banner=login_banner(s), shared_keys=[shared_key_line(u) for u in s.shared_with]
        )

    async def _push(
        self,
        instance: InstanceInfo,
        activity: Activity,
        request: object,
        summary: str,
        what: str,
        retry: RetryPolicy = APPLY_POLICY_RETRY,
    ) -> str | None:
        """Tell the instance something in the background (a few tries on its queue); an
        event says so when it could not be told. None once told, else why not."""
        try:
            await workflow.execute_activity(
                activity,
                request,
                task_queue=instance.task_queue,
                start_to_close_timeout=APPLY_POLICY_TIMEOUT,
                retry_policy=retry,
                summary=summary,
            )
        except ActivityError as err:
            why = failure_message(err)
            self._event(f"could not update {what} ({why})")
            return why
        return None

    # ------------------------------------------------------------ warnings and notices

    def warn(self, message: str, now: datetime) -> None:
        """A coming termination (``message``, its event): to the webhook, if set, and
        into the open terminals of an instance that shows login messages, unless the
        end is the idle one (nobody's terminal is open then, or it would not come)."""
        s = self._state
        assert s.deadline is not None and s.deadline_reason is not None
        if s.spec.notify_webhook is not None:
            notice = Notice(
                workflow_id=s.workflow_id,
                webhook=s.spec.notify_webhook,
                environment=s.spec.name,
                owner=s.spec.owner,
                reason=s.deadline_reason.value,
                deadline=s.deadline,
                extend_command=extend_command(s),
                text=message,
            )
            self._notifications.add(asyncio.create_task(self._notify(notice)))
        if (
            s.instance is not None
            and s.instance.login_messages
            and s.connections > 0
            and s.deadline_reason != TerminationReason.INACTIVITY_DURATION_EXCEEDED
        ):
            tell = TellInput(
                workflow_id=s.workflow_id,
                instance=s.instance,
                text=terminal_warning(s, now),
            )
            self._notifications.add(asyncio.create_task(self._tell_terminals(tell)))

    def tell_members(self, messages: list[str], by: str | None) -> None:
        """A change on a shared environment reaches its webhook too, with who made it."""
        if self._state.shared_with:
            self._tell_webhook(messages, "changed", by)

    def tell_policy(self, messages: list[str]) -> None:
        """An admin's idle budget tightened the thresholds: the webhook hears it too."""
        self._tell_webhook(messages, "policy", "policy")

    def _tell_webhook(self, messages: list[str], reason: str, by: str | None) -> None:
        """A change, in one notice to the environment's webhook (if set), in the background."""
        s = self._state
        if not messages or s.spec.notify_webhook is None:
            return
        notice = Notice(
            workflow_id=s.workflow_id,
            webhook=s.spec.notify_webhook,
            environment=s.spec.name,
            owner=s.spec.owner,
            reason=reason,
            deadline=s.deadline,
            extend_command=extend_command(s),
            text=f"{s.spec.name}: " + "; ".join(messages),
            by=by,
        )
        self._notifications.add(asyncio.create_task(self._notify(notice)))

    async def _tell_terminals(self, tell: TellInput) -> None:
        """Write the warning into every terminal open on the instance, once (like wall):
        someone working there when a fixed end comes must not learn it from a dead shell."""
        try:
            told = await workflow.execute_activity(
                Activity.TELL_TERMINALS,
                tell,
                result_type=int,
                task_queue=tell.instance.task_queue,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary="warning: write it into the open terminals",
            )
        except ActivityError as err:
            self._event(f"warning not written to the terminals ({failure_message(err)})")
            return
        self._event(f"warning written to {plural(told, 'open terminal')}")

    async def _notify(self, notice: Notice) -> None:
        """POST the warning (retried a few times); the termination never waits for it."""
        try:
            await workflow.execute_activity(
                Activity.NOTIFY,
                notice,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary="warning: notify the webhook",
            )
        except ActivityError as err:
            self._event(f"warning not delivered to the webhook ({failure_message(err)})")
