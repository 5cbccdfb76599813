"""One environment as every client sees it: the keys of ``devenv ps --json`` exactly.

Defined beside the workflow's state (pure data, no I/O) because the workflow itself
publishes it in its memo, so that listing reads the server's visibility store and
asks no workflow anything.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, Field, TypeAdapter

from devenv.models.state import EnvState, InstanceInfo, Status, workflow_id_for

MEMO_KEY = "devenv"
"""Memo field holding the row (``EnvironmentStatus``) that ``devenv ps`` lists: here, not
in ``visibility``, so a listing imports no workflow code."""

POLICY_CHANGES_KEY = "policy_changes"
"""A memo row's count of the policy versions that changed its environment (an int that
only grows; absent: 0); ``devenv_policy_changes_total`` sums it over the fleet."""


class EnvironmentStatus(BaseModel):
    """One environment as ``devenv ps --json``, ``devenv.list()`` and ``env.status()`` show it."""

    name: str = Field(description="The environment's name.")
    workflow_id: str = Field(description="Its Temporal workflow id, `devenv-NAME`.")
    backend: str = Field(description="Where it runs: local, ssh, aws...")
    status: Status = Field(
        description="provisioning, running, suspending, suspended, resuming, terminating, "
        "terminated, failed."
    )
    activity: Literal["active", "idle"] | None = Field(
        description="While running: active (someone is connected, or a job runs) or idle; "
        "null otherwise."
    )
    connections: int = Field(description="User connections counted now.")
    jobs: int = Field(
        default=0,
        description="Jobs running now (`devenv run`, `devenv-keepalive`): in use like a "
        "connected user.",
    )
    inactivity_duration: int | None = Field(description="Idle threshold in seconds; null: off.")
    inactivity_auto: bool = Field(
        default=False,
        description="The idle threshold is learned (`inactivity_duration: auto`); "
        "`inactivity_duration` is the one in force now.",
        # Absent while false: memo rows of histories recorded before auto stay the same.
        exclude_if=lambda auto: not auto,
    )
    max_duration: int | None = Field(description="Hard cap from start in seconds; null: off.")
    idle_since: datetime | None = Field(description="While idle: since when (UTC).")
    deadline: datetime | None = Field(
        description="When it will be terminated (UTC), if nothing changes; while suspended, "
        "when it will be deleted (`delete_after`)."
    )
    termination_reason: str | None = Field(description="Why it ended, once it is ending.")
    warned: bool = Field(
        default=False,
        description="Inside its warning window: the warning before `deadline` was sent "
        "(`devenv ps` shows `terminating in 9m`).",
        # Absent while false, so rows of histories recorded before warnings stay the same.
        exclude_if=lambda warned: not warned,
    )
    on_idle: Literal["terminate", "suspend"] = Field(
        default="terminate",
        description="What idleness does: terminate, or suspend (`on_idle`).",
        # Absent while terminate: memo rows of histories recorded before stay the same.
        exclude_if=lambda on_idle: on_idle == "terminate",
    )
    suspended_since: datetime | None = Field(
        default=None,
        description="While suspending, suspended or resuming: since when (UTC); absent otherwise.",
        exclude_if=lambda since: since is None,
    )
    suspended_seconds: float = Field(
        default=0.0,
        description="Seconds spent suspended in earlier suspensions (the current one, since "
        "`suspended_since`, comes on top): `cost` counts running time only.",
        exclude_if=lambda seconds: not seconds,
    )
    suspend_reason: str | None = Field(
        default=None,
        description="Why it is suspended: idle (`on_idle: suspend`) or who asked; absent "
        "while not suspended.",
        exclude_if=lambda reason: reason is None,
    )
    owner: str | None = Field(
        default=None,
        description="Who started it (an HTTP API user, or the local OS user); absent for "
        "environments started before owners were recorded.",
        # Absent rather than null: the memo row of an environment started before owners
        # existed stays byte-identical, so its workflow never upserts a memo its
        # recorded history lacks (replay stays deterministic).
        exclude_if=lambda owner: owner is None,
    )
    group: str | None = Field(
        default=None,
        description="The owner's group it belongs to (`group:`); absent when none.",
        # Absent rather than null: memo rows of histories recorded before groups stay the same.
        exclude_if=lambda group: group is None,
    )
    shared_with: list[str] = Field(
        default_factory=list,
        description="Colleagues it is shared with (`devenv share`): they see it, may log in, "
        "extend it and change its thresholds, but not stop it.",
        # Absent while empty: memo rows of histories recorded before sharing stay the same.
        exclude_if=lambda names: not names,
    )
    price_per_hour: float | None = Field(
        default=None,
        description="USD per hour: the top-level `price_per_hour` when set; otherwise what "
        "the backend says (local, ssh: 0 unless configured; aws: devenv's indicative price "
        "table or `aws.price_per_hour`); "
        "null: unknown (not provisioned yet, or started before prices were recorded).",
    )
    cost: float | None = Field(
        default=None,
        description="USD so far: price_per_hour times the hours from ready (or created) "
        "to ended (or now), less the time suspended, rounded to cents; null when the price "
        "is unknown.",
    )
    storage_price_per_hour: float | None = Field(
        default=None,
        description="USD per hour while suspended (aws: its EBS volumes); absent where "
        "suspension costs nothing known.",
        # Absent while unknown: memo rows of histories recorded before stay the same.
        exclude_if=lambda price: price is None,
    )
    storage_cost: float | None = Field(
        default=None,
        description="USD so far while suspended: storage_price_per_hour times the hours "
        "suspended; null when the storage price is unknown. Not in `cost`.",
    )
    suspension_saved: float | None = Field(
        default=None,
        description="USD suspension saved so far: the hours suspended times "
        "(price_per_hour - storage_price_per_hour); null when the price is unknown.",
    )
    billed_from: datetime | None = Field(
        default=None,
        description="What `cost` counts from (UTC): when the instance was ready, or when the "
        "environment was created if it never was; null when the price is unknown.",
    )
    billed_until: datetime | None = Field(
        default=None,
        description="What `cost` counts to (UTC): when it ended; null while it lasts.",
    )

    @classmethod
    def from_state(cls, state: EnvState, now: datetime | None = None) -> EnvironmentStatus:
        """The row of ``state``, its ``cost`` as of ``now`` (default: the clock)."""
        return cls.published(state).costed(now)

    def costed(self, now: datetime | None = None) -> EnvironmentStatus:
        """This row with ``cost`` as of ``now`` (default: the clock). The workflow publishes
        the price and the period, never a cost (it would go stale, and the workflow must not
        read the clock); whoever reads a row adds the cost."""
        now = now or datetime.now(UTC)
        paused = self.suspended_seconds
        if self.suspended_since is not None:
            paused += max(((self.billed_until or now) - self.suspended_since).total_seconds(), 0)
        cost = cost_so_far(self.price_per_hour, self.billed_from, self.billed_until, now, paused)
        storage, saved = suspension_costs(self.price_per_hour, self.storage_price_per_hour, paused)
        return self.model_copy(
            update={"cost": cost, "storage_cost": storage, "suspension_saved": saved}
        )

    @property
    def suspended_now(self) -> bool:
        """Suspended (or on the way in or out): the machine is not billed by the hour."""
        return self.status in (Status.SUSPENDING, Status.SUSPENDED, Status.RESUMING)

    @classmethod
    def published(cls, state: EnvState) -> EnvironmentStatus:
        """The row without ``cost``: what the workflow keeps in its memo (no clock read)."""
        running = state.status == Status.RUNNING
        price = state.instance.price_per_hour if state.instance is not None else None
        return cls(
            name=state.spec.name,
            workflow_id=workflow_id_for(state.spec.name),
            backend=state.spec.backend,
            status=state.status,
            activity=("active" if state.connections or state.jobs else "idle") if running else None,
            connections=state.connections,
            jobs=state.jobs,
            inactivity_duration=state.spec.inactivity_duration,
            inactivity_auto=state.spec.inactivity_auto is not None,
            max_duration=state.spec.max_duration,
            idle_since=state.idle_since
            if running and not (state.connections or state.jobs)
            else None,
            deadline=state.deadline if not state.status.ended else None,
            termination_reason=state.termination_reason,
            on_idle=state.spec.on_idle,
            suspended_since=state.suspended_at,
            suspended_seconds=state.suspended_seconds,
            suspend_reason=state.suspend_reason,
            warned=(running or state.status == Status.SUSPENDED)
            and state.deadline is not None
            and state.warned_for == state.deadline,
            owner=state.spec.owner,
            group=state.spec.group,
            shared_with=[user.name for user in state.shared_with],
            price_per_hour=price,
            storage_price_per_hour=(
                state.instance.storage_price_per_hour if state.instance is not None else None
            ),
            billed_from=(state.ready_at or state.created_at) if price is not None else None,
            billed_until=state.ended_at if price is not None else None,
        )


class SshAccess(BaseModel):
    """How to log in to a running environment (``GET .../connection``): what an ssh config
    entry needs, the host key included so that it is pinned, never trusted on first use."""

    name: str = Field(description="The environment's name (the ssh config's Host).")
    host: str = Field(description="Address of its SSH server, as the devenv server sees it.")
    port: int = Field(description="Its SSH port.")
    username: str = Field(description="The account to log in as.")
    host_public_key: str = Field(description="Its SSH host key, to pin in known_hosts.")
    folder: str | None = Field(default=None, description="Where a session starts.")
    ide: str = Field(default="none", description="The IDE its configuration names.")

    @classmethod
    def of(cls, name: str, instance: InstanceInfo, ide: str = "none") -> SshAccess:
        return cls(
            name=name,
            ide=ide,
            host=instance.host,
            port=instance.port,
            username=instance.username,
            host_public_key=instance.host_public_key,
            folder=instance.folder,
        )


def cost_so_far(
    price_per_hour: float | None,
    since: datetime | None,
    until: datetime | None,
    now: datetime,
    suspended: float = 0.0,
) -> float | None:
    """USD from ``since`` to ``until`` (or ``now`` while it lasts), less the ``suspended``
    seconds (nothing runs then), rounded to cents; None when the price or the start is
    unknown. A clock behind ``since`` counts nothing."""
    if price_per_hour is None or since is None:
        return None
    hours = max(((until or now) - since).total_seconds() - suspended, 0.0) / 3600
    return round(price_per_hour * hours, 2)


def suspension_costs(
    price_per_hour: float | None, storage_price_per_hour: float | None, suspended: float
) -> tuple[float | None, float | None]:
    """What ``suspended`` seconds cost in storage, and what they saved against running:
    hours x storage price, and hours x (price - storage price), rounded to cents. The
    storage cost is None when its price is unknown (then nothing is subtracted from the
    saving); the saving is None when the running price is unknown."""
    hours = max(suspended, 0.0) / 3600
    storage = None if storage_price_per_hour is None else round(storage_price_per_hour * hours, 2)
    if price_per_hour is None:
        return storage, None
    saved = max(price_per_hour - (storage_price_per_hour or 0.0), 0.0) * hours
    return storage, round(saved, 2)


class EnvironmentList(list[EnvironmentStatus]):
    """``devenv.list()``: the environments that answered, and the ids of those that did not
    (no worker running, for instance), so a script can tell 'none' from 'not known'."""

    def __init__(self, items: list[EnvironmentStatus], unanswered: list[str]) -> None:
        super().__init__(items)
        self.unanswered = unanswered


class EnvironmentPage(EnvironmentList):
    """One page of a listing (``AsyncClient.list_pages``), sorted within itself; ``last``
    says no page follows, so a caller can print a small listing whole and a fleet's as
    it arrives."""

    def __init__(self, items: list[EnvironmentStatus], unanswered: list[str], last: bool) -> None:
        super().__init__(items, unanswered)
        self.last = last


STATUS_LIST = TypeAdapter(list[EnvironmentStatus])


def statuses_json(rows: list[EnvironmentStatus]) -> str:
    return STATUS_LIST.dump_json(rows, indent=2).decode()
