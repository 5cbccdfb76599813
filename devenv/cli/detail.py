"""`devenv ps NAME -v`: why an environment is still up.

Who keeps it in use, the rule that sets its deadline and when, the warning, and what
happened last; read from the workflow's whole state (``env.state()``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from rich.markup import escape

from devenv.cli.output import out
from devenv.cli.views import STATUS_STYLE, money, relative
from devenv.cli.views import clock as full_clock
from devenv.models import connected_idle, gpu_policy
from devenv.models.deadline import (
    DEFAULT_WARNING,
    DEFAULT_WARNING_ABOVE,
    compute,
    extension_in_force,
    warn_at,
)
from devenv.models.durations import format_duration
from devenv.models.state import EnvState, SessionInfo, Status, TerminationReason
from devenv.models.status import EnvironmentStatus
from devenv.models.suspension_cost import suspension_words

LAST_EVENTS = 10

RULE_KEY = {
    TerminationReason.INACTIVITY_DURATION_EXCEEDED: "inactivity_duration",
    TerminationReason.MAX_DURATION_EXCEEDED: "max_duration",
    TerminationReason.SCHEDULED_STOP: "stop_at",
    TerminationReason.IDLE_BUDGET_EXCEEDED: "idle_budget",
    TerminationReason.DELETE_AFTER_EXCEEDED: "delete_after",
    TerminationReason.CONNECTED_IDLE: "connected_idle",
    TerminationReason.GPU_UNDERUTILIZED: "utilization_policy",
}
"""The setting behind each deadline reason, as the user wrote or signalled it."""


async def show(name: str, json_output: bool) -> None:
    """Print environment ``name`` verbosely (``--json``: its whole state)."""
    from devenv.client.async_client import AsyncClient

    state = await (await AsyncClient().get(name)).state()
    if json_output:
        out.print(state.model_dump_json(indent=2), markup=False, emoji=False, highlight=False)
        return
    for line in render(state):
        out.print(line)


def render(state: EnvState, now: datetime | None = None) -> list[str]:
    """The verbose view as rich markup lines: summary, in use, deadline, last events."""
    now = now or datetime.now(UTC)
    lines = [summary(state, now)]
    if state.status == Status.RUNNING:
        lines += ["", "[bold]In use[/]", *in_use(state, now)]
    if state.suspended_at is not None:
        lines += ["", "[bold]Suspended[/]", *suspended_section(state, now)]
    lines += ["", "[bold]Deadline[/]", *deadline_section(state, now)]
    lines += ["", "[bold]Last events[/]", *last_events(state, now)]
    return lines


def at(moment: datetime | None, now: datetime) -> str:
    """``16:20:05Z`` today (UTC), the full date and time otherwise."""
    if moment is None:
        return "-"
    moment = moment.astimezone(UTC)
    if moment.date() == now.astimezone(UTC).date():
        return moment.strftime("%H:%M:%SZ")
    return full_clock(moment)


def when(moment: datetime | None, now: datetime) -> str:
    """``16:20:05Z (3m ago)``."""
    return f"{at(moment, now)} ({relative(moment, now)})"


def summary(s: EnvState, now: datetime) -> str:
    """``my-env  running  local  dev@127.0.0.1:2222  cost $0.00 ($0.00/h) ...``."""
    parts = [f"[bold]{escape(s.spec.name)}[/]", f"[{STATUS_STYLE[s.status]}]{s.status.value}[/]"]
    if s.termination_reason is not None:
        parts[-1] += f" ({s.termination_reason.value})"
    parts.append(s.instance.backend if s.instance is not None else s.spec.backend)
    if s.instance is not None and s.suspended_at is None:
        parts.append(escape(f"{s.instance.username}@{s.instance.host}:{s.instance.port}"))
    row = EnvironmentStatus.from_state(s, now)
    if row.price_per_hour is not None:
        so_far = "" if s.status.ended else " so far"
        parts.append(f"cost {money(row.cost)}{so_far} ({money(row.price_per_hour)}/h)")
        if (row.suspended_now or row.suspended_seconds) and row.price_per_hour > 0:
            parts.append(suspension_words(row))  # a free machine saves nothing: no words
    if s.status.ended and s.ended_at is not None:
        parts.append(f"ran {at(s.ready_at or s.created_at, now)} to {at(s.ended_at, now)}")
    elif s.suspended_at is not None:
        parts.append(f"suspended since {at(s.suspended_at, now)}")
    elif s.ready_at is not None:
        parts.append(f"up since {at(s.ready_at, now)}")
    elif s.created_at is not None:
        parts.append(f"created {at(s.created_at, now)}")
    return "  ".join(parts)


def sessions_of(s: EnvState) -> list[SessionInfo]:
    """The sessions of the last presence report (empty when the backend names none)."""
    return list(s.sessions)


def session_line(session: SessionInfo, now: datetime) -> str:
    """``shell from 10.0.0.7:50122 since 16:19:55Z (4m ago), pid 4242``."""
    words = [session.kind or "session"]
    if session.user:
        words.append(f"by {session.user}")
    if session.peer:
        words.append(f"from {session.peer}")
    if session.since is not None:
        words.append(f"since {when(session.since, now)}")
    if session.last_input is not None:
        words.append(f"last input {when(session.last_input, now)}")
    line = " ".join(words)
    if session.pid is not None:
        line += f", pid {session.pid}"
    return escape(line)


def in_use(s: EnvState, now: datetime) -> list[str]:
    """Connections (with their sessions when known) and jobs, and the last report."""
    from devenv.models.deadline import plural

    lines = [f"  {plural(s.connections, 'connection')}, {plural(s.jobs, 'job')}"]
    if not (s.connections or s.jobs):
        lines[0] += f": idle since {when(s.idle_since, now)}"
    sessions = sessions_of(s)
    if sessions:
        lines += [f"    {session_line(session, now)}" for session in sessions]
    elif s.connections:
        lines.append("    (this backend does not say who; counts only)")
    if s.jobs:
        lines.append(f"    jobs: devenv jobs {escape(s.spec.name)}")
    absent = connected_idle.why(s, now)
    if absent is not None:
        lines.append(f"  {escape(absent)}")
    gpus = gpu_policy.why(s)
    if gpus is not None:
        lines.append(f"  {escape(gpus)}")
    if s.last_report_at is not None:
        lines.append(f"  last presence report {when(s.last_report_at, now)}")
    return lines


def rule_line(s: EnvState, now: datetime) -> str:
    """The rule that set the deadline: ``idle for 2h since 16:20:05Z (inactivity_duration)``."""
    from devenv.models.deadline import rule_words

    words = rule_words(s)
    if s.deadline_reason == TerminationReason.MAX_DURATION_EXCEEDED:
        words += f" since creation at {at(s.created_at, now)}"
    elif s.deadline_reason == TerminationReason.SCHEDULED_STOP:
        words += f" at {at(s.stop_at, now)}"
    elif s.deadline_reason == TerminationReason.DELETE_AFTER_EXCEEDED:
        words += f" since {at(s.suspended_at, now)}"
    elif s.deadline_reason == TerminationReason.GPU_UNDERUTILIZED:
        words += f"; quiet since {at(s.gpu_quiet_since, now)}"
    elif s.deadline_reason == TerminationReason.CONNECTED_IDLE:
        words += f"; last sign of life {at(connected_idle.last_sign(s), now)}"
    else:
        words += f" since {at(s.idle_since, now)}"
    key = RULE_KEY.get(s.deadline_reason) if s.deadline_reason is not None else None
    if key == "inactivity_duration" and s.spec.inactivity_auto is not None:
        key += ": auto"
    return f"{words} ({key})" if key else words


def thresholds_line(s: EnvState) -> str:
    """Every rule's setting, the ones that did not set the deadline included."""
    spec = s.spec
    if spec.warn_before is None:
        warn = f"default ({format_duration(DEFAULT_WARNING)} if the rule is over "
        warn += f"{format_duration(DEFAULT_WARNING_ABOVE)})"
    else:
        warn = "never" if spec.warn_before == 0 else format_duration(spec.warn_before)
    line = (
        f"  settings: inactivity_duration {format_duration(spec.inactivity_duration)}, "
        f"max_duration {format_duration(spec.max_duration)}, warn_before {warn}"
    )
    if spec.connected_idle is not None:
        line += (
            f", connected_idle {format_duration(spec.connected_idle)} "
            f"(busy at {spec.connected_idle_cpu:g}% of a core)"
        )
    return line


