"""What the SDK returns (defined with the workflow, which publishes it in its memo)."""

from __future__ import annotations

from devenv.workflows.status import (
    STATUS_LIST,
    EnvironmentList,
    EnvironmentPage,
    EnvironmentStatus,
    statuses_json,
)

__all__ = [
    "STATUS_LIST",
    "EnvironmentList",
    "EnvironmentPage",
    "EnvironmentStatus",
    "statuses_json",
]
