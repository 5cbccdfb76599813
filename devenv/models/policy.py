"""An admin's policies: bounds and defaults that bind every environment of a scope.

A scope is everyone, or one user. The effective policy of a user is their own scope's
values over everyone's, key by key. Pure functions (no Temporal, no I/O): the policy
workflow stores a ``PolicySet``, the SDK checks starts and changes against it, and the
environment workflow clamps its thresholds to an ``OrgPolicy`` (one user's effective
bounds, as the fan-out sends it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from devenv.models.durations import MAX_SECONDS, format_duration

EVERYONE = "everyone"
USER_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
FLAGS: dict[str, str] = {
    "default_inactivity": "default-inactivity",
    "max_inactivity": "max-inactivity",
    "max_duration": "max-duration",
    "no_off": "no-off",
    "delete_after": "delete-after",
    "stop_at_daily": "stop-at-daily",
    "tz": "tz",
    "days": "days",
    "idle_budget_weekly": "idle-budget-weekly",
    "floor_inactivity": "floor-inactivity",
}
"""Each key of a policy, as ``devenv policy set`` and the messages name it."""

Seconds = int | None


class Policy(BaseModel):
    """One scope's bounds and defaults; an unset key (None) leaves it to the wider scope."""

    model_config = ConfigDict(extra="forbid")

    default_inactivity: Seconds = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="inactivity_duration of a start that does not give one (seconds).",
    )
    max_inactivity: Seconds = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The longest inactivity_duration allowed (seconds); `off` is refused.",
    )
    max_duration: Seconds = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The longest max_duration allowed (seconds); `off` is refused.",
    )
    no_off: bool | None = Field(
        default=None, description="True: an inactivity_duration of `off` is refused."
    )
    delete_after: Seconds = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The default and longest delete_after of suspended environments (seconds).",
    )
    stop_at_daily: str | None = Field(
        default=None,
        pattern=r"^([01]?\d|2[0-3]):[0-5]\d$",
        description="A fixed end every day at this time (HH:MM, in ``tz``).",
    )
    tz: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[A-Za-z0-9_+\-/]+$",
        description="The time zone of stop_at_daily (an IANA name); default UTC.",
    )
    days: str | None = Field(
        default=None,
        max_length=40,
        description="The days stop_at_daily applies (Mon-Fri); default every day.",
    )

    idle_budget_weekly: float | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="USD of idle time per user and week; past it, idle thresholds tighten "
        "to floor_inactivity until the week ends (Monday 00:00 in ``tz``, else UTC).",
    )
    floor_inactivity: Seconds = Field(
        default=None,
        ge=1,
        le=MAX_SECONDS,
        description="The idle threshold a user's environments tighten to once their idle "
        "budget of the week is spent (seconds).",
    )

    def empty(self) -> bool:
        return all(getattr(self, key) is None for key in FLAGS)

    def words(self) -> str:
        """``max-inactivity 8h, no-off``: what ``policy show`` prints of one scope."""
        parts = []
        for key, flag in FLAGS.items():
            value = getattr(self, key)
            if value is None:
                continue
            parts.append(f"{flag} {shown(value)}" if not isinstance(value, bool) else flag)
        return ", ".join(parts) or "none"


def shown(value: int | float | str) -> str:
    """A key's value as users write it: durations compact, amounts in USD, times and
    names as they are."""
    if isinstance(value, float):
        return dollars(value)
    return value if isinstance(value, str) else format_duration(value)


def dollars(value: float) -> str:
    """``$50`` or ``$51.20``: whole dollars without cents, else two decimals."""
    return f"${value:.0f}" if value == int(value) else f"${value:.2f}"


BUDGET_SCOPE = "idle budget"
"""The scope named for a max-inactivity tightened by a spent idle budget."""


