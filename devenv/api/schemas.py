"""What goes over the wire, besides ``EnvironmentStatus`` and ``EnvEvent`` (the SDK's own).

Request bodies forbid unknown keys, so that a typo is named instead of ignored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

DURATION_DOC = (
    "A duration as in the YAML: integer seconds, 90s, 30m, 2h, 1d, 1w, 1h30m (at most 4w), "
    'or "off" (also false, 0) to disable.'
)
ERROR_CLASS_HEADER = "X-Devenv-Error"
"""The devenv exception class behind an error answer, so that the remote SDK raises the
same class as the direct one; the body stays ``{"error": "one line"}``."""
UNANSWERED_HEADER = "X-Devenv-Unanswered"
"""Workflow ids (comma separated) of environments that did not answer a listing."""


class ErrorBody(BaseModel):
    """Every error: one line a person can act on, never a stack trace."""

    error: str = Field(description="What went wrong and what to do, in one line.")


class ThresholdChanges(BaseModel):
    """Body of ``PATCH /api/v1/environments/{name}``: at least one key; in force at once."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"inactivity_duration": "12h"},
                {"max_duration": "off"},
                {"extend": "2h"},
                {"shared_with": ["bob"]},
            ]
        },
    )

    inactivity_duration: JsonValue = Field(
        default=None, description=f"Idle threshold. {DURATION_DOC}"
    )
    max_duration: JsonValue = Field(
        default=None, description=f"Hard cap from start. {DURATION_DOC}"
    )
    extend: JsonValue = Field(
        default=None,
        description=f"Push the current deadline out by this much, once. {DURATION_DOC}",
    )
    stop_at: JsonValue = Field(
        default=None,
        description="A fixed end: ISO-8601 with an offset (2026-12-24T18:30:00+01:00), or off.",
    )

    shared_with: JsonValue = Field(
        default=None,
        description="The user names it is shared with, the whole list ([] shares it with "
        "nobody). Each must have a registered SSH key. Its owner or an admin only.",
    )

    def given(self) -> dict[str, Any]:
        """Only the keys the client sent (``null`` included: the SDK refuses it clearly)."""
        return {key: getattr(self, key) for key in sorted(self.model_fields_set)}


CONFIG_EXAMPLE: dict[str, Any] = {
    "type": "dev-environment",
    "name": "my-env",
    "backend": "local",
    "inactivity_duration": "2h",
    "max_duration": "1d",
}
CONFIG_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "The environment's configuration: the keys of its YAML file, as JSON "
        "(type, name, ide, backend, inactivity_duration, max_duration, "
        "min_connection_duration, resources and the backend's own section). "
        "Validated by the SDK, as `devenv start` validates the file."
    ),
    "additionalProperties": True,
}
