"""Every ``workflow.patched`` id of devenv's workflows, with the change it guards.

A patch id is recorded in the histories of the workflows that took the new path, so
an id never changes and never goes away while such a history may replay
(tests/histories). One place, so the next change of workflow behaviour sees which
exist and why, and picks a new id. Imports only the stdlib.
"""

from __future__ import annotations

PROBE_PATCH = "probe-before-idle-termination"
"""Histories recorded before the probe existed replay without it (workflow.patched)."""
LOCAL_PROBE_PATCH = "probe-as-local-activity"
"""Where any worker of the shared queue (the workflow's own) can reach the instance (ssh
and aws without a host queue), the probe runs inside the workflow task the deadline's
timer woke: a workflow task and an activity fewer per termination, about a third of the
server's writes (benchmarks/README.md). A local instance is probed on its host's queue."""
WARN_PATCH = "warn-before-termination"
"""Histories recorded before warnings replay without their timer (workflow.patched)."""
EXTEND_CAP_PATCH = "extend-capped"
"""An extension made before the cap existed keeps its floor alone (deadline.py)."""
STRICT_SIGNALS_PATCH = "strict-signal-inputs"
"""A signal whose input the old converter coerced (``true`` as 1 s) is ignored now; a
history recorded before applies it as it did (asked only for such an input)."""
LATE_LOGIN_PATCH = "late-login-waits-until-counted"
"""A connection the probe finds inside min_connection_duration puts the idle deadline
off until it would count, once; histories from before restarted the idle clock."""
FAILSAFE_PATCH = "failsafe-policy"
"""Instances with a failsafe are told each threshold change (asked only for those)."""
WATCH_PATCH = "monitor-on-watch-queue"
"""Histories recorded before watch queues replay their monitors on the shared queue."""
MEMO_PATCH = "status-in-memo"
"""Histories recorded before the memo existed replay without it (workflow.patched)."""
ADAPTIVE_PATCH = "adaptive-idleness"
"""``inactivity_duration: auto`` reads the owner's breaks in their other environments
(the ``owner_breaks`` activity) once. Asked only for auto environments; their threshold
changes and ``idle_budget``'s deadline are pure functions of spec fields that no history
recorded before them carries, so those replay unchanged without a patch."""
SUSPEND_PATCH = "suspend-and-resume"
"""An idle environment with ``on_idle: suspend`` (or one asked to) is suspended, kept
``delete_after``, and resumed on request; asked only on that path, so histories recorded
before suspension replay unchanged."""
CONNECTED_IDLE_PATCH = "connected-idle-probe"
"""A connected_idle deadline is confirmed by a probe (fresh terminal input and CPU) before
the environment ends; asked only by environments with ``connected_idle`` set."""
GPU_POLICY_PATCH = "gpu-utilization-probe"
"""A utilization_policy deadline is confirmed by a probe (a GPU busy now keeps it);
asked only by environments with ``utilization_policy`` set."""
ORG_POLICY_PATCH = "org-policy"
"""An admin's policy applied to a running environment (update ``apply_org_policy``)."""
GROUP_PATCH = "group-keep-alive"
"""``keep_alive: group`` asks the group's latest presence (``group_presence``) when the
idle deadline or its warning is due. Asked only for such environments, which no history
recorded before groups carries."""
IDLE_BUDGET_PATCH = "idle-budget"
"""The policy workflow checks the users' idle spend of the week (a timer, then activity
``check_idle_budgets``) while an idle budget is set; asked only then, so histories
recorded before budgets replay unchanged."""
STORAGE_COST_PATCH = "suspended-storage-cost"
"""A suspended environment's deletion warning says what its storage costs against running
and what suspension saved; histories recorded before warn without it (asked only there)."""
SUSPEND_WARNING_PATCH = "idle-suspend-warning-words"
"""The warning before an idle deadline under ``on_idle: suspend`` says it is suspended;
histories recorded before said it terminates (asked only on that path)."""
FREE_SUSPENSION_PATCH = "free-machine-suspension-words"
"""A suspended machine that costs nothing (local: $0/h) is warned without "no storage
price known vs $0.00/h running; suspension saved $0.00"; asked only for such a machine,
so histories recorded before keep those words."""
