"""`devenv report`: hours, cost, what idle termination saved, breaks, a suggested threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from devenv.cli.output import JSON_OPT, err, out, run

if TYPE_CHECKING:
    from rich.console import RenderableType

    from devenv.client.report import Report

REPORT_HELP = """What environments cost, what idle termination saved, and a suggested threshold.

Per environment and in total, counted inside the last --since:

- running: ready to ended (or now), less the time suspended.
- in use: a user connected or a job running (from the presence events).
- idle at end: if ended by inactivity, last idle since to ended (its cost).
- cost: the backend's price x running.
- saved: if ended by inactivity, price x (min(created + max_duration, now) - ended),
  or price x (now - ended) without max_duration: "to max" / "to now".
- suspended: hours suspended; storage: the kept volumes' price x those hours;
  suspension saved: those hours x (running price - storage price).
- saved by rule: those savings per idle rule (inactivity_duration, auto,
  idle_budget); for auto also what learning saved against its bounds' max.
- breaks: gaps between one use and the next within one environment
  (the idle stretch that ended it is not a break).
- suggested threshold: the smallest multiple of 5 minutes longer than every break
  and every wait before first use; what it would have saved compared with the
  thresholds in force (each final idle stretch cut to it).
"""

REASONS = {
    "inactivity_duration_exceeded": "inactivity",
    "idle_budget_exceeded": "idle_budget",
    "max_duration_exceeded": "max_duration",
    "stopped_by_user": "stopped",
    "instance_lost": "lost",
    "provisioning_failed": "failed",
}


def report(
    since: Annotated[
        str, typer.Option("--since", help="The period: 12h, 1d, 7d, 4w, 1d12h (at most 52w).")
    ] = "7d",
    json_output: JSON_OPT = False,
) -> None:
    """What environments cost, what idle termination saved, and a suggested threshold."""
    run(_report(since, json_output))


report.__doc__ = REPORT_HELP


async def _report(since: str, json_output: bool) -> None:
    from devenv.client.async_client import AsyncClient
    from devenv.client.report import parse_since

    parse_since(since)  # bad input fails before any server is contacted
    result = await AsyncClient().report(since)
    if result.unanswered:
        shown = ", ".join(result.unanswered[:5]) + (", …" if len(result.unanswered) > 5 else "")
        err.print(
            f"[yellow]warning:[/] {len(result.unanswered)} environment(s) did not answer and "
            f"are not counted ({shown}); is a devenv worker running? (`devenv server`)"
        )
    if json_output:
        out.print(result.model_dump_json(indent=2))
        return
    for part in render(result):
        out.print(part)


def _span(hours: float | None) -> str:
    from devenv.models.durations import format_duration

    if hours is None:
        return "-"
    seconds = hours * 3600
    return format_duration(round(seconds / 60) * 60 if seconds >= 3600 else seconds)


def _saved(usd: float | None, until: str | None) -> str:
    from devenv.cli.views import money

    if until is None:
        return "-"
    return f"{money(usd)} (to {'max' if until == 'max_duration' else 'now'})"


def rule_lines(result: Report) -> list[RenderableType]:
    """``Saved by rule``: what each idle rule that ended something saved."""
    from devenv.cli.views import money

    if not result.by_rule:
        return []
    lines: list[RenderableType] = ["", "[bold]Saved by rule[/]"]
    for rule in ("inactivity_duration", "auto", "idle_budget"):
        got = result.by_rule.get(rule)
        if got is None:
            continue
        line = (
            f"  {rule}: {money(got.saved)} ({_span(got.hours_saved)}), "
            f"{got.environments} environment{'s' if got.environments != 1 else ''} ended"
        )
        if got.hours_saved_vs_max is not None:
            line += (
                f"; learning cut {_span(got.hours_saved_vs_max)} "
                f"({money(got.saved_vs_max)}) from its max"
            )
        lines.append(line)
    return lines


def suspension_lines(result: Report) -> list[RenderableType]:
    """Running cost vs storage cost while suspended, and what suspension saved (only when
    something was suspended in the period)."""
    from rich.markup import escape

    from devenv.cli.views import money

    total = result.total
    if not total.hours_suspended:
        return []
    lines: list[RenderableType] = ["", "[bold]Suspended[/]"]
    for env in result.environments:
        if env.hours_suspended:
            lines.append(
                f"  {escape(env.name)}: {_span(env.hours_suspended)} suspended, storage "
                f"{money(env.storage_cost)} (running cost {money(env.cost)}), "
                f"saved {money(env.suspension_saved)}"
            )
    lines.append(
        f"  total: {_span(total.hours_suspended)} suspended, storage "
        f"{money(total.storage_cost)} (running cost {money(total.cost)}), "
        f"suspension saved {money(total.suspension_saved)}"
    )
    return lines


def render(result: Report) -> list[RenderableType]:
    """The table and the lines under it, as `devenv report` prints them."""
    from rich.table import Table

    from devenv.cli.views import clock, money
    from devenv.models.durations import format_duration

    span = format_duration((result.until - result.since).total_seconds())
    parts: list[RenderableType] = [
        f"[bold]{clock(result.since)} -> {clock(result.until)}[/] (the last {span})"
    ]
    if not result.environments:
        parts.append("No environments ran in this period.")
        return parts
    table = Table(box=None, header_style="bold")
    columns = ("NAME", "STATUS", "ENDED BY", "RUNNING", "IN USE", "IDLE AT END", "COST", "SAVED")
    for column in columns:
        numeric = column in ("RUNNING", "IN USE", "IDLE AT END", "COST", "SAVED")
        table.add_column(column, justify="right" if numeric else "left")
    for env in result.environments:
        table.add_row(
            env.name,
            env.status,
            "auto"
            if env.ended_by == "auto"
            else REASONS.get(env.termination_reason or "", env.termination_reason or "-"),
            _span(env.hours_running),
            _span(env.hours_in_use),
            _span(env.hours_idle_before_termination),
            money(env.cost),
            _saved(env.saved, env.saved_until),
        )
    total = result.total
    table.add_section()
    table.add_row(
        f"[bold]total ({total.environments})[/]",
        "",
        "",
        _span(total.hours_running),
        _span(total.hours_in_use),
        _span(total.hours_idle_before_termination),
        money(total.cost),
        f"{money(total.saved)} ({_span(total.hours_saved)})",
    )
    parts.append(table)
    if total.unpriced:
        parts.append(f"[dim]{total.unpriced} environment(s) without a known price: not in $[/]")
    parts += suspension_lines(result)
    parts += rule_lines(result)
    breaks = result.breaks
    line = "  ".join(f"{label} {count}" for label, count in breaks.buckets.items())
    parts.append("")
    parts.append(
        f"[bold]Breaks[/] ({breaks.count}, between one use and the next; "
        f"the idle stretch that ended an environment is not one)"
    )
    parts.append(f"  {line}")
    if breaks.count:
        parts.append(
            f"  p50 {format_duration(breaks.p50_seconds)}  "
            f"p90 {format_duration(breaks.p90_seconds)}  max {format_duration(breaks.max_seconds)}"
        )
    suggestion = result.suggestion
    if suggestion.threshold_seconds is None:
        parts.append("[bold]Suggested inactivity threshold:[/] none (nothing was used)")
        return parts
    longest = "none" if suggestion.longest_break_seconds is None else None
    wait = suggestion.longest_wait_before_first_use_seconds
    parts.append(
        f"[bold]Suggested inactivity threshold: {format_duration(suggestion.threshold_seconds)}[/]"
    )
    parts.append(
        "  the shortest (in 5-minute steps) longer than every break (longest "
        f"{longest or format_duration(suggestion.longest_break_seconds)}) and every wait "
        f"before first use (longest {'none' if wait is None else format_duration(wait)})"
    )
    verb = "saved" if suggestion.hours_saved >= 0 else "cost"
    parts.append(
        f"  compared with the thresholds in force it would have {verb} "
        f"{_span(abs(suggestion.hours_saved))} ({money(abs(suggestion.saved))})"
    )
    return parts
