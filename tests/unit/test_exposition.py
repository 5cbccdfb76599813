"""The Prometheus text format devenv writes itself (no prometheus_client): what a
scraper parses, escapes included."""

from __future__ import annotations

from devenv.api.exposition import Family, render


def test_families_render_help_type_and_sorted_samples() -> None:
    gauge = Family("devenv_environments", "gauge", "Environments.")
    gauge.add(1, status="running", owner="bob")
    gauge.add(1, status="running", owner="bob")
    gauge.add(1, status="provisioning", owner="alice")
    counter = Family("devenv_saved_dollars_total", "counter", "USD saved.")
    counter.set(1.25)
    assert render([gauge, counter]) == (
        "# HELP devenv_environments Environments.\n"
        "# TYPE devenv_environments gauge\n"
        'devenv_environments{owner="alice",status="provisioning"} 1\n'
        'devenv_environments{owner="bob",status="running"} 2\n'
        "# HELP devenv_saved_dollars_total USD saved.\n"
        "# TYPE devenv_saved_dollars_total counter\n"
        "devenv_saved_dollars_total 1.25\n"
    )


def test_label_values_and_help_are_escaped() -> None:
    family = Family("x", "gauge", "a \\ b\nc")
    family.set(float("inf"), owner='q"\\\n')
    family.set(float("nan"), owner="n")
    assert render([family]).splitlines() == [
        "# HELP x a \\\\ b\\nc",
        "# TYPE x gauge",
        'x{owner="n"} NaN',
        'x{owner="q\\"\\\\\\n"} +Inf',
    ]
