"""The admins' policies from the SDK: read them, change them, and bind a start to them.

Reading takes the policy workflow's memo (``describe``: no worker needed, so a start
pays one RPC); a change is its ``set_policy`` update, which starts the workflow first
if it is not running (seeded with what its last run held).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from devenv.client.durations import check_duration
from devenv.client.lookup import QUERY_TIMEOUT, UPDATE_TIMEOUT, require_worker
from devenv.errors import InvalidValueError, NotAnsweringError
from devenv.models.names import SHARED_TASK_QUEUE, Activity, PolicyUpdate, Update
from devenv.models.policy import (
    FLAGS,
    FanOutProgress,
    PolicyChange,
    PolicyRefusal,
    PolicySet,
    PolicyStatus,
    Requested,
    check_thresholds,
    start_defaults,
)
from devenv.models.schedule import parse_clock, parse_days, zone
from devenv.models.state import EnvSpec, EnvState
from devenv.workflows.policy import (
    POLICY_MEMO,
    POLICY_WORKFLOW_ID,
    POLICY_WORKFLOW_TYPE,
)

log = logging.getLogger(__name__)

CHECKED = ("inactivity_duration", "max_duration", "delete_after")
"""The spec's keys a policy bounds (``delete_after`` once the spec has it)."""


def usd_amount(flag: str, value: object) -> float | None:
    """An amount in USD as an admin writes it: ``50``, ``$50``, ``12.50``; ``off``
    removes the key. InvalidValueError naming the key otherwise."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    accepted = "accepted: an amount in USD above 0 such as 50, $50 or 12.50, or off"
    if isinstance(value, bool):
        raise InvalidValueError(f"{flag}: {value!r} is not an amount; {accepted}")
    text = str(value).strip().removeprefix("$").strip()
    try:
        amount = float(text)
    except ValueError:
        raise InvalidValueError(
            f"{flag}: {str(value)[:40]!r} is not an amount; {accepted}"
        ) from None
    if not math.isfinite(amount) or amount <= 0 or amount > MAX_USD:
        raise InvalidValueError(f"{flag}: {str(value)[:40]!r} is out of range; {accepted}")
    return round(amount, 2)


MAX_USD = 1_000_000


def policy_keys(values: Mapping[str, Any]) -> dict[str, int | bool | float | str | None]:
    """``set_policy``'s keywords checked: durations as in the YAML (``"8h"``, ``off``
    to unset), ``no_off`` a bool (False unsets); InvalidValueError naming the key."""
    keys: dict[str, int | bool | float | str | None] = {}
    for key, value in values.items():
        if key not in FLAGS:
            raise InvalidValueError(f"{key}: not a policy key; accepted: {', '.join(FLAGS)}")
        if key in SCHEDULE:
            keys[key] = _schedule_key(key, value)
        elif key == "idle_budget_weekly":
            keys[key] = usd_amount(FLAGS[key], value)
        elif key == "no_off":
            if not isinstance(value, bool):
                raise InvalidValueError(f"no_off: {value!r} is not true or false")
            keys[key] = value
        else:
            keys[key] = check_duration(FLAGS[key], value)
    return keys


SCHEDULE = ("stop_at_daily", "tz", "days")


def _schedule_key(key: str, value: object) -> str | None:
    """A daily stop's time, zone or days, checked here (the workflow reads no time zone);
    ``off`` removes it."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "off"):
        return None
    if not isinstance(value, str):
        raise InvalidValueError(f"{FLAGS[key]}: {value!r} is not text")
    try:
        if key == "stop_at_daily":
            parse_clock(value)
        elif key == "tz":
            zone(value)
        else:
            parse_days(value)
    except ValueError as problem:
        raise InvalidValueError(f"{FLAGS[key]}: {problem}") from None
    return value.strip()


async def read_policies(temporal: Client) -> PolicyStatus:
    """The policies as the workflow last published them; none yet: empty."""
    handle = temporal.get_workflow_handle(POLICY_WORKFLOW_ID)
    try:
        description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND and "amespace" not in err.message:
            return PolicyStatus()
        raise
    raw = await description.memo_value(POLICY_MEMO, None, type_hint=dict)
    if raw is None:
        return PolicyStatus()
    status = PolicyStatus.model_validate(raw)
    status.sending = await sending(temporal, description, status)
    return status


async def sending(
    temporal: Client, description: WorkflowExecutionDescription, status: PolicyStatus
) -> FanOutProgress | None:
    """How far the latest version's fan-out got, from its pending activity's last
    heartbeat; None once it reached every environment (or if the details are not ours)."""
    version = status.policies.version
    if version == 0 or (status.reached is not None and status.reached.version >= version):
        return None
    for pending in description.raw_description.pending_activities:
        details = pending.heartbeat_details.payloads
        if pending.activity_type.name != Activity.FAN_OUT_POLICY or not details:
            continue
        try:
            values = await temporal.data_converter.decode(details)
            progress = FanOutProgress.model_validate(values[0])
        except (ValueError, TypeError, IndexError):  # an older worker's plain heartbeat
            continue
        if progress.version == version:
            return progress
    return None


