"""The whole state of one environment.

It is the workflow's input, so continue-as-new carries it across runs, and the
``status`` query returns it as is: one model for history, CLI and Web UI.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from devenv.models.auto_threshold import AutoState
from devenv.models.config import (
    DEFAULT_DELETE_AFTER,
    InactivityBounds,
    Resources,
    UtilizationPolicy,
)
from devenv.models.policy import OrgPolicy, Requested

WORKFLOW_TYPE = "DevEnvironment"
WORKFLOW_ID_PREFIX = "devenv-"
MAX_EVENTS = 200


def workflow_id_for(name: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{name}"


class Status(StrEnum):
    PROVISIONING = "provisioning"
    RUNNING = "running"
    SUSPENDING = "suspending"
    """Idle with ``on_idle: suspend``, or asked: processes ending, the disk kept."""
    SUSPENDED = "suspended"
    """Nothing runs and nothing bills but storage; ``resume`` brings it back, and
    ``delete_after`` ends it for good."""
    RESUMING = "resuming"
    TERMINATING = "terminating"
    TERMINATED = "terminated"
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (Status.TERMINATED, Status.FAILED)


class TerminationReason(StrEnum):
    INACTIVITY_DURATION_EXCEEDED = "inactivity_duration_exceeded"
    MAX_DURATION_EXCEEDED = "max_duration_exceeded"
    STOPPED_BY_USER = "stopped_by_user"
    INSTANCE_LOST = "instance_lost"
    PROVISIONING_FAILED = "provisioning_failed"
    SCHEDULED_STOP = "scheduled_stop"
    """The fixed end set with ``devenv signal NAME --stop-at``."""
    IDLE_BUDGET_EXCEEDED = "idle_budget_exceeded"
    """The current idle stretch cost ``idle_budget`` at the environment's price."""
    DELETE_AFTER_EXCEEDED = "delete_after_exceeded"
    """Suspended longer than ``delete_after``: deleted for good."""
    CONNECTED_IDLE = "connected_idle_exceeded"
    """Connected, but no terminal input and quiet processes for ``connected_idle``."""
    GPU_UNDERUTILIZED = "gpu_underutilized"
    """Every GPU under ``utilization_policy.min_gpu_utilization`` for its ``time_window``."""


class EnvSpec(BaseModel):
    """What the user asked for, resolved by the SDK (name chosen, key read)."""

    name: str
    backend: str = "local"
    ide: str = "none"
    inactivity_duration: int | None = None
    max_duration: int | None = None
    min_connection_duration: int = 0
    resources: Resources = Resources()
    user_public_key: str
    """OpenSSH public key line; the only key the instance accepts from users."""
    host_task_queue: str | None = None
    """Queue of the backend's activities, chosen by the backend's configuration model
    (local: the host's queue, where its instances live); None: the shared queue."""
    backend_config: dict[str, Any] = Field(default_factory=dict)
    """The backend's own section of the configuration (e.g. ``ssh_config``), as JSON;
    validated by the backend's model before start, opaque to the workflow. No secrets."""
    owner: str | None = None
    """Who started it (the HTTP API's user, or the local OS user); None in histories
    recorded before owners existed. The API shows an environment to its owner only."""
    warn_before: int | None = None
    """Seconds before a termination to warn; None: the default (10 minutes when the
    rule's threshold is longer than 20 minutes); 0: never."""
    inactivity_auto: InactivityBounds | None = None
    """``inactivity_duration: auto``: its bounds; ``inactivity_duration`` is then the
    threshold the rule picked last (``devenv.models.auto_threshold``)."""
    price_per_hour: float | None = None
    """USD per hour set in the configuration: overrides the backend's own price."""
    idle_budget: float | None = None
    """USD an idle stretch may cost at the price before the environment ends."""
    on_idle: Literal["terminate", "suspend"] = "terminate"
    """What the idle rule does: end the environment, or suspend it (disk kept)."""
    delete_after: int | None = DEFAULT_DELETE_AFTER
    """Seconds a suspended environment is kept before it is deleted; None: until stopped."""
    suspendable: bool = False
    """Its backend can suspend (the configuration model's ``suspendable``); histories from
    before suspension say False."""
    connected_idle: int | None = None
    """Seconds after which a connected session with no input and quiet processes counts
    as absent (``connected_idle``); None: off (any connection keeps it)."""
    connected_idle_cpu: float = 5.0
    """Percent of one core the environment's processes must use to count as busy."""
    utilization_policy: UtilizationPolicy | None = None
    """End once every GPU stayed under the minimum for the window (dstack's shape)."""
    group: str | None = None
    """The owner's group it belongs to (``group:``); None: none (and in histories
    recorded before groups existed)."""
    keep_alive: Literal["self", "group"] = "self"
    """``group``: presence in any running environment of its group and owner keeps it
    alive (``devenv.workflows.group``)."""
    notify_webhook: str | None = None
    """Which webhook to POST warnings to: a reference to the URL kept in the worker's
    home (``devenv.notify``), never the URL itself (it is a secret: it stays out of history)."""
    env: dict[str, str] = Field(default_factory=dict)
    """The ``env`` values written in the configuration (they may travel in history)."""
    env_secrets: str | None = None
    """A reference to the ``env`` values taken from the caller's environment, kept in the
    worker's home (``devenv.env_secrets``); never the values (secrets stay out of history)."""
    init: list[str] = Field(default_factory=list)
    """Commands run once, at the first start, in the workspace as the user."""


