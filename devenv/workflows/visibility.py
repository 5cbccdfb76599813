"""What the server shows of an environment without asking its worker: the Web UI's
current details and the search attributes that listing and filtering read."""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from devenv.models.state import EnvState
from devenv.models.status import MEMO_KEY, POLICY_CHANGES_KEY, EnvironmentStatus
from devenv.workflows.display import details
from devenv.workflows.patches import MEMO_PATCH

__all__ = ["MEMO_KEY", "WATCHER_MEMO", "memo_row", "publish", "start_attributes"]

STATUS_ATTR = SearchAttributeKey.for_keyword("DevEnvStatus")
BACKEND_ATTR = SearchAttributeKey.for_keyword("DevEnvBackend")
NAME_ATTR = SearchAttributeKey.for_keyword("DevEnvName")
DEADLINE_ATTR = SearchAttributeKey.for_datetime("DevEnvDeadline")
GROUP_ATTR = SearchAttributeKey.for_keyword("DevEnvGroup")
"""Set only on environments of a group (none before groups existed, so their histories
replay unchanged): a group's peers are one filtered listing (``activities.group``)."""
WATCHER_MEMO = "devenv-watcher"
"""Memo field naming the watch queue the environment's monitor runs on: a worker's
lapsed lease finds the environments to re-home by it (``devenv.activities.watching``)."""


def start_attributes(s: EnvState) -> TypedSearchAttributes | None:
    """What a start sets at once: the group, so that it is listed from the start and a
    server without ``DevEnvGroup`` refuses the start itself (nothing created) rather than
    the workflow's first upsert (a workflow task failing over and over)."""
    if s.spec.group is None:
        return None
    return TypedSearchAttributes([SearchAttributePair(GROUP_ATTR, s.spec.group)])


READER_COMPUTED = {"cost", "storage_cost", "suspension_saved"}
"""Fields of a row that depend on the clock: readers compute them, the memo never keeps them."""


def memo_row(s: EnvState) -> dict[str, Any]:
    """The row as the memo keeps it: no ``cost`` nor storage cost (readers compute it, see
    ``EnvironmentStatus.costed``) but what it is computed from, once the price is known.

    Without a price (histories recorded before prices existed) the row stays exactly
    what it was, so replaying such a history upserts no memo it lacks; likewise ``jobs``
    is kept only while some run (readers default it to 0).
    """
    row = EnvironmentStatus.published(s).model_dump(mode="json", exclude=READER_COMPUTED)
    if not row["jobs"]:
        del row["jobs"]
    if row["price_per_hour"] is None:
        for key in ("price_per_hour", "billed_from", "billed_until"):
            del row[key]
    if s.policy_changes:  # absent until a policy changed it: older memos stay as they were
        row[POLICY_CHANGES_KEY] = s.policy_changes
    return row


def publish(s: EnvState) -> None:
    """Current details always; search attributes and the memo only when a value changed."""
    workflow.set_current_details(details(s))
    if not s.tuning.search_attributes:
        return
    if workflow.patched(MEMO_PATCH):
        row = memo_row(s)
        if workflow.memo_value(MEMO_KEY, None, type_hint=dict) != row:
            workflow.upsert_memo({MEMO_KEY: row})
    current = workflow.info().typed_search_attributes
    updates: list[SearchAttributeUpdate[Any]] = []
    for key, value in (
        (STATUS_ATTR, s.status.value),
        (BACKEND_ATTR, s.spec.backend),
        (NAME_ATTR, s.spec.name),
    ):
        if current.get(key) != value:
            updates.append(key.value_set(value))
    if s.spec.group is not None and current.get(GROUP_ATTR) != s.spec.group:
        updates.append(GROUP_ATTR.value_set(s.spec.group))
    if current.get(DEADLINE_ATTR) != s.deadline:
        updates.append(
            DEADLINE_ATTR.value_unset()
            if s.deadline is None
            else DEADLINE_ATTR.value_set(s.deadline)
        )
    if updates:
        workflow.upsert_search_attributes(updates)
