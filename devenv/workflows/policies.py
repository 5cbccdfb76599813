"""How long each activity may take and how it is retried: the workflow's policies.

Changing a value changes only new commands; recorded histories keep replaying.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from devenv.workflows.messages import INSTANCE_LOST, PROVISIONING_ERROR

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
MONITOR_HEARTBEAT = timedelta(seconds=30)
MONITOR_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=[INSTANCE_LOST],
)
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

NOTIFY_TIMEOUT = timedelta(seconds=20)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
"""A webhook that fails is retried with backoff a bounded number of times; the
termination never waits for it."""
