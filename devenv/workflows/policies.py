"""How long each activity may take and how it is retried: the workflow's policies.

Changing a value changes only new commands; recorded histories keep replaying.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from devenv.models.messages import INSTANCE_LOST, NOT_SUSPENDABLE, PROVISIONING_ERROR

PROVISION_TIMEOUT = timedelta(minutes=10)
PROVISION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=3,
    non_retryable_error_types=[PROVISIONING_ERROR],
)
WORK_HEARTBEAT = timedelta(seconds=30)
"""Provision and terminate heartbeat every 5 s: an attempt lost with its worker is retried
after 30 s on any host, not after the 10 / 5 minute start-to-close timeout."""
MONITOR_TIMEOUT = timedelta(days=30)
HEARTBEAT_THROTTLE = timedelta(seconds=120)
"""The workers' longest wait between two heartbeat RPCs of one activity (the SDK sends
at most one per ``min(0.8 x heartbeat timeout, this)``): the monitor's 150 s timeout."""
MONITOR_HEARTBEAT = timedelta(seconds=150)
"""The heartbeat timeout of a monitor on its instance's own queue: a local instance's
(only its host can reach it), or any instance's where the worker runs no watch queue.
Monitors on a watch queue send no heartbeats (their process's lease stands for them,
``devenv.workflows.lease``). Here the workers send one every 120 s
(``HEARTBEAT_THROTTLE``), one RPC and two SQLite writes each. A monitor lost with its
worker is retried elsewhere after 150 s (a worker back on the same host fails its lost
attempts at once, see ``recovery``), and a cancelled monitor may run on until its next
heartbeat (the workflow does not wait for it). Deadlines do not depend on it: the timer
fires and the probe asks the instance. Under the 300 s silence bound less one 60 s
keepalive, so a restarted monitor reports before users count as gone."""
MONITOR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=[INSTANCE_LOST],
)
WATCH_QUEUE_TIMEOUT = timedelta(seconds=10)
WATCH_QUEUE_RETRY = RetryPolicy(maximum_attempts=1)
"""Asking the worker for its watch queue reads a variable: a failure (a worker without
the activity) is not retried, the monitor runs on the shared queue instead."""
MONITOR_HEALTHY_RUN = timedelta(minutes=1)
"""A monitor that ended after running this long is restarted at once, a quicker one with backoff."""
MONITOR_MAX_RESTART_DELAY = 60
TERMINATE_TIMEOUT = timedelta(minutes=5)
TERMINATE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
)
"""Retried forever: an instance that cannot be deleted must not be forgotten."""
LEASE_HEARTBEAT = timedelta(seconds=60)
"""How long a worker's lease survives without its heartbeat: the time after a worker's
death (kill -9, power loss) before its monitors start again elsewhere. The lease is one
activity per worker process, so it costs nothing; the SDK sends its heartbeat every 48 s."""
LEASE_TERM = timedelta(hours=12)
"""A lease activity returns after this and its workflow continues as new (short history)."""
LEASE_RETRY = RetryPolicy(maximum_attempts=1)
"""A lease that lapsed is never retried: its workflow re-homes the worker's monitors."""
REHOME_TIMEOUT = timedelta(minutes=30)
REHOME_RETRY = TERMINATE_RETRY
"""Retried until done: an environment whose monitor is not re-homed sees no presence."""
PROBE_TIMEOUT = timedelta(seconds=15)
PROBE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_attempts=3,
    non_retryable_error_types=[INSTANCE_LOST],
)
MIN_TIMER = timedelta(milliseconds=1)

APPLY_POLICY_TIMEOUT = timedelta(seconds=60)
APPLY_POLICY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
)
"""Telling a machine's failsafe a new threshold: a few tries, then an event says it failed
(the failsafe only acts when the control plane is gone, so this is never urgent)."""

APPLY_LOGIN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=4),
    maximum_attempts=4,
)
"""Telling an instance its login banner and members' keys: ``devenv share`` waits for the
answer (``client.keys_in_place.KEYS_TIMEOUT``), so every try is over well before it gives
up (1 + 2 + 4 s of backoff) and a host that cannot be told is said, not timed out."""

NOTIFY_TIMEOUT = timedelta(seconds=20)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
"""A webhook that fails is retried with backoff a bounded number of times; the
termination never waits for it."""

OWNER_BREAKS_TIMEOUT = timedelta(minutes=2)
OWNER_BREAKS_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_attempts=3,
)
"""Reading the owner's other environments for ``auto``: a few tries, then the environment
learns from its own breaks alone (it starts at the bounds' max, so nothing is risked)."""
SUSPEND_TIMEOUT = timedelta(minutes=10)
SUSPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
    non_retryable_error_types=[INSTANCE_LOST, NOT_SUSPENDABLE],
)
"""Suspend and resume are idempotent and retried (a worker killed mid-way is retried after
the heartbeat timeout); bounded, so that a backend that keeps failing leaves the
environment as it was (running, or suspended) with an event, never stuck in between."""
RESUME_TIMEOUT = SUSPEND_TIMEOUT
RESUME_RETRY = SUSPEND_RETRY

GROUP_TIMEOUT = timedelta(seconds=30)
GROUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_attempts=3,
)
"""Reading the group's presence (one filtered listing): a few tries, then the environment
counts its own presence alone, as without a group (said in an event)."""