class PolicySet(BaseModel):
    """Every scope's policy, as the policy workflow keeps it; ``version`` counts changes."""

    version: int = Field(default=0, ge=0)
    everyone: Policy = Field(default_factory=Policy)
    users: dict[str, Policy] = Field(default_factory=dict)
    changed_at: datetime | None = None
    changed_by: str | None = None
    over_budget: dict[str, float] = Field(
        default_factory=dict,
        description="Users whose idle budget of the week is spent, with the spend (USD) "
        "found when it was: their idle thresholds are tightened to the floor.",
    )

    def has_budget(self) -> bool:
        """Whether any scope sets an idle budget (the policy workflow then checks spends)."""
        scopes = [self.everyone, *self.users.values()]
        return any(scope.idle_budget_weekly is not None for scope in scopes)

    def effective(self, user: str | None, now: datetime | None = None) -> OrgPolicy:
        """The bounds binding ``user`` (None: an environment without an owner); with
        ``now``, the next daily stop computed (the workflow reads no time zone)."""
        own = self.users.get(user) if user is not None else None
        values: dict[str, object] = {}
        scopes: dict[str, str] = {}
        for key in FLAGS:
            mine = getattr(own, key) if own is not None else None
            if mine is not None:
                values[key], scopes[key] = mine, f"user {user}"
            elif (theirs := getattr(self.everyone, key)) is not None:
                values[key], scopes[key] = theirs, EVERYONE
        policy = OrgPolicy.model_validate({**values, "version": self.version, "scopes": scopes})
        spent = self.over_budget.get(user) if user is not None else None
        if spent is not None:
            policy.tighten(spent)
        if now is not None and policy.stop_at_daily is not None:
            from devenv.models.schedule import next_stop

            policy.next_stop = next_stop(policy.stop_at_daily, policy.tz, policy.days, now)
        return policy

    def with_scope(self, user: str | None, policy: Policy | None) -> PolicySet:
        """A copy with ``user``'s scope (None: everyone's) replaced; ``policy`` None clears it."""
        copy = self.model_copy(deep=True)
        if user is None:
            copy.everyone = policy or Policy()
        elif policy is None or policy.empty():
            copy.users.pop(user, None)
        else:
            copy.users[user] = policy
        return copy


class OrgPolicy(Policy):
    """One user's effective bounds, with the scope each came from; what an environment's
    workflow is sent (update ``apply_org_policy``) and keeps in its state."""

    version: int = Field(ge=0, description="The PolicySet version these bounds are of.")
    scopes: dict[str, str] = Field(
        default_factory=dict, description="Per key: `everyone` or `user NAME`."
    )
    next_stop: datetime | None = Field(
        default=None, description="The next daily stop (stop_at_daily), computed by the sender."
    )

    budget_spent: float | None = Field(
        default=None,
        description="The idle spend of the week (USD) that passed idle_budget_weekly: "
        "max_inactivity is tightened to floor_inactivity.",
    )

    def tighten(self, spent: float) -> None:
        """The bounds of a user whose idle budget is spent: max-inactivity at most the floor."""
        floor, budget = self.floor_inactivity, self.idle_budget_weekly
        if floor is None or budget is None:
            return
        if self.max_inactivity is None or floor < self.max_inactivity:
            self.max_inactivity = floor
            self.scopes["max_inactivity"] = BUDGET_SCOPE
        if self.default_inactivity is not None and self.default_inactivity > floor:
            self.default_inactivity = floor
        self.budget_spent = spent

    def budget_words(self) -> str:
        """``idle budget $50/week spent: $51.20``."""
        budget = self.idle_budget_weekly or 0.0
        return f"idle budget {dollars(budget)}/week spent: ${self.budget_spent or 0.0:.2f}"

    def bound_words(self, key: str) -> str:
        """``the policy's max-inactivity 8h (set by an admin for everyone; devenv policy show)``."""
        value = getattr(self, key)
        if self.scopes.get(key) == BUDGET_SCOPE:
            return (
                f"the policy's floor-inactivity {shown(value)} "
                f"({self.budget_words()}; devenv policy show)"
            )
        words = FLAGS[key] if isinstance(value, bool) else f"{FLAGS[key]} {shown(value)}"
        scope = self.scopes.get(key, EVERYONE)
        return f"the policy's {words} (set by an admin for {scope}; devenv policy show)"

    def schedule_words(self) -> str:
        """``stop-at-daily 20:00 Europe/Berlin Mon-Fri``."""
        return " ".join(
            part for part in (f"stop-at-daily {self.stop_at_daily}", self.tz, self.days) if part
        )


class PolicyRefusal(ValueError):
    """A start or change outside the policy; the message is the one line users see."""


def refusal(key: str, value: int | None, policy: OrgPolicy, bound: str) -> PolicyRefusal:
    shown = format_duration(value)
    verb = "is refused by" if value is None else "exceeds"
    return PolicyRefusal(f"{key}: {shown} {verb} {policy.bound_words(bound)}")


