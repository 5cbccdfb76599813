"""The keys every backend shares (``dev.yml``), validated before anything starts.

Each backend subclasses ``EnvironmentConfig`` with its ``backend`` literal and its
own section (``backends/<name>/config.py``); the registry picks the model by the
``backend`` key, so the whole configuration is a union discriminated on it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from devenv.models.durations import DurationError, format_duration, parse_duration
from devenv.models.money import parse_usd

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$|^[a-z]$")
NAME_ACCEPTED = (
    "1 to 40 lowercase letters, digits and hyphens, starting with a letter "
    "and not ending with a hyphen"
)
MEMORY_PATTERN = re.compile(r"^\d+(\.\d+)?\s*(MB|GB|TB|MiB|GiB|TiB)$", re.IGNORECASE)


def _duration(value: object) -> int | None:
    """A key left empty (``inactivity_duration:``) is unset, as in dstack: its default."""
    return None if value is None else parse_duration(value)


Duration = Annotated[int | None, BeforeValidator(_duration)]
"""Seconds, or ``None`` for off (every duration key's default)."""

ADMIN_ONLY = "x-devenv-admin-only"
"""JSON-schema mark of a key that names the server's hosts or files: only an admin (or the
server's own OS user) may set it (``devenv.api.admin_only``)."""


def _warning(value: object) -> int | None:
    """``off`` is 0 (never warn); unset (or left empty) stays None (the default rule)."""
    if value is None:
        return None
    seconds = parse_duration(value)
    return 0 if seconds is None else seconds


WarnBefore = Annotated[int | None, BeforeValidator(_warning)]

AUTO = "auto"
"""``inactivity_duration: auto``: the threshold learned from the owner's breaks."""


def _inactivity(value: object) -> int | str | None:
    """A duration, or ``auto`` (the adaptive rule, ``devenv.models.auto_threshold``)."""
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        return _duration(value)
    except DurationError as err:  # its words end with what is accepted: add auto
        raise DurationError(f"{err}, or auto") from None


Inactivity = Annotated[int | Literal["auto"] | None, BeforeValidator(_inactivity)]


def _bound(value: object) -> int:
    seconds = parse_duration(value)
    if seconds is None:
        raise DurationError(f"{value!r} is not a bound; accepted: a duration such as 15m or 4h")
    return seconds


Bound = Annotated[int, BeforeValidator(_bound)]


def _usd(value: object) -> float | None:
    return None if value is None else parse_usd(value)


def _budget(value: object) -> float | None:
    return None if value is None else parse_usd(value, positive=True)


DEFAULT_AUTO_MIN = 900
DEFAULT_AUTO_MAX = 14_400


class InactivityBounds(BaseModel):
    """Where ``inactivity_duration: auto`` may go: it starts at ``max``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Bound = Field(
        default=DEFAULT_AUTO_MIN, description="The shortest threshold auto may pick (15m)."
    )
    max: Bound = Field(
        default=DEFAULT_AUTO_MAX,
        description="The longest, and the threshold before any break is known (4h).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> InactivityBounds:
        if self.min > self.max:
            raise ValueError(
                f"min {format_duration(self.min)} is above max {format_duration(self.max)}; "
                "accepted: min at most max"
            )
        return self


def _webhook(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or len(value) > 2048:
        raise ValueError("accepted: an http(s) URL, such as a Slack or Mattermost incoming webhook")
    return value


class Notify(BaseModel):
    """Where warnings before a termination go (besides the environment's own events)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: Annotated[str, AfterValidator(_webhook)] | None = Field(
        default=None,
        description="An http(s) URL, POSTed a JSON warning with a `text` field "
        "(Slack/Mattermost show it); kept under the devenv home, never in workflow history.",
    )


def validate_name(value: str) -> str:
    """Names become workflow ids, ssh host aliases and folder names: keep them tame."""
    if not NAME_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid name; accepted: {NAME_ACCEPTED}")
    return value


class Resources(BaseModel):
    """What the instance should have; the local backend shares the host and ignores it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: Annotated[int, Field(ge=1, le=1024)] | None = Field(
        default=None, description="CPUs (1 to 1024)."
    )
    memory: str | None = Field(default=None, description="A size such as `8GB` (MB, GB, TB).")
    disk: str | None = Field(default=None, description="A size such as `100GB` (MB, GB, TB).")
    gpu: int | str | None = Field(
        default=None, description="A count (`1`), a model (`A10G`) or both (`A10G:2`)."
    )

    @field_validator("memory", "disk", mode="before")
    @classmethod
    def _size(cls, value: object) -> object:
        if value is not None and not MEMORY_PATTERN.fullmatch(str(value).strip()):
            raise ValueError(f"{value!r} is not a size; accepted: a number with MB, GB or TB")
        return value


class EnvironmentConfig(BaseModel):
    """One dev environment, as in ``examples/dev.yml`` (the dstack file shape)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["dev-environment"] = Field(description="Always `dev-environment`.")
    name: str | None = Field(
        default=None, description=f"The environment's name ({NAME_ACCEPTED}); generated if unset."
    )
    ide: Literal["vscode", "cursor", "none"] = Field(
        default="none", description="Which editor's remote link `devenv start` prints."
    )
    backend: str = Field(
        default="local", description="Where the instance runs: a registered backend."
    )
    inactivity_duration: Inactivity = Field(
        default=None,
        description="Terminate after this long with nobody connected (up to 4 weeks); "
        "`off`/`false`/`0`: never; `auto`: learned from the owner's breaks, within "
        "`inactivity_bounds` (docs: Adaptive idleness).",
    )
    inactivity_bounds: InactivityBounds | None = Field(
        default=None,
        description="With `inactivity_duration: auto`: `{min: 15m, max: 4h}` by default.",
    )
    price_per_hour: Annotated[float | None, BeforeValidator(_usd)] = Field(
        default=None,
        description="USD per hour of this environment, on any backend (`$2` accepted); "
        "overrides the backend's own setting and devenv's price table.",
    )
    idle_budget: Annotated[float | None, BeforeValidator(_budget)] = Field(
        default=None,
        description="USD: terminate once the current idle stretch has cost this much at "
        "`price_per_hour` (`$2` accepted); with `inactivity_duration` the earlier wins.",
    )
    max_duration: Duration = Field(
        default=None,
        description="Terminate this long after start, even while in use (up to 4 weeks); "
        "`off`/`false`/`0`: never.",
    )
    warn_before: WarnBefore = Field(
        default=None,
        description="Warn this long before a termination (event, webhook); default 10m when "
        "the threshold is longer than 20m; `off`: never. An explicit value is honoured "
        "however short.",
    )
    notify: Notify = Field(default=Notify(), description="Where warnings are sent.")
    min_connection_duration: Duration = Field(
        default=None,
        description="A user connection shorter than this does not count. On ssh and aws "
        "hosts sftp/scp connections count from 1 s (sshd runs no rc for a subsystem); "
        "shell and exec sessions count however short.",
    )
    resources: Resources = Field(
        default=Resources(), description="What the instance should have (cloud backends)."
    )
    group: str | None = Field(
        default=None,
        description=f"A group of the owner's environments ({NAME_ACCEPTED}): `devenv ps "
        "--group NAME` lists them; with `keep_alive: group` presence in any of them keeps "
        "this one alive (docs: Groups).",
    )
    keep_alive: Literal["self", "group"] = Field(
        default="self",
        description="What keeps it alive while idle: `self` (its own connections and jobs) "
        "or `group` (also those of any running environment of its `group` with the same "
        "owner). `group` needs `group`.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else validate_name(value)

    @field_validator("group")
    @classmethod
    def _group(cls, value: str | None) -> str | None:
        return None if value is None else validate_name(value)

    @model_validator(mode="after")
    def _keep_alive_with_group(self) -> EnvironmentConfig:
        if self.keep_alive == "group" and self.group is None:
            raise ValueError(
                "keep_alive: 'group' set without group; accepted: keep_alive: group only "
                "together with group: NAME"
            )
        return self

    @model_validator(mode="after")
    def _bounds_with_auto(self) -> EnvironmentConfig:
        if self.inactivity_bounds is not None and self.inactivity_duration != AUTO:
            raise ValueError(
                "inactivity_bounds: set without inactivity_duration: auto; accepted: "
                "inactivity_bounds only with inactivity_duration: auto"
            )
        return self

    def auto_bounds(self) -> InactivityBounds | None:
        """The bounds of ``inactivity_duration: auto``; None for a fixed threshold."""
        if self.inactivity_duration != AUTO:
            return None
        return self.inactivity_bounds or InactivityBounds()

    def inactivity_seconds(self) -> int | None:
        """The threshold to start with: ``auto`` starts at its bounds' max."""
        bounds = self.auto_bounds()
        if bounds is not None:
            return bounds.max
        return self.inactivity_duration if isinstance(self.inactivity_duration, int) else None

    def activity_task_queue(self) -> str | None:
        """The queue of this backend's activities; None: the shared queue (any worker).

        A backend whose instances live on one host (``local``) answers that host's queue.
        """
        return None

    def backend_section(self) -> dict[str, Any]:
        """The backend's own keys as JSON, carried opaquely to its activities."""
        return {}
