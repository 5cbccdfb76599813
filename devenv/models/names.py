"""The Temporal names of devenv's activities, updates, queries and signals: one place.

Why a module of names rather than only typed references (``DevEnvironmentWorkflow.change``):
the workflow must not import the activities (their I/O code), and ``devenv ps`` /
``devenv signal`` must not import ``temporalio.workflow`` nor the workflow module
(tests/unit/test_cli_imports.py). The handler decorators, the activities' ``defn``, the
worker and every caller that cannot hold a typed reference use these members, so a
rename is one edit and a typo is an ``AttributeError`` at import, not a silent
"unknown update" at run time.

The values are wire names: recorded histories (tests/histories) name them, so they never
change; a member's Python name may say better what it is (``RECORD_PRESENCE`` is the
``record_activity`` signal, named before the word "presence"). Imports only the stdlib.
"""

from __future__ import annotations

from enum import StrEnum

SHARED_TASK_QUEUE = "devenv"
"""The task queue of the shared worker (workflows and activities that run anywhere)."""


class Activity(StrEnum):
    """Activities the workflows schedule (registered by ``devenv.activities``)."""

    PROVISION = "provision"
    TERMINATE = "terminate"
    NOTIFY = "notify"
    APPLY_POLICY = "apply_policy"
    APPLY_LOGIN = "apply_login"
    TELL_TERMINALS = "tell_terminals"
    MONITOR = "monitor"
    PROBE = "probe"
    WATCH_QUEUE = "watch_queue"
    HOLD_LEASE = "hold_lease"
    REHOME = "rehome"
    SUSPEND = "suspend"
    RESUME = "resume"
    OWNER_BREAKS = "owner_breaks"
    FAN_OUT_POLICY = "fan_out_policy"
    GROUP_PRESENCE = "group_presence"
    CHECK_IDLE_BUDGETS = "check_idle_budgets"


class Update(StrEnum):
    """Updates of ``DevEnvironmentWorkflow``."""

    CHANGE = "change"
    SET_PURGE_WORKSPACE = "set_purge_workspace"
    REQUEST_STOP = "request_stop"
    REQUEST_SUSPEND = "request_suspend"
    REQUEST_RESUME = "request_resume"
    APPLY_ORG_POLICY = "apply_org_policy"
    # Single-field forms from before ``change`` (kept for older clients and histories).
    SET_INACTIVITY = "set_inactivity"
    SET_MAX_DURATION = "set_max_duration"
    EXTEND = "extend"
    SET_STOP_AT = "set_stop_at"


class Query(StrEnum):
    """Queries of ``DevEnvironmentWorkflow``."""

    STATUS = "status"


class Signal(StrEnum):
    """Signals of ``DevEnvironmentWorkflow``."""

    RECORD_PRESENCE = "record_activity"
    WATCHER_GONE = "watcher_gone"
    # Fire-and-forget forms from before updates (kept for older clients and histories).
    UPDATE_INACTIVITY = "update_inactivity"
    UPDATE_MAX_DURATION = "update_max_duration"
    STOP = "stop"


class PolicyUpdate(StrEnum):
    """Updates of ``PolicyWorkflow`` (the singleton holding the admins' policies)."""

    SET_POLICY = "set_policy"


class PolicyQuery(StrEnum):
    """Queries of ``PolicyWorkflow``."""

    POLICY = "policy"