def check_thresholds(policy: OrgPolicy, values: Mapping[str, int | None]) -> None:
    """Refuse (PolicyRefusal) the first of ``values`` (inactivity_duration, max_duration,
    delete_after: seconds, None for off) outside ``policy``; keys absent are not checked."""
    if "inactivity_duration" in values:
        idle = values["inactivity_duration"]
        if idle is None and policy.no_off:
            raise refusal("inactivity_duration", None, policy, "no_off")
        if policy.max_inactivity is not None and (idle is None or idle > policy.max_inactivity):
            raise refusal("inactivity_duration", idle, policy, "max_inactivity")
    if "max_duration" in values and policy.max_duration is not None:
        cap = values["max_duration"]
        if cap is None or cap > policy.max_duration:
            raise refusal("max_duration", cap, policy, "max_duration")
    if "delete_after" in values and policy.delete_after is not None:
        after = values["delete_after"]
        if after is None or after > policy.delete_after:
            raise refusal("delete_after", after, policy, "delete_after")


def start_defaults(policy: OrgPolicy, given: Mapping[str, int | None]) -> dict[str, int | None]:
    """The values a start gets for what it did not give: inactivity_duration the policy's
    default (within its max), max_duration and delete_after the policy's bound."""
    chosen: dict[str, int | None] = {}
    if "inactivity_duration" not in given:
        idle = policy.default_inactivity or policy.max_inactivity
        if idle is not None and policy.max_inactivity is not None:
            idle = min(idle, policy.max_inactivity)
        if idle is not None:
            chosen["inactivity_duration"] = idle
    if "max_duration" not in given and policy.max_duration is not None:
        chosen["max_duration"] = policy.max_duration
    if "delete_after" not in given and policy.delete_after is not None:
        chosen["delete_after"] = policy.delete_after
    return chosen


def check_scope(user: str | None, policy: Policy, whole: PolicySet) -> None:
    """What ``policy set`` refuses before storing: a bad user name, a default above the
    max, and ``no-off`` with no inactivity bound to fall back to (PolicyRefusal)."""
    if user is not None and not USER_NAME.fullmatch(user):
        raise PolicyRefusal(f"--user: {user[:40]!r} is not a user name")
    effective = whole.with_scope(user, policy).effective(user)
    default, cap = effective.default_inactivity, effective.max_inactivity
    if default is not None and cap is not None and default > cap:
        raise PolicyRefusal(
            f"--default-inactivity: {format_duration(default)} exceeds the max-inactivity "
            f"{format_duration(cap)} of the same scope; accepted: a default up to the max"
        )
    if effective.stop_at_daily is None and (policy.tz is not None or policy.days is not None):
        raise PolicyRefusal("--tz and --days: they qualify --stop-at-daily, which is not set")
    if policy.days is not None or policy.stop_at_daily is not None:
        from devenv.models.schedule import parse_clock, parse_days

        try:
            parse_days(policy.days)
            if policy.stop_at_daily is not None:
                parse_clock(policy.stop_at_daily)
        except ValueError as problem:
            flag = "--days" if "days" in str(problem) else "--stop-at-daily"
            raise PolicyRefusal(f"{flag}: {problem}") from None
    if effective.idle_budget_weekly is not None and effective.floor_inactivity is None:
        raise PolicyRefusal(
            "--idle-budget-weekly: needs --floor-inactivity (for everyone or this user), the "
            "idle threshold environments tighten to once the budget is spent"
        )
    if effective.no_off and default is None and cap is None:
        raise PolicyRefusal(
            "--no-off: needs --max-inactivity or --default-inactivity (for everyone or this "
            "user), the threshold that environments set to `off` get"
        )


class Requested(BaseModel):
    """The thresholds the environment's user asked for (at start or with a change): a
    policy clamps the ones in force to its bounds, and raising a bound never raises
    them past these."""

    inactivity_duration: Seconds = None
    max_duration: Seconds = None
    stop_at: datetime | None = None
    """The user's own fixed end (``--stop-at``); a policy's daily stop may come first."""


