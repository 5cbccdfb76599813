"""The HTTP API's wire: every path, query parameter, header and body key, in one place.

Both sides import it: the API (``devenv.api``) serves these names, and the SDK's HTTP
transport (``devenv.client.transports.http``) sends them, so the two cannot drift.
Only names and the bodies' models live here; what each route does is the API's.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from devenv.errors import (
    ChangeRejectedError,
    ConfigError,
    DevenvError,
    EnvironmentEndedError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAnsweringError,
    NoWorkerError,
    ProvisioningFailedError,
    ServerNotAnsweringError,
    ServerRefusedError,
    ServerUnreachableError,
    UserError,
)

# ---------------------------------------------------------------------- paths

PREFIX = "/api/v1"
"""Every route's prefix; the OpenAPI document is at ``/openapi.json``, outside it."""
ENVIRONMENTS = "/environments"
"""``GET``: the listing; ``POST``: start one."""
ENVIRONMENT = "/environments/{name}"
"""``GET``: its status; ``PATCH``: change it; ``DELETE``: stop it."""
EVENTS = "/environments/{name}/events"
"""``GET``: its events."""
CONNECTION = "/environments/{name}/connection"
"""``GET``: how to log in to it over SSH (an ``SshAccess``)."""
POLICY = "/policy"
"""``GET``: the policies; ``PUT``: set a scope's keys; ``DELETE``: clear a scope (admins)."""


def environment(name: str) -> str:
    """The path of one environment, below ``PREFIX``."""
    return ENVIRONMENT.format(name=name)


def events(name: str) -> str:
    return EVENTS.format(name=name)


def connection(name: str) -> str:
    return CONNECTION.format(name=name)


SUSPEND = "/environments/{name}/suspend"
"""``POST``: suspend it (processes end, the disk is kept); ``?wait=true``: once suspended."""
RESUME = "/environments/{name}/resume"
"""``POST``: resume a suspended one; ``?wait=true``: answer once it accepts SSH."""


def suspend(name: str) -> str:
    return SUSPEND.format(name=name)


def resume(name: str) -> str:
    return RESUME.format(name=name)


# ---------------------------------------------------------------------- query parameters

ALL = "all"
GROUP = "group"
"""``GET /environments?all=true``: ended environments too."""
WAIT = "wait"
"""``POST /environments?wait=ready``; ``DELETE /environments/{name}?wait=true``."""
WAIT_READY = "ready"
"""The one value of ``wait`` a start accepts: answer once it accepts SSH."""
CALLER_ENV = "caller_env"
"""In ``POST /environments``' body beside the configuration's keys: the values of the
bare ``env`` KEYs, read from the caller's environment (secrets: stored, never in history)."""
PURGE = "purge"
USER = "user"
"""``DELETE /policy?user=NAME``: that user's scope (without it: everyone's)."""
"""``DELETE /environments/{name}?purge=true``: its workspace too."""
TRUE, FALSE = "true", "false"


def flag(value: bool) -> str:
    """A boolean query parameter's value."""
    return TRUE if value else FALSE


# ---------------------------------------------------------------------- headers

AUTHORIZATION = "Authorization"
BEARER = "Bearer"
"""Every call sends ``Authorization: Bearer TOKEN``."""
LOCATION = "Location"
"""A started environment's path, on the ``201`` of ``POST /environments``."""
ERROR_CLASS_HEADER = "X-Devenv-Error"
"""The devenv exception class behind an error answer, so that the remote SDK raises the
same class as the direct one; the body stays ``{"error": "one line"}``."""
UNANSWERED_HEADER = "X-Devenv-Unanswered"
"""Workflow ids (comma separated) of environments that did not answer a listing."""
ERROR_CLASSES: dict[str, type[DevenvError]] = {
    kind.__name__: kind
    for kind in (
        DevenvError,
        UserError,
        InvalidValueError,
        ConfigError,
        EnvironmentNotFoundError,
        EnvironmentEndedError,
        EnvironmentExistsError,
        ChangeRejectedError,
        ProvisioningFailedError,
        NoWorkerError,
        NotAnsweringError,
        ServerUnreachableError,
        ServerNotAnsweringError,
        ServerRefusedError,
    )
}
"""Classes the SDK raises by the name in ``ERROR_CLASS_HEADER``; any other name falls
back on the status code's usual class."""

# ---------------------------------------------------------------------- bodies

ERROR_KEY = "error"
"""An error answer's body: ``{"error": "one line"}`` (``ErrorBody``)."""
OFF = "off"
"""A threshold or a fixed end switched off, in a body (as in the YAML)."""
DURATION_DOC = (
    "A duration as in the YAML: integer seconds, 90s, 30m, 2h, 1d, 1w, 1h30m (at most 4w), "
    'or "off" (also false, 0) to disable.'
)


class ErrorBody(BaseModel):
    """Every error: one line a person can act on, never a stack trace."""

    error: str = Field(description="What went wrong and what to do, in one line.")


class ThresholdChanges(BaseModel):
    """Body of ``PATCH /api/v1/environments/{name}``: at least one key; in force at once.

    Unknown keys are refused, so that a typo is named instead of ignored."""

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


class PolicyBody(BaseModel):
    """Body of ``PUT /api/v1/policy``: the keys of one scope to set (the others kept);
    ``"off"`` (or ``false`` for ``no_off``) removes a key. Admins only."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"max_inactivity": "8h", "default_inactivity": "2h"},
                {"user": "alice", "max_duration": "1d", "no_off": True},
            ]
        },
    )

    user: str | None = Field(default=None, description="That user's scope; absent: everyone's.")
    default_inactivity: JsonValue = Field(
        default=None, description=f"inactivity_duration of a start without one. {DURATION_DOC}"
    )
    max_inactivity: JsonValue = Field(
        default=None, description=f"The longest inactivity_duration allowed. {DURATION_DOC}"
    )
    max_duration: JsonValue = Field(
        default=None, description=f"The longest max_duration allowed. {DURATION_DOC}"
    )
    no_off: JsonValue = Field(
        default=None, description="true: an inactivity_duration of off is refused."
    )
    delete_after: JsonValue = Field(
        default=None, description=f"Default and longest delete_after. {DURATION_DOC}"
    )
    stop_at_daily: JsonValue = Field(
        default=None, description='A fixed end every day at this time: "20:00", or "off".'
    )
    tz: JsonValue = Field(
        default=None, description='The time zone of stop_at_daily: "Europe/Berlin"; UTC if unset.'
    )
    days: JsonValue = Field(
        default=None, description='The days of stop_at_daily: "Mon-Fri"; every day if unset.'
    )

    idle_budget_weekly: JsonValue = Field(
        default=None,
        description='USD of idle time per user and week: 50 or "$50"; "off" removes it.',
    )
    floor_inactivity: JsonValue = Field(
        default=None,
        description=f"The idle threshold once the week's budget is spent. {DURATION_DOC}",
    )

    def keys(self) -> dict[str, Any]:
        """The policy keys the client sent."""
        return {key: getattr(self, key) for key in sorted(self.model_fields_set - {"user"})}
