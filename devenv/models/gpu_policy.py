"""``utilization_policy``: GPUs that sit idle end the environment, even while connected.

Pure functions of the state. The instance samples every GPU (``nvidia-smi``) and reports
since when every sample was under the minimum (``gpu_quiet_since``; None as soon as one
GPU is at or above it, or when a sample fails: a GPU that cannot be read ends nothing).
The environment ends ``time_window`` after that moment, warned first. A probe before
the end can only keep it: a busy GPU now voids the deadline; a fresh sampler's "quiet
since now" never moves it later.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from devenv.models.durations import format_duration
from devenv.models.state import EnvState, PresenceReport, Status, TerminationReason


def note(s: EnvState, report: PresenceReport, now: datetime, probe: bool = False) -> bool:
    """Take in a report's GPU state; whether the rule's deadline moved."""
    if s.spec.utilization_policy is None:
        return False
    before = s.gpu_quiet_since
    seen = report.gpu_quiet_since
    if seen is None:
        s.gpu_quiet_since = None
    elif not probe:
        seen = seen.replace(tzinfo=UTC) if seen.tzinfo is None else seen.astimezone(UTC)
        s.gpu_quiet_since = min(seen, now)
    return s.gpu_quiet_since != before


def end(s: EnvState) -> tuple[datetime, TerminationReason] | None:
    """When the GPUs will have been under the minimum for the whole window, or None."""
    policy = s.spec.utilization_policy
    if policy is None or s.gpu_quiet_since is None or s.status != Status.RUNNING:
        return None
    return (
        s.gpu_quiet_since + timedelta(seconds=policy.time_window),
        TerminationReason.GPU_UNDERUTILIZED,
    )


def words(s: EnvState) -> str:
    """The rule in a few words (warnings, ps -v)."""
    policy = s.spec.utilization_policy
    assert policy is not None
    return (
        f"every GPU under {policy.min_gpu_utilization}% for "
        f"{format_duration(policy.time_window)} (utilization_policy)"
    )


def why(s: EnvState) -> str | None:
    """For ``ps -v``: what the GPUs did, and what the rule makes of it."""
    policy = s.spec.utilization_policy
    if policy is None or s.status != Status.RUNNING:
        return None
    rule = (
        f"utilization_policy: GPUs under {policy.min_gpu_utilization}% for "
        f"{format_duration(policy.time_window)} end it"
    )
    if s.gpu_quiet_since is None:
        return f"{rule}; a GPU was in use at the last sample (or none was sampled yet)"
    since = s.gpu_quiet_since.astimezone(UTC).strftime("%H:%M:%SZ")
    return f"{rule}; every GPU under {policy.min_gpu_utilization}% since {since}"
