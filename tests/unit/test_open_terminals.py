"""A terminal left open is not a user, and GPUs left idle end an environment: the keys'
validation (one line, exit 2), nvidia-smi's output as the agent reads it (recorded
samples, through a stand-in nvidia-smi run as a real process), and the rules' deadlines."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from devenv.agent.presence.signs import (
    GpuReadError,
    GpuSample,
    GpuWatch,
    parse_gpu_query,
    read_gpus,
)
from devenv.cli.app import app
from devenv.cli.detail import render
from devenv.models import connected_idle, gpu_policy
from devenv.models.config import UtilizationPolicy
from devenv.models.deadline import compute, warn_at
from devenv.models.state import EnvSpec, EnvState, PresenceReport, Status, TerminationReason
from tests.unit.test_config_file import isolated_home, one_error_line, write

__all__ = ["isolated_home"]

SAMPLES = Path(__file__).parents[1] / "agent" / "gpu_samples"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> tuple[str, int]:
    """(output, exit code) of a recorded nvidia-smi run."""
    path = next(SAMPLES.glob(f"{name}.exit*.txt"))
    return path.read_text(), int(path.name.split(".exit")[1].split(".")[0])


def stand_in(tmp_path: Path, name: str) -> tuple[str, ...]:
    """An executable that prints a recorded sample and exits as nvidia-smi did."""
    _, code = sample(name)
    script = tmp_path / "nvidia-smi"
    path = next(SAMPLES.glob(f"{name}.exit*.txt"))
    script.write_text(f"#!/bin/sh\ncat '{path}'\nexit {code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return (str(script), "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits")


# --- nvidia-smi's output -----------------------------------------------------------------


def test_recorded_samples_parse_as_nvidia_smi_writes_them() -> None:
    assert parse_gpu_query(sample("two_gpus")[0]) == [GpuSample(0, 37.0), GpuSample(1, 0.0)]
    assert [s.utilization for s in parse_gpu_query(sample("eight_idle")[0])] == [0.0] * 8
    assert parse_gpu_query(sample("mig_na")[0]) == [GpuSample(0, None), GpuSample(1, None)]
    assert parse_gpu_query(sample("not_supported")[0]) == [GpuSample(0, None)]
    assert parse_gpu_query("0, 37 %\n") == [GpuSample(0, 37.0)], "without nounits"
    for error in ("driver_failed", "no_devices"):
        with pytest.raises(GpuReadError, match="nvidia-smi"):
            parse_gpu_query(sample(error)[0])
    with pytest.raises(GpuReadError):
        parse_gpu_query("")


@pytest.mark.parametrize(
    ("name", "quiet"),
    [("eight_idle", True), ("two_gpus", False), ("one_full", False), ("mig_na", False)],
)
def test_a_real_process_printing_each_sample_is_read(
    tmp_path: Path, name: str, quiet: bool
) -> None:
    """Quiet only when every GPU is under the minimum; one that cannot be read ([N/A])
    counts as busy: it must never end an environment."""
    watch = GpuWatch(10, interval=5, read=lambda: read_gpus(stand_in(tmp_path, name)))
    watch.poll(1000.0)
    assert watch.error is None
    assert (watch.quiet_since == 1000.0) is quiet
    watch.poll(1002.0)  # inside the interval: not sampled again
    watch.poll(1005.0)
    assert (watch.quiet_since == 1000.0) is quiet, "a quiet run keeps its start"


@pytest.mark.parametrize("name", ["driver_failed", "no_devices"])
def test_a_failing_nvidia_smi_is_an_error_never_quiet(tmp_path: Path, name: str) -> None:
    watch = GpuWatch(10, read=lambda: read_gpus(stand_in(tmp_path, name)))
    watch.poll(1000.0)
    assert watch.quiet_since is None
    assert watch.error is not None and "exited" in watch.error
    missing = GpuWatch(10, read=lambda: read_gpus(("/nonexistent/nvidia-smi",)))
    missing.poll(1000.0)
    assert missing.quiet_since is None and missing.error


# --- the keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("connected_idle: soon", "connected_idle"),
        ("connected_idle: -5m", "connected_idle"),
        ("connected_idle_cpu: lots", "connected_idle_cpu"),
        ("connected_idle_cpu: -1", "connected_idle_cpu"),
        ("connected_idle_cpu: true", "connected_idle_cpu"),
        ("utilization_policy: {min_gpu_utilization: 150, time_window: 30m}", "utilization_policy"),
        ("utilization_policy: {min_gpu_utilization: 10}", "utilization_policy"),
        ("utilization_policy: {min_gpu_utilization: 10, time_window: off}", "utilization_policy"),
    ],
)
def test_garbage_is_refused_in_one_line_exit_2(
    tmp_path: Path, isolated_home: Path, line: str, key: str
) -> None:
    path = write(tmp_path, f"type: dev-environment\nname: my-env\n{line}\n")
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2, result.output
    assert key in one_error_line(result.output)
    assert not (isolated_home / "envs").exists(), "nothing half-created"


def test_utilization_policy_is_refused_where_nvidia_smi_is_missing(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    path = write(
        tmp_path,
        "type: dev-environment\nname: my-env\n"
        "utilization_policy: {min_gpu_utilization: 10, time_window: 30m}\n",
    )
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert "utilization_policy" in line and "nvidia-smi" in line


def test_accepted_spellings() -> None:
    from devenv.backends.local.config import LocalConfig

    config = LocalConfig.model_validate(
        {"type": "dev-environment", "connected_idle": "2h", "connected_idle_cpu": "2.5%"}
    )
    assert (config.connected_idle, config.connected_idle_cpu) == (7200, 2.5)
    assert LocalConfig.model_validate({"type": "dev-environment"}).connected_idle_cpu == 5.0


# --- the rules -----------------------------------------------------------------------------


def running(**spec: object) -> EnvState:
    state = EnvState(
        spec=EnvSpec(name="box", user_public_key="ssh-ed25519 AAAA", **spec),  # type: ignore[arg-type]
        status=Status.RUNNING,
        created_at=T0,
        ready_at=T0,
        idle_since=T0,
    )
    return state


def test_a_connected_session_with_no_sign_of_life_counts_as_absent() -> None:
    s = running(inactivity_duration=600, connected_idle=1800)
    report = PresenceReport(connections=1, last_change=T0)
    connected_idle.note_signs(s, report, T0)
    s.connections = 1
    assert compute(s) == (T0 + timedelta(minutes=30), TerminationReason.CONNECTED_IDLE)
    # A keystroke later moves it; so does a busy moment; an instance clock ahead does not.
    typed = report.model_copy(update={"last_input": T0 + timedelta(minutes=10)})
    connected_idle.note_signs(s, typed, T0 + timedelta(minutes=11))
    assert compute(s)[0] == T0 + timedelta(minutes=40)
    busy = report.model_copy(update={"busy_at": T0 + timedelta(hours=5)})
    connected_idle.note_signs(s, busy, T0 + timedelta(minutes=20))
    assert compute(s)[0] == T0 + timedelta(minutes=50)
    # Warned in the terminal ahead by default, at most half the threshold.
    s.deadline, s.deadline_reason = compute(s)
    assert warn_at(s) == T0 + timedelta(minutes=40)
    # A running job keeps it whatever its terminals do; the rule off: any connection does.
    s.jobs = 1
    assert compute(s) == (None, None)
    s.jobs = 0
    assert compute(running(inactivity_duration=600))[1] != TerminationReason.CONNECTED_IDLE


def test_the_longer_idle_threshold_wins_and_ps_v_says_why() -> None:
    s = running(inactivity_duration=3600, connected_idle=600)
    connected_idle.note_signs(s, PresenceReport(connections=1, last_change=T0), T0)
    s.connections = 1
    s.deadline, s.deadline_reason = compute(s)
    assert s.deadline == T0 + timedelta(hours=1)
    text = "\n".join(render(s, T0 + timedelta(minutes=15)))
    assert "connected_idle 10m: no terminal input seen, processes under 5% of a core" in text
    assert "count as absent since 12:10:00Z" in text
    assert "(connected_idle)" in text


def test_gpus_under_the_minimum_for_the_window_end_it_even_while_connected() -> None:
    policy = UtilizationPolicy(min_gpu_utilization=10, time_window=1800)
    s = running(utilization_policy=policy)
    s.connections = 1
    quiet = PresenceReport(connections=1, last_change=T0, gpu_quiet_since=T0)
    assert gpu_policy.note(s, quiet, T0 + timedelta(seconds=5))
    assert compute(s) == (T0 + timedelta(minutes=30), TerminationReason.GPU_UNDERUTILIZED)
    # A probe's fresh sampler ("quiet since now") never moves it later...
    later = quiet.model_copy(update={"gpu_quiet_since": T0 + timedelta(minutes=29)})
    assert not gpu_policy.note(s, later, T0 + timedelta(minutes=30), probe=True)
    assert compute(s)[0] == T0 + timedelta(minutes=30)
    # ...but a GPU busy now keeps it.
    busy = quiet.model_copy(update={"gpu_quiet_since": None})
    assert gpu_policy.note(s, busy, T0 + timedelta(minutes=30), probe=True)
    assert compute(s) == (None, None)
    text = "\n".join(render(s, T0))
    assert "a GPU was in use at the last sample" in text


def test_the_login_banner_states_both_rules() -> None:
    from devenv.workflows.display import login_banner

    policy = UtilizationPolicy(min_gpu_utilization=10, time_window=3600)
    banner = login_banner(
        running(inactivity_duration=1800, connected_idle=7200, utilization_policy=policy)
    )
    assert "Open terminals: no keystroke and quiet processes for 2h count as absent" in banner
    assert "GPUs: it ends even in use with every GPU under 10% for 1h" in banner
    assert "Open terminals" not in login_banner(running(inactivity_duration=1800))


def test_the_forced_command_passes_the_cpu_share_and_the_gpu_minimum_to_the_agent() -> None:
    from devenv.backends.ssh.host_setup import forced_command

    plain = forced_command("/usr/bin/python3", "/var/lib/devenv/agent/a.py", "dv-box", 0)
    assert "--busy-cpu" not in plain and "--gpu-min" not in plain, "defaults: as before"
    both = forced_command(
        "/usr/bin/python3", "/var/lib/devenv/agent/a.py", "dv-box", 0, busy_cpu=2.5, gpu_min=10
    )
    assert "--busy-cpu 2.5" in both and "--gpu-min 10" in both