class Tuning(BaseModel):
    """Knobs of the workflow itself; tests lower them, users normally never see them."""

    keepalive_seconds: int = 60
    """How often the monitor re-reports while users are connected."""
    keepalive_bound_seconds: int = 300
    """A monitor silent this long while users are connected counts as idle since its last report."""
    max_history_events: int = 10_000
    """Continue-as-new past this many events even if the server has not suggested it."""
    search_attributes: bool = True
    """Off on the time-skipping test server, which does not support them."""
    monitor: bool = True
    """Off only in time-skipping tests: the test server stops its clock while any activity
    is outstanding, so those tests play the monitor by signalling ``record_activity``."""


class InstanceInfo(BaseModel):
    """Where the instance is and how to reach it; no secrets, it lands in history."""

    instance_id: str
    backend: str
    host: str
    port: int
    username: str
    host_public_key: str
    """Pinned in known_hosts; never trust on first use."""
    task_queue: str
    """Queue whose worker can monitor and terminate this instance."""
    folder: str | None = None
    """Where a user's session starts on the instance (what VS Code opens)."""
    data: dict[str, Any] = Field(default_factory=dict)
    """Backend-owned and opaque to everything else (local: the server's pid...)."""
    price_per_hour: float | None = None
    """USD per hour of what the backend provisioned (local and ssh: 0 unless configured);
    None in histories recorded before prices existed: unknown."""
    storage_price_per_hour: float | None = None
    """USD per hour it costs while suspended (aws: its EBS volumes; ``data["storage_gb"]``
    their size); None where suspension costs nothing known, and in older histories."""
    failsafe: bool = False
    """The machine enforces its idle rule itself if the control plane is gone; the
    workflow sends it every threshold change (``apply_policy``)."""
    login_messages: bool = False
    """The instance shows a login banner the workflow keeps current (``apply_login``) and
    can write a warning into its users' terminals (``tell_terminals``)."""

    @model_validator(mode="before")
    @classmethod
    def _legacy_local_fields(cls, value: Any) -> Any:
        """Histories recorded before ``data`` existed carry the local backend's pid and
        workspace at the top level: move them where the local backend now reads them."""
        if isinstance(value, dict) and ("pid" in value or "workspace" in value):
            value = dict(value)
            data = dict(value.get("data") or {})
            for key in ("pid", "workspace"):
                if key in value:
                    data.setdefault(key, value.pop(key))
            value["data"] = data
            value.setdefault("folder", data.get("workspace"))
        return value


