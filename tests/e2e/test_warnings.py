"""Never surprised, as a user lives it: a warning before the end (events, a webhook on
loopback), extend and stop-at from the CLI and the SDK, and the question before a change
that would end the environment at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import Devenv, wait_for
from tests.support.webhook import Hook

pytestmark = pytest.mark.e2e


def config(tmp_path: Path, name: str, **keys: Any) -> Path:
    doc = {"type": "dev-environment", "name": name, **keys}
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_warning_reaches_the_webhook_and_the_events_and_extend_cancels_it(
    devenv: Devenv, tmp_path: Path, hook: Hook
) -> None:
    name = "e2e-warn"
    path = config(
        tmp_path,
        name,
        inactivity_duration="8s",
        warn_before="6s",
        notify={"webhook": hook.url},
    )
    devenv.run("start", str(path))
    body = wait_for(lambda: hook.bodies and hook.bodies[0], 20, "the webhook's warning")
    assert body["environment"] == name
    assert body["reason"] == "inactivity_duration_exceeded"
    assert body["extend_command"] == f"devenv signal {name} --extend 1h"
    assert body["text"].startswith(f"warning: {name} terminates at ")
    assert "in 6s" in body["text"] and body["owner"]
    row = devenv.ps(name)
    assert row["status"] == "running" and row["warned"] is True
    assert "terminating in" in devenv.run("ps", name).stdout
    deadline = datetime.fromisoformat(row["deadline"])
    assert datetime.fromisoformat(body["deadline"]) == deadline

    extended = devenv.run("signal", name, "--extend", "1h")
    assert "Deadline:" in extended.stdout
    row = devenv.ps(name)
    assert datetime.fromisoformat(row["deadline"]) == deadline + timedelta(hours=1)
    assert row["inactivity_duration"] == 8, "extend never changes the threshold"
    assert "warned" not in row, "the warning was for the old deadline"
    logs = devenv.run("logs", name).stdout
    assert "warning:" in logs and "deadline extended by 1h" in logs
    assert "pending termination at" in logs and "cancelled: the deadline is now" in logs

    # The webhook URL is a secret: it never reaches the workflow's history or the logs.
    history = devenv.run("logs", name, "--json").stdout
    assert "secret-token-123" not in history and "secret-token-123" not in logs
    devenv.run("stop", name, "--wait")


def test_stop_at_ends_it_at_that_time_whatever_the_activity(devenv: Devenv, tmp_path: Path) -> None:
    from devenv.client.sync import Client

    name = "e2e-stop-at"
    devenv.run("start", str(config(tmp_path, name, inactivity_duration="1h")))
    session = devenv.open_session(name)
    try:
        session.send("echo in-$((6*7))\n")
        session.expect("in-42")
        client = Client(address=f"127.0.0.1:{devenv.temporal_port}", home=devenv.home)
        at = datetime.now(UTC) + timedelta(seconds=4)
        status = client.get(name).update(stop_at=at)
        assert status.deadline is not None and abs(status.deadline - at) < timedelta(seconds=1)
        row = wait_for(
            lambda: (r := devenv.ps(name))["status"] == "terminated" and r, 20, "the stop"
        )
        # The user's session ends with the environment.
        wait_for(lambda: session.process.poll() is not None, 15, "the session to end")
    finally:
        if session.process.poll() is None:
            session.close()
    assert row["termination_reason"] == "scheduled_stop"
    assert "scheduled stop at" in devenv.run("logs", name).stdout


def test_bad_stop_at_and_extend_are_one_line_exit_2(devenv: Devenv, tmp_path: Path) -> None:
    name = "e2e-bad-end"
    devenv.run("start", str(config(tmp_path, name, inactivity_duration="1h")))
    try:
        past = devenv.run("signal", name, "--stop-at", "2001-01-01T00:00", check=False)
        assert past.returncode == 2 and "--stop-at:" in past.stderr and "in the past" in past.stderr
        word = devenv.run("signal", name, "--stop-at", "teatime", check=False)
        assert word.returncode == 2 and "accepted: HH:MM" in word.stderr
        zero = devenv.run("signal", name, "--extend", "0", check=False)
        assert zero.returncode == 2 and "--extend" in zero.stderr
        assert devenv.ps(name)["inactivity_duration"] == 3600
    finally:
        devenv.run("stop", name, "--wait")


def in_terminal(devenv: Devenv, *args: str, answer: str) -> tuple[int, str]:
    """Run ``devenv ARGS`` on a pseudo-terminal, answer its question, return (code, output)."""
    import os
    import pty
    import subprocess

    from tests.e2e.harness import DEVENV

    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [DEVENV, *args], stdin=follower, stdout=follower, stderr=follower, env=devenv.env
    )
    os.close(follower)
    seen = b""
    answered = False
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the command ended
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"Go on?" in seen:
            os.write(leader, answer.encode() + b"\n")
            answered = True
    os.close(leader)
    return process.wait(30), seen.decode(errors="replace")


def test_in_a_terminal_a_change_that_ends_it_at_once_asks_first(
    devenv: Devenv, tmp_path: Path
) -> None:
    name = "e2e-ask"
    devenv.run("start", str(config(tmp_path, name, inactivity_duration="1h")))
    idle_since = datetime.fromisoformat(devenv.ps(name)["idle_since"])
    wait_for(lambda: datetime.now(UTC) - idle_since > timedelta(seconds=2), 10, "2s of idleness")
    code, shown = in_terminal(devenv, "signal", name, "--inactivity", "1s", answer="n")
    assert "longer than 1s" in shown and f"{name} would be terminated now. Go on?" in shown
    assert code == 1 and "Nothing changed." in shown
    assert devenv.ps(name)["inactivity_duration"] == 3600
    code, shown = in_terminal(devenv, "signal", name, "--inactivity", "1s", "--yes", answer="n")
    assert code == 0 and "Go on?" not in shown and "terminating now" in shown
    row = wait_for(lambda: (r := devenv.ps(name))["status"] == "terminated" and r, 20, "the end")
    assert row["termination_reason"] == "inactivity_duration_exceeded"


def test_the_login_banner_says_the_rules_and_a_fixed_end_is_written_into_the_terminal(
    devenv: Devenv, tmp_path: Path
) -> None:
    """A real ssh -tt session: the banner at login, then (max_duration coming while the
    user is connected) the warning in the terminal, once; ``ssh NAME cmd`` gets no banner."""
    name = "e2e-wall"
    path = config(tmp_path, name, inactivity_duration="1h", max_duration="25s", warn_before="15s")
    devenv.run("start", str(path))
    plain = devenv.ssh(name, "echo", "plain")
    assert plain.stdout == "plain\n"  # commands and scripts never see the banner
    # The banner is pushed right after the environment is ready (a few ms later).
    wait_for(lambda: list(devenv.home.glob(f"envs/{name}/instances/*/banner.txt")), 10, "banner")
    session = devenv.open_session(name)
    try:
        session.expect(f"devenv: this is '{name}' (backend local).")
        session.expect("Idle rule: terminated 1h after the last user leaves")
        session.expect("even in use (max_duration 25s).")
        session.expect(f"Keep it longer: devenv signal {name} --extend 1h")
        text = session.expect_terminal_warning(name, timeout=30)
    finally:
        session.kill()
    assert text.count("*** devenv:") == 1
    assert "(max_duration 25s)" in text
    logs = devenv.run("logs", name).stdout
    assert "warning written to 1 open terminal" in logs