async def change_policies(temporal: Client, change: PolicyChange) -> PolicyStatus:
    """Apply ``change`` (InvalidValueError with the refusal's line if refused)."""
    seed = await read_policies(temporal)
    try:
        change.applied_to(seed.policies)  # refused here, nothing is started
    except PolicyRefusal as refusal:
        raise InvalidValueError(str(refusal)) from None
    handle = await temporal.start_workflow(
        POLICY_WORKFLOW_TYPE,
        seed,
        id=POLICY_WORKFLOW_ID,
        task_queue=SHARED_TASK_QUEUE,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        result_type=type(None),
    )
    await require_worker(temporal, handle)
    try:
        answer = await asyncio.wait_for(
            handle.execute_update(PolicyUpdate.SET_POLICY, change, result_type=PolicyStatus),
            UPDATE_TIMEOUT.total_seconds(),
        )
    except TimeoutError:
        raise NotAnsweringError(
            f"{POLICY_WORKFLOW_ID}: no answer within {UPDATE_TIMEOUT.seconds}s; is a devenv "
            "worker running? (`devenv server`); the change may still apply later: check "
            "with `devenv policy show`"
        ) from None
    except WorkflowUpdateFailedError as failure:
        reason = getattr(failure.cause, "message", None) or str(failure.cause)
        raise InvalidValueError(f"{reason}; nothing changed") from None
    assert isinstance(answer, PolicyStatus)
    return answer


def bind_start(policies: PolicySet, spec: EnvSpec, given: Mapping[str, int | None]) -> EnvState:
    """The first state of an environment started under ``policies``: what it gave checked
    against its owner's bounds (InvalidValueError, one line naming the policy and the
    bound), what it did not give taken from the policy's defaults."""
    if policies.version == 0:
        return EnvState(spec=spec)
    policy = policies.effective(spec.owner, datetime.now(UTC))
    bounds = spec.inactivity_auto
    if bounds is not None:
        # ``auto`` is not a threshold the policy refuses: the policy bounds it on top,
        # so it starts (and learns) at most at the policy's max-inactivity.
        if policy.max_inactivity is not None and bounds.max > policy.max_inactivity:
            top = policy.max_inactivity
            spec.inactivity_auto = bounds.model_copy(
                update={"max": top, "min": min(bounds.min, top)}
            )
            spec.inactivity_duration = top
        given = {**given, "inactivity_duration": spec.inactivity_duration}
    try:
        check_thresholds(policy, given)
    except PolicyRefusal as refusal:
        raise InvalidValueError(str(refusal)) from None
    for key, value in start_defaults(policy, given).items():
        if key in EnvSpec.model_fields:
            setattr(spec, key, value)
    requested = Requested(
        inactivity_duration=spec.inactivity_duration, max_duration=spec.max_duration
    )
    return EnvState(spec=spec, org_policy=policy, requested=requested, stop_at=policy.next_stop)


CATCH_UP_TIMEOUT = 30.0
"""How long a start waits for its new environment to take a version it missed; past
that the start goes on (the environment is bound by the version it read) with a warning."""


async def catch_up(
    temporal: Client, handle: WorkflowHandle[Any, Any], read: int, owner: str | None
) -> bool:
    """Close the race between a start and a policy change: the start was bound by version
    ``read``, and a version stored since may have been fanned out before this environment
    was listed. Send it the newest effective policy itself (its validator refuses a version
    it already has, so meeting the fan-out there records nothing); True if it took one.
    It never fails the start: the environment exists by now, so a failure is a warning."""
    try:
        status = await read_policies(temporal)
        if status.policies.version <= read:
            return False
        policy = status.policies.effective(owner, datetime.now(UTC))
        await asyncio.wait_for(
            handle.execute_update(Update.APPLY_ORG_POLICY, policy, result_type=bool),
            CATCH_UP_TIMEOUT,
        )
    except WorkflowUpdateFailedError:
        return False  # the fan-out got there first
    except (TimeoutError, RPCError, ValueError) as problem:
        log.warning(
            "%s: the policy could not be checked again after the start (%s); it is bound "
            "by version %d until the next change",
            handle.id,
            problem,
            read,
        )
        return False
    return True


def given_thresholds(parsed: Any) -> dict[str, int | None]:
    """The thresholds a configuration sets explicitly (seconds, None: off)."""
    fields_set: set[str] = getattr(parsed, "model_fields_set", set())
    return {key: getattr(parsed, key) for key in CHECKED if key in fields_set}
