"""`init` and `env` through the real CLI, server, local backend and OpenSSH client:
init runs once at the first start and its output is in `devenv logs NAME --init`; env
reaches every session and job; a value passed by name (a bare KEY) is a secret, found
in no history, memo, file, log or output; a failing init fails the start with its last
lines and leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.harness import DEVENV, Devenv
from tests.security.test_secrets import history_text, walk

pytestmark = pytest.mark.e2e


def start_with(
    devenv: Devenv, path: Path, extra: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """`devenv start FILE` with ``extra`` in the caller's environment only."""
    return subprocess.run(
        [DEVENV, "start", str(path)],
        env=devenv.env | extra,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_init_runs_in_the_workspace_and_env_reaches_sessions_and_jobs_secrets_stay_out(
    devenv: Devenv, tmp_path: Path
) -> None:
    name = "init-env-ok"
    secret = f"planted-{uuid.uuid4().hex}"
    path = tmp_path / "dev.yml"
    path.write_text(
        f"type: dev-environment\nname: {name}\n"
        "env:\n  - GREETING=hello world\n  - PASSED_TOKEN\n"
        "init:\n"
        "  - echo made > made.txt\n"
        '  - echo "token is $PASSED_TOKEN, greeting is $GREETING"\n'
    )
    outputs: list[str] = []
    try:
        started = start_with(devenv, path, {"PASSED_TOKEN": secret})
        assert started.returncode == 0, started.stderr
        outputs += [started.stdout, started.stderr]

        made = devenv.ssh(name, "cat made.txt")
        assert made.returncode == 0, made.stderr
        assert made.stdout == "made\n"
        echoed = devenv.ssh(name, 'echo "$GREETING|$PASSED_TOKEN"')
        assert echoed.returncode == 0, echoed.stderr
        assert echoed.stdout == f"hello world|{secret}\n"
        job = devenv.run("run", name, "--", "sh", "-c", 'echo "job sees $GREETING"')
        assert "job sees hello world" in job.stdout

        log = devenv.run("logs", name, "--init").stdout
        assert log.splitlines() == [
            "$ echo made > made.txt",
            '$ echo "token is $PASSED_TOKEN, greeting is $GREETING"',
            "token is ***, greeting is hello world",
        ]
        for args in (("logs", name), ("ps", "--all", "--json"), ("ps", name, "-v")):
            done = devenv.run(*args)
            outputs += [done.stdout, done.stderr]
        outputs.append(json.dumps(devenv.ps(name)))
    finally:
        devenv.run("stop", name, "--wait", check=False, timeout=60)
    histories = asyncio.run(history_text(devenv))
    assert secret not in histories, "a secret in a workflow's history or memo"
    assert all(secret not in text for text in outputs), "a secret in a command's output"
    server_out = (devenv.root / "server.out").read_text(errors="replace")
    assert secret not in server_out
    leaked = [
        str(p) for p in walk(devenv.home) if p.is_file() and secret.encode() in p.read_bytes()
    ]
    assert leaked == [], "its stored copy is removed when the environment ends"


def test_a_failing_init_fails_the_start_with_its_last_lines_and_leaves_nothing(
    devenv: Devenv, tmp_path: Path
) -> None:
    name = "init-env-fails"
    path = tmp_path / "dev.yml"
    path.write_text(
        f"type: dev-environment\nname: {name}\n"
        "init:\n  - echo first\n"
        "  - for i in $(seq 1 30); do echo line-$i; done; echo '[/] [bold]not markup'; exit 3\n"
    )
    try:
        started = start_with(devenv, path, {})
        assert started.returncode != 0
        said = started.stdout + started.stderr
        assert "init command 2/2" in said and "exited with status 3" in said, said
        assert "line-30" in said and "line-12" in said and "[/] [bold]not markup" in said
        assert "line-11\n" not in said, "at most the last 20 lines"
        assert "Traceback" not in said
        assert devenv.ps(name)["status"] == "failed"
        events = devenv.run("logs", name).stdout
        assert "[/] [bold]not markup" in events and "line-30" in events
        leftovers = json.loads(devenv.run("gc", "--json").stdout)["leftovers"]
        assert [row for row in leftovers if row.get("name") == name] == []
    finally:
        devenv.run("stop", name, "--wait", check=False, timeout=60)