class SessionInfo(BaseModel):
    """One user connection as the instance sees it (for ``devenv ps NAME -v``)."""

    pid: int | None = None
    peer: str | None = Field(default=None, alias="from")
    since: datetime | None = None
    kind: str | None = None
    """shell, exec, sftp, master (sessions ended, connection kept) or forward (no session)."""
    user: str | None = None
    """Whose key logged in (the owner or a member), where the instance can tell."""
    last_input: datetime | None = None
    """The session's last terminal input (its pty; ``w``'s IDLE); None: no terminal, or
    an instance from before it was reported."""

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class PresenceReport(BaseModel):
    """Who is present on the instance: one line of its presence stream, as the monitor
    forwards it in the ``record_activity`` signal (the wire name predates the word)."""

    connections: int = Field(ge=0)
    last_change: datetime
    keepalive: bool = False
    waiting: int = Field(default=0, ge=0)
    """Connections still inside ``min_connection_duration``: present, not yet counted."""
    sessions: list[SessionInfo] = Field(default_factory=list)
    jobs: int = Field(default=0, ge=0)
    """Jobs running in the environment (``devenv run``, ``devenv-keepalive``): in use
    like a connected user, so the idle clock waits for the last one to end."""
    last_input: datetime | None = None
    """The latest terminal input of any session; None: none seen (or an older instance)."""
    busy_at: datetime | None = None
    """The last moment the environment's processes used at least the busy CPU share
    (``connected_idle_cpu``); None: not seen busy (or an older instance)."""
    gpu_quiet_since: datetime | None = None
    """Since when every GPU sample was under ``utilization_policy``'s minimum; None: a
    GPU was at or above it at the last sample, or the GPUs are not sampled."""
    gpu_error: str | None = None
    """Why the last GPU sample failed (nvidia-smi's message), if it did."""

    @property
    def in_use(self) -> int:
        """Connections and jobs: what keeps the environment from being idle."""
        return self.connections + self.jobs


class EnvEvent(BaseModel):
    """One line of ``devenv logs``."""

    at: datetime
    message: str


class FailsafePolicy(BaseModel):
    """The idle rule a machine enforces on itself once no control plane reads its stream.

    Written to the instance at provision and again whenever a threshold changes, so a
    machine whose control plane is gone still ends, and never earlier than its user
    last asked. Backends without a failsafe ignore it.
    """

    inactivity_seconds: int | None = Field(
        description="End after this long with no user connected; None: never for idleness."
    )
    max_duration_seconds: int | None = Field(
        description="End this long after started_at, even in use; None: no limit."
    )
    started_at: datetime = Field(description="When the environment became ready (UTC).")
    failsafe_after_seconds: int = Field(
        description="Act only after no control plane has read the stream for this long."
    )
    on_idle: Literal["terminate", "suspend"] = Field(
        default="terminate",
        description="What the failsafe does when it acts: end the machine (terminate), or "
        "stop it keeping its disk (suspend, ``on_idle: suspend``).",
    )

    @classmethod
    def of(
        cls,
        inactivity: int | None,
        max_duration: int | None,
        started_at: datetime,
        failsafe_after: int | None = None,
        on_idle: Literal["terminate", "suspend"] = "terminate",
    ) -> FailsafePolicy:
        """Default ``failsafe_after``: the longer of an hour and the inactivity threshold."""
        return cls(
            inactivity_seconds=inactivity,
            max_duration_seconds=max_duration,
            started_at=started_at,
            failsafe_after_seconds=failsafe_after or max(MIN_FAILSAFE_AFTER, inactivity or 0),
            on_idle=on_idle,
        )


MIN_FAILSAFE_AFTER = 3600


class SharedUser(BaseModel):
    """A colleague an environment is shared with: they may log in with this key, see it,
    extend it and change its thresholds, but not stop it."""

    name: str = Field(description="Their devenv user name.")
    public_key: str = Field(description="Their OpenSSH public key line, as registered.")


class LoginSettings(BaseModel):
    """What an instance shows and accepts at login, pushed by the workflow on every change."""

    banner: str = Field(
        description="Printed when a user opens an interactive shell: the rules and the end."
    )
    shared_keys: list[str] = Field(
        default_factory=list,
        description="Keys of the colleagues it is shared with, each ``TYPE BASE64 "
        "devenv-shared:NAME``; the owner's key is the instance's own and stays.",
    )


class LateLogin(BaseModel):
    """The probe at idle deadline ``deadline`` found connections not counted yet: the
    decision waits until ``until``, when they would count, and is then made once."""

    deadline: datetime
    until: datetime