def idle_rules(s: EnvState) -> list[str]:
    """The adaptive idle rules, whichever holds now: ``auto`` and ``idle_budget``."""
    from devenv.models.auto_threshold import rule_words as auto_words
    from devenv.models.idle_budget import budget_words

    lines: list[str] = []
    bounds = s.spec.inactivity_auto
    if bounds is not None:
        known = [*s.auto.breaks, *s.auto.others] if s.auto is not None else []
        words = auto_words(bounds.min, bounds.max, s.spec.inactivity_duration, known)
        lines.append(f"inactivity_duration: {words}")
    if s.spec.idle_budget is not None:
        holds = (
            " (holds now)" if s.deadline_reason == TerminationReason.IDLE_BUDGET_EXCEEDED else ""
        )
        lines.append(f"idle_budget: {budget_words(s)}{holds}")
    if s.spec.group is not None:
        counts = (
            "presence in any of the group keeps it alive"
            if s.spec.keep_alive == "group"
            else "its own presence alone keeps it alive"
        )
        lines.append(f"group: {s.spec.group}, keep_alive: {s.spec.keep_alive} ({counts})")
    return lines


def warning_sent_at(s: EnvState) -> datetime | None:
    """When the warning event for the current deadline was logged (the last one)."""
    prefix = f"warning: {s.spec.name} terminates at "
    return next((e.at for e in reversed(s.events) if e.message.startswith(prefix)), None)


