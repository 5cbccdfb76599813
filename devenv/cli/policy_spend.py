"""The idle-spend lines of ``devenv policy show``: each user's spend of the week
against their budget, and whether their thresholds are tightened."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devenv.models.policy import PolicyStatus


def spend_lines(status: PolicyStatus) -> list[str]:
    """``idle spend of the week: alice $51.20 of $50 (over: idle thresholds at most 15m)``,
    one line per user with a budget; none where no budget is set."""
    from devenv.models.durations import format_duration
    from devenv.models.policy import dollars

    policies = status.policies
    if not policies.has_budget():
        return []
    idle = status.idle
    if idle is None or idle.checked_at is None:
        return ["idle spend of the week: not checked yet"]
    when = idle.checked_at.strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"idle spend of the week (checked {when}):"]
    for user, spent in sorted(idle.spends.items()):
        policy = policies.effective(user)
        if policy.idle_budget_weekly is None:
            continue
        line = f"  {user}: ${spent:.2f} of {dollars(policy.idle_budget_weekly)}"
        if user in policies.over_budget:
            line += f" (over: idle thresholds at most {format_duration(policy.max_inactivity)})"
        lines.append(line)
    if len(lines) == 1:
        lines.append("  no idle spend this week")
    return lines
