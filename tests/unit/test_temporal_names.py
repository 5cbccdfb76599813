"""Temporal names are typed references or members of ``devenv.models.names``.

A string literal naming an activity, update, query or signal is a typo waiting to
become an "unknown update" at run time, or a rename that silently stops replaying old
histories. These checks read the code (AST), so they hold for code no test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from temporalio import activity, workflow

from devenv.activities.activities import EnvironmentActivities, all_activities
from devenv.activities.policy_fanout import PolicyActivities, policy_activities
from devenv.activities.watching import WatchActivities, watch_activities
from devenv.models.names import Activity, PolicyQuery, PolicyUpdate, Query, Signal, Update
from devenv.workflows.environment import DevEnvironmentWorkflow
from devenv.workflows.policy import PolicyWorkflow

ROOT = Path(__file__).parents[2]
SCANNED = ("devenv", "benchmarks", "tests")
NAMED_CALLS = {
    "execute_activity",
    "start_activity",
    "execute_local_activity",
    "start_local_activity",
    "execute_update",
    "start_update",
    "_update",
    "query",
    "signal",
    "signal_with_start",
}
"""Calls whose first argument names a Temporal handler or activity."""
DECORATORS = {"defn", "signal", "update", "query"}
"""``activity.defn(name=...)``, ``workflow.signal(name=...)``, ...; a workflow's type
(``workflow.defn(name=...)``) is no handler name: ``WORKFLOW_TYPE`` holds ours."""
BUILT_IN = "__temporal_"
"""The SDK's own queries (``__temporal_workflow_metadata``) are no names of ours."""


def literal_names(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every Temporal name written as a string in ``source``."""
    found: list[tuple[int, str]] = []

    def named(node: ast.expr | None) -> None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if not node.value.startswith(BUILT_IN):
                found.append((node.lineno, node.value))

    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        attribute = node.func.attr
        if attribute in NAMED_CALLS and node.args:
            named(node.args[0])
        is_workflow_type = attribute == "defn" and not (
            isinstance(node.func.value, ast.Name) and node.func.value.id == "activity"
        )
        if attribute in DECORATORS and not is_workflow_type:
            for keyword in node.keywords:
                if keyword.arg == "name":
                    named(keyword.value)
    for node in ast.walk(ast.parse(source)):
        # activity_type.name == "provision": a history read by a literal name
        if isinstance(node, ast.Compare) and isinstance(node.left, ast.Attribute):
            left = node.left
            if left.attr == "name" and isinstance(left.value, ast.Attribute):
                if left.value.attr == "activity_type":
                    for right in node.comparators:
                        named(right)
    return found


def test_the_check_finds_each_form() -> None:
    source = "\n".join(
        [
            'await workflow.execute_activity("provision", x)',
            'await handle.query("status", result_type=EnvState)',
            'await handle.signal("record_activity", report)',
            'await self._update("change", change)',
            '@activity.defn(name="probe")\ndef f(): ...',
            '@workflow.defn(name="StandIn")\nclass W: ...',
            'ok = pending.activity_type.name == "monitor"',
            'await handle.query("__temporal_workflow_metadata")',
            "await handle.query(DevEnvironmentWorkflow.status)",
            "await workflow.execute_activity(Activity.PROVISION, x)",
            "signal.signal(signal.SIGINT, handler)",
        ]
    )
    assert sorted(name for _, name in literal_names(source)) == [
        "change",
        "monitor",
        "probe",
        "provision",
        "record_activity",
        "status",
    ]


def python_files() -> list[Path]:
    files = [path for top in SCANNED for path in sorted((ROOT / top).rglob("*.py"))]
    return [path for path in files if ".venv" not in path.parts]


@pytest.mark.parametrize("top", SCANNED)
def test_no_temporal_name_is_a_string_literal(top: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {name!r}"
        for path in python_files()
        if path.relative_to(ROOT).parts[0] == top
        for line, name in literal_names(path.read_text())
    ]
    assert offenders == [], "use a typed reference or devenv.models.names:\n" + "\n".join(offenders)


def test_the_workflow_handles_exactly_the_names() -> None:
    """Every member is registered (a caller's name reaches a handler), and every handler
    has a member (nothing is named outside the module)."""
    definition = workflow._Definition.must_from_class(DevEnvironmentWorkflow)
    assert set(definition.updates) == set(Update)
    assert set(definition.queries) == set(Query)
    assert set(definition.signals) == set(Signal)


def test_the_worker_registers_exactly_the_activities() -> None:
    acts = EnvironmentActivities(None, None, {})  # type: ignore[arg-type]
    watch = WatchActivities(None, None)  # type: ignore[arg-type]
    policy = PolicyActivities(None)  # type: ignore[arg-type]
    registered = [
        *all_activities(acts),
        *watch_activities(watch),
        watch.hold_lease,
        *policy_activities(policy),
    ]
    names = {activity._Definition.must_from_callable(fn).name for fn in registered}
    assert names == set(Activity)


def test_wire_names_never_change() -> None:
    """Recorded histories name these; a changed value stops them replaying."""
    assert {m.name: m.value for m in Signal}["RECORD_PRESENCE"] == "record_activity"
    assert sorted(Activity) == sorted(
        [
            "apply_login",
            "apply_policy",
            "check_idle_budgets",
            "fan_out_policy",
            "hold_lease",
            "monitor",
            "notify",
            "owner_breaks",
            "group_presence",
            "probe",
            "provision",
            "rehome",
            "resume",
            "suspend",
            "tell_terminals",
            "terminate",
            "watch_queue",
        ]
    )
    assert sorted(Update) == sorted(
        [
            "apply_org_policy",
            "change",
            "extend",
            "request_resume",
            "request_stop",
            "request_suspend",
            "set_inactivity",
            "set_max_duration",
            "set_purge_workspace",
            "set_stop_at",
        ]
    )
    assert sorted(Signal) == sorted(
        ["record_activity", "stop", "update_inactivity", "update_max_duration", "watcher_gone"]
    )
    assert list(Query) == ["status"]


def test_the_policy_workflow_handles_exactly_its_names() -> None:
    """The policy workflow's handlers are its enums' members, and their wire names stay."""
    definition = workflow._Definition.must_from_class(PolicyWorkflow)
    assert set(definition.updates) == set(PolicyUpdate) == {"set_policy"}
    assert set(definition.queries) == set(PolicyQuery) == {"policy"}
    assert not definition.signals
