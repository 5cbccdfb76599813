"""The keys every backend shares (``dev.yml``), validated before anything starts.

Each backend subclasses ``EnvironmentConfig`` with its ``backend`` literal and its
own section (``backends/<name>/config.py``); the registry picks the model by the
``backend`` key, so the whole configuration is a union discriminated on it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal
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
from devenv.models.env_vars import EnvVars, InitCommands
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

DEFAULT_DELETE_AFTER = 7 * 24 * 3600
"""A suspended environment is kept a week by default (``delete_after``)."""


def _delete_after(value: object) -> int | None:
    """Left empty: the default week; ``off``: kept until stopped (None)."""
    return DEFAULT_DELETE_AFTER if value is None else parse_duration(value)


DeleteAfter = Annotated[int | None, BeforeValidator(_delete_after)]

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


def _cpu_share(value: object) -> float:
    """Percent of one core: ``5``, ``5%`` or ``2.5 %`` (a multi-core load may pass 100)."""
    text = str(value).strip().removesuffix("%").strip() if isinstance(value, str) else value
    try:
        share = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        share = -1.0
    if isinstance(value, bool) or not 0 <= share <= 100_000:
        raise ValueError(
            f"{value!r} is not a CPU share; accepted: "
            "a percent of one core, 0 to 100000 (`5` or `5%`)"
        )
    return share


CpuShare = Annotated[float, BeforeValidator(_cpu_share)]


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


def _window(value: object) -> int:
    seconds = parse_duration(value)
    if seconds is None:
        raise ValueError(f"{value!r} is not a time window; accepted: a duration such as `30m`")
    return seconds


class UtilizationPolicy(BaseModel):
    """dstack's ``utilization_policy``: end an environment whose GPUs all stay under
    ``min_gpu_utilization`` percent for ``time_window``, even while someone is connected."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_gpu_utilization: Annotated[int, Field(ge=0, le=100)] = Field(
        description="Percent (0 to 100): a sample of any GPU at or above it is use."
    )
    time_window: Annotated[int, BeforeValidator(_window)] = Field(
        description="How long every GPU must stay under the minimum (`30m`, `2h`); the GPUs "
        "are sampled with `nvidia-smi` every 10 seconds."
    )


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
        "time spent suspended does not count (running time only); `off`/`false`/`0`: never.",
    )
    warn_before: WarnBefore = Field(
        default=None,
        description="Warn this long before a termination (event, webhook); default 10m when "
        "the threshold is longer than 20m; `off`: never. An explicit value is honoured "
        "however short.",
    )
    notify: Notify = Field(default=Notify(), description="Where warnings are sent.")
    on_idle: Literal["terminate", "suspend"] = Field(
        default="terminate",
        description="What idleness (`inactivity_duration`) does: `terminate` ends the "
        "environment; `suspend` ends every process but keeps the disk and the workspace, "
        "until `devenv resume` (or `delete_after`). Backends that cannot suspend refuse it.",
    )
    delete_after: DeleteAfter = Field(
        default=DEFAULT_DELETE_AFTER,
        description="How long a suspended environment is kept before it is deleted for good "
        "(warned ahead, like a termination); default 7d; `off`: kept until `devenv stop`.",
    )
    min_connection_duration: Duration = Field(
        default=None,
        description="A user connection shorter than this does not count. On ssh and aws "
        "hosts sftp/scp connections count from 1 s (sshd runs no rc for a subsystem); "
        "shell and exec sessions count however short.",
    )
    resources: Resources = Field(
        default=Resources(), description="What the instance should have (cloud backends)."
    )
    init: InitCommands = Field(
        default_factory=list,
        description="Shell commands run once, at the first start (not on a resume), in "
        "the workspace as the user, with `env` set; their output is in "
        "`devenv logs NAME --init`. A failing command fails the start with its last lines "
        "and the instance is removed.",
    )
    env: EnvVars = Field(
        default_factory=dict,
        description="Environment variables of every session and job: a mapping "
        "(`KEY: value`) or a list (`KEY=value`, or a bare `KEY` taken from the environment "
        "of whoever runs `devenv start`; such values are secrets, kept out of the workflow's "
        "history, logs and `ps`). HOME, USER, LOGNAME, SHELL, PATH, PWD, OLDPWD, TERM, SSH_* "
        "and DEVENV_* are refused: every login sets them itself.",
    )

    connected_idle: Duration = Field(
        default=None,
        description="A connected session with no terminal input, while the environment's "
        "processes use under `connected_idle_cpu`, counts as absent after this long (a "
        "terminal left open is not a user): the environment ends this long after the last "
        "keystroke or busy moment (or after `inactivity_duration`, if longer), warned in the "
        "terminal first. Running jobs keep it. `off`: never (any connection keeps it).",
    )
    utilization_policy: UtilizationPolicy | None = Field(
        default=None,
        description="End the environment (warned first) once every GPU stayed under "
        "`min_gpu_utilization` percent for `time_window`, even while connected. Only where "
        "the instance has `nvidia-smi`; refused at start otherwise.",
    )
    connected_idle_cpu: CpuShare = Field(
        default=5.0,
        description="Percent of one core (`5` or `5%`): the environment's processes using "
        "at least this much keep a connected session present under `connected_idle`.",
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

    suspendable: ClassVar[bool] = False
    """Whether this backend can suspend (``on_idle: suspend``, ``devenv suspend``)."""

    @field_validator("on_idle")
    @classmethod
    def _on_idle(cls, value: str) -> str:
        if value == "suspend" and not cls.suspendable:
            backend = cls.model_fields["backend"].default
            raise ValueError(f"the {backend} backend cannot suspend; accepted: terminate")
        return value

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