class PolicyChange(BaseModel):
    """The policy workflow's ``set_policy`` update: one scope's keys replaced (an
    explicit None unsets a key), or the whole scope cleared."""

    user: str | None = Field(default=None, description="The user's scope; None: everyone.")
    keys: dict[str, int | bool | float | str | None] = Field(
        default_factory=dict, description="The keys to set (FLAGS' keys; None unsets one)."
    )
    clear: bool = Field(default=False, description="Remove the scope's every key.")
    by: str | None = Field(default=None, description="The admin asking, for the record.")

    def applied_to(self, policies: PolicySet) -> PolicySet:
        """The policy set after this change (not yet versioned); PolicyRefusal if bad."""
        if self.by is not None and (len(self.by) > 64 or not self.by.isprintable()):
            raise PolicyRefusal(f"by: {self.by[:40]!r} is not a user name")
        if self.clear:
            return _without_stale_budgets(policies.with_scope(self.user, None))
        unknown = sorted(set(self.keys) - set(FLAGS))
        if unknown:
            raise PolicyRefusal(f"{unknown[0]}: not a policy key; accepted: {', '.join(FLAGS)}")
        current = policies.everyone if self.user is None else policies.users.get(self.user)
        merged = (current or Policy()).model_dump() | self.keys
        if merged.get("no_off") is False:
            merged["no_off"] = None  # allowing off is the absence of the bound
        try:
            scope = Policy.model_validate(merged)
        except ValueError as problem:
            raise PolicyRefusal(_first_line(problem)) from None
        check_scope(self.user, scope, policies)
        return _without_stale_budgets(policies.with_scope(self.user, scope))


def _without_stale_budgets(policies: PolicySet) -> PolicySet:
    """Users over a budget that no longer binds them are over no longer."""
    policies.over_budget = {
        user: spent
        for user, spent in policies.over_budget.items()
        if policies.effective(user).idle_budget_weekly is not None
    }
    return policies


def _first_line(problem: ValueError) -> str:
    errors = getattr(problem, "errors", None)
    if callable(errors):
        first = errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{FLAGS.get(where, where)}: {first['msg']}"
    return str(problem).splitlines()[0]


class FanOutResult(BaseModel):
    """How far a policy version reached: every running environment was sent it."""

    version: int = Field(ge=0)
    environments: int = Field(default=0, ge=0, description="Running environments found.")
    changed: int = Field(default=0, ge=0, description="Those whose thresholds moved.")
    already: int = Field(
        default=0, ge=0, description="Those that had it, or had ended: nothing recorded."
    )
    attempt: int = Field(
        default=1, ge=1, description="The fan-out's attempt that finished (a retry re-sends)."
    )


class FanOutProgress(BaseModel):
    """How far the version being sent has got, as the fan-out's heartbeat last said (the
    worker sends one about every 25 s): ``policy set`` and ``policy show`` print it while
    a change reaches thousands of environments."""

    version: int = Field(ge=0)
    expected: int | None = Field(
        default=None, ge=0, description="Running environments counted when it began."
    )
    environments: int = Field(default=0, ge=0, description="Listed so far.")
    answered: int = Field(default=0, ge=0, description="Those that took it or had it, so far.")
    changed: int = Field(default=0, ge=0, description="Those whose thresholds moved, so far.")
    attempt: int = Field(default=1, ge=1, description="The fan-out's attempt (a retry re-sends).")

    def words(self) -> str:
        """``3,400 of 10,000 environments so far, 3,400 changed``."""
        of = f" of {self.expected:,}" if self.expected is not None else ""
        retry = f", attempt {self.attempt}" if self.attempt > 1 else ""
        return f"{self.answered:,}{of} environments so far, {self.changed:,} changed{retry}"


class IdleSpends(BaseModel):
    """Each user's idle spend of the week (USD), as the budget check last found it."""

    spends: dict[str, float] = Field(default_factory=dict)
    week_starts: dict[str, datetime] = Field(
        default_factory=dict, description="Per user: the week's start (Monday 00:00, tz)."
    )
    checked_at: datetime | None = None


class PolicyStatus(BaseModel):
    """What the policy workflow holds and answers: the policies and how far the latest
    version has reached."""

    policies: PolicySet = Field(default_factory=PolicySet)
    reached: FanOutResult | None = None
    sending: FanOutProgress | None = Field(
        default=None,
        description="While the latest version is being sent: how far it got (read from "
        "the fan-out's heartbeat, never stored by the policy workflow).",
        exclude_if=lambda progress: progress is None,
    )
    idle: IdleSpends | None = Field(
        default=None, description="The idle spends of the week, where an idle budget is set."
    )