def warning_line(s: EnvState, now: datetime) -> str:
    if s.deadline is not None and s.warned_for == s.deadline:
        sent = warning_sent_at(s)
        return f"  warning sent{f' at {when(sent, now)}' if sent else ''} for this deadline"
    due = warn_at(s)
    if due is None:
        return "  no warning for this deadline (warn_before)"
    return f"  warning due at {when(due, now)}"


def extension_line(s: EnvState, now: datetime) -> str:
    """``devenv signal --extend``: the floor, and the rule's own deadline without it."""
    unextended, _ = compute(s.model_copy(update={"deadline_floor": None}))
    if extension_in_force(s):
        most = (
            ""
            if s.deadline_extension is None
            else f", at most {format_duration(s.deadline_extension)} past the rule"
        )
        line = f"  extended to {at(s.deadline, now)} (devenv signal --extend{most})"
        return f"{line}; the rule alone: {at(unextended, now)}"
    line = f"  extended to {at(s.deadline_floor, now)} (devenv signal --extend)"
    return f"{line}; not in force, the rule's deadline is later"


def suspended_section(s: EnvState, now: datetime) -> list[str]:
    """Since when and why it is suspended, and how to bring it back."""
    why = escape(s.suspend_reason or "suspended")
    lines = [f"  {s.status.value} since {at(s.suspended_at, now)}: {why}"]
    if s.status == Status.SUSPENDED:
        lines.append(f"  workspace kept; `devenv resume {escape(s.spec.name)}` brings it back")
    if s.error:
        lines.append(f"  error: {escape(s.error)}")
    return lines


def deadline_section(s: EnvState, now: datetime) -> list[str]:
    """When it ends, why (the rule in words), extension, scheduled stop and the warning."""
    if s.status.ended:
        ended = [f"  ended at {when(s.ended_at, now)}"]
        if s.termination_reason is not None:
            ended[0] += f": {s.termination_reason.value}"
        if s.error:
            ended.append(f"  error: {escape(s.error)}")
        return ended
    if s.status == Status.TERMINATING:
        reason = s.termination_reason.value if s.termination_reason else "terminating"
        return [f"  terminating now: {reason}"]
    lines: list[str] = []
    if s.deadline is None or s.deadline_reason is None:
        if s.connections or s.jobs:
            lines.append(
                "  none while in use: the idle clock starts when the last user and job end"
            )
        elif s.status == Status.PROVISIONING:
            lines.append("  none yet (provisioning)")
        elif s.status == Status.SUSPENDED:
            lines.append("  none while suspended: kept until `devenv stop` (delete_after: off)")
        elif s.status in (Status.SUSPENDING, Status.RESUMING):
            lines.append(f"  none while {s.status.value}")
        else:
            lines.append("  none: every rule is off")
    else:
        lines.append(f"  [bold]{at(s.deadline, now)}[/] ({relative(s.deadline, now)})")
        lines.append(f"  rule: {escape(rule_line(s, now))}")
        if s.deadline_floor is not None:
            lines.append(extension_line(s, now))
        lines.append(warning_line(s, now))
    if s.stop_at is not None and s.deadline_reason != TerminationReason.SCHEDULED_STOP:
        lines.append(f"  scheduled stop at {when(s.stop_at, now)} (devenv signal --stop-at)")
    lines.append(thresholds_line(s))
    lines += [f"  {escape(line)}" for line in idle_rules(s)]
    return lines


def last_events(s: EnvState, now: datetime) -> list[str]:
    """The last ``LAST_EVENTS`` events, oldest first, with how many came before."""
    if not s.events:
        return ["  none yet"]
    shown = s.events[-LAST_EVENTS:]
    lines = []
    if len(s.events) > len(shown):
        earlier = len(s.events) - len(shown)
        lines.append(f"  [dim]({earlier} earlier: devenv logs {escape(s.spec.name)})[/]")
    lines += [f"  [dim]{at(e.at, now)}[/]  {escape(e.message)}" for e in shown]
    return lines