class EnvState(BaseModel):
    spec: EnvSpec
    tuning: Tuning = Tuning()
    status: Status = Status.PROVISIONING
    instance_token: str | None = None
    """Idempotency token for provision/terminate, fixed at the first run."""
    instance: InstanceInfo | None = None
    created_at: datetime | None = None
    ready_at: datetime | None = None
    ended_at: datetime | None = None
    connections: int = 0
    jobs: int = 0
    """Jobs running (``devenv run``, ``devenv-keepalive``); like connections, in use."""
    sessions: list[SessionInfo] = Field(default_factory=list)
    """Who is connected, as the last presence report said (``devenv ps NAME -v``)."""
    idle_since: datetime | None = None
    last_report_at: datetime | None = None
    deadline: datetime | None = None
    deadline_reason: TerminationReason | None = None
    termination_reason: TerminationReason | None = None
    error: str | None = None
    purge_workspace: bool = False
    """Set by ``stop --purge``: terminate deletes the workspace as well."""
    warned_for: datetime | None = None
    """The deadline a warning was sent for; a warning is sent once per deadline."""
    deadline_floor: datetime | None = None
    """``devenv signal --extend``: the deadline is not earlier than this (thresholds kept)."""
    deadline_extension: int | None = None
    """Seconds of that ``--extend``: the extended deadline is never more than this past the
    rules' own (None: extended before the cap existed, the floor alone holds)."""
    stop_at: datetime | None = None
    """``devenv signal --stop-at``: a fixed end, whatever the activity."""
    late_login: LateLogin | None = None
    """An idle deadline put off until connections younger than ``min_connection_duration``
    would count (the late-login rule); ignored once the idle deadline it was for moves."""
    failsafe_policy: FailsafePolicy | None = None
    """The thresholds the machine's failsafe last confirmed (instances with a failsafe)."""
    login: LoginSettings | None = None
    """The login banner the instance last confirmed (instances with ``login_messages``)."""
    login_error: str | None = None
    """Why the instance could not be told ``login`` (its banner, members' keys); None once
    it was: ``devenv share`` returns when the keys are in place, or says this."""
    shared_with: list[SharedUser] = Field(default_factory=list)
    """Colleagues who may log in, see, extend and change it (``devenv share``)."""
    auto: AutoState | None = None
    """The breaks an ``inactivity_duration: auto`` environment learns from."""
    suspended_at: datetime | None = None
    """Since when it is suspended (SUSPENDING, SUSPENDED, RESUMING); None while running."""
    suspend_reason: str | None = None
    """Why it is (being) suspended, in words (idle, or who asked): ``ps -v``."""
    suspended_seconds: float = 0.0
    """Seconds spent suspended in earlier suspensions: ``max_duration`` counts running time
    only, so its end moves out by this much."""
    resume_requested: bool = False
    """A resume arrived while suspending: it resumes as soon as it is suspended."""
    connected_at: datetime | None = None
    """When someone connected while nobody was (a connection is a sign of life)."""
    last_input: datetime | None = None
    """The latest terminal input the instance reported (``connected_idle``)."""
    busy_at: datetime | None = None
    """The last moment the instance reported its processes busy (``connected_idle_cpu``)."""
    gpu_quiet_since: datetime | None = None
    """Since when every GPU was under ``utilization_policy``'s minimum, as last reported."""
    runs: int = 1
    events: list[EnvEvent] = Field(default_factory=list)
    org_policy: OrgPolicy | None = None
    """The admins' bounds in force (``devenv policy``), as last applied; None: none yet."""
    requested: Requested | None = None
    """The thresholds the user asked for, kept once a policy applies (it clamps them)."""
    policy_changes: int = 0
    """How many policy versions changed this environment (``devenv_policy_changes_total``)."""

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.spec.name)


class DeadlineAnswer(BaseModel):
    """What ``set_inactivity`` / ``set_max_duration`` answer to the CLI."""

    status: Status
    inactivity_duration: int | None
    max_duration: int | None
    deadline: datetime | None
    deadline_reason: TerminationReason | None
    terminating: bool


class DurationSetting(BaseModel):
    seconds: int | None = Field(description="Whole seconds; None or 0: off.")


class StopAtSetting(BaseModel):
    at: datetime | None = Field(description="The fixed end (with its zone); None: remove it.")


class Change(BaseModel):
    """The ``change`` update: everything one PATCH (or ``env.update``) asks, applied together
    and attributed to ``by`` in the events, so a shared environment's members know who
    changed what. Absent fields stay as they are."""

    inactivity: DurationSetting | None = None
    max_duration: DurationSetting | None = None
    stop_at: StopAtSetting | None = None
    extend: int | None = Field(default=None, description="Push the deadline out, seconds.")
    shared_with: list[SharedUser] | None = Field(
        default=None, description="The whole list of colleagues it is shared with."
    )
    by: str | None = Field(default=None, description="Who asks (a user name), for the events.")
