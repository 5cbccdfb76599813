"""Jobs on an sshd host: the presence agent counts the account's devenv-keepalive jobs.

A real account on the harness sshd (127.0.0.1) starts jobs over ssh with the user key,
as `devenv run` and a user in tmux do; the agent's stream, read through the internal
key, says ``"jobs": N`` in every line. Plus the pure rule over process tables.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from devenv.agent import keepalive
from devenv.agent.presence.failsafe import FailsafeWatcher
from devenv.agent.presence.lines import report
from devenv.agent.presence.table import Proc, count_jobs, is_job_process
from tests.agent.streams import AGENT_NAME, SYSTEM_PYTHON, AgentStream, Keys
from tests.agent.test_process_tables import interpreters
from tests.support.sshd import Account, Sshd, wait_until

pytestmark = pytest.mark.e2e

OpenStream = Callable[..., AgentStream]
UID = 1234


def proc(pid: int, ppid: int, *argv: str, uid: int = UID) -> Proc:
    return Proc(pid, ppid, uid, tuple(argv), 100.0)


# --- the rule, over process tables ---------------------------------------------------


def test_a_job_is_a_keepalive_process_whatever_runs_it() -> None:
    for argv in (
        ("/usr/bin/python3", "/var/lib/devenv/agent/keepalive-1.py", "--", "make"),
        ("/usr/bin/python3", "/opt/venv/bin/devenv-keepalive", "sleep", "9"),
        ("python3", "/src/devenv/agent/keepalive.py", "--id", "x", "--log", "--", "make"),
        ("/bin/sh", "/usr/local/bin/devenv-keepalive", "--detach", "--", "make"),
        ("/usr/bin/python3", "/var/lib/devenv/agent/keepalive-1.py"),
    ):
        assert is_job_process(proc(10, 1, *argv)), argv
    for argv in (
        ("/usr/bin/python3", "/var/lib/devenv/agent/keepalive-1.py", "--jobs"),
        ("/usr/bin/python3", "/var/lib/devenv/agent/keepalive-1.py", "--job-log", "a"),
        ("devenv-keepalive", "--help"),
        ("python3", "/home/me/keepalive.py", "--", "make"),  # somebody else's keepalive.py
        ("vim", "devenv-keepalive"),  # editing it is no job
        ("make", "build"),
        (),
    ):
        assert not is_job_process(proc(10, 1, *argv)), argv


def test_jobs_are_counted_once_per_keepalive_and_only_for_the_account() -> None:
    ka = ("/usr/bin/python3", "/var/lib/devenv/agent/keepalive-1.py")
    procs = [
        proc(10, 1, *ka, "--detach", "--", "train"),  # detaching: its parent still waits
        proc(11, 10, *ka, "--", "train"),  # the job it started: one job, not two
        proc(12, 11, "train"),
        proc(20, 1, *ka, "--", "sleep", "9"),
        proc(21, 20, *ka, "--", "sleep", "9"),  # forked, before exec: still one
        proc(30, 1, *ka, "--", "make", uid=UID + 1),  # another account's
        proc(40, 1, *ka, "--jobs"),  # a listing
    ]
    assert count_jobs(procs, UID) == 2
    assert count_jobs(procs[1:], UID) == 2  # the detaching parent gone: still 2
    assert count_jobs([], UID) == 0


def test_report_lines_carry_jobs_when_given() -> None:
    line = report([], {}, 0.0, "2030-01-01T00:00:00+00:00", 2)
    assert line["jobs"] == 2 and line["connections"] == 0


# --- the file that is shipped ---------------------------------------------------------


def test_keepalive_parses_as_python_3_8_and_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(keepalive.__file__).read_text(), feature_version=(3, 8))
    modules = {
        alias.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import)
        for alias in n.names
    }
    modules |= {
        n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
    }
    assert modules - {"__future__"} <= set(sys.stdlib_module_names), modules
    attributes = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not attributes & {"removeprefix", "removesuffix", "UTC", "cache", "is_relative_to"}


@pytest.mark.parametrize("python", interpreters())
def test_keepalive_runs_a_job_on_every_python(python: str, tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    ran = subprocess.run(
        [python, keepalive.__file__, "--id", "j", "--log", "--", "sh", "-c", "echo hi; exit 5"],
        capture_output=True,
        env=env,
        timeout=30,
    )
    assert (ran.returncode, ran.stdout) == (5, b"hi\n"), ran.stderr
    listed = subprocess.run(
        [python, keepalive.__file__, "--jobs"], capture_output=True, env=env, timeout=30, check=True
    )
    (record,) = json.loads(listed.stdout)
    assert (record["id"], record["state"], record["exit_code"]) == ("j", "exited", 5)
    assert (tmp_path / ".devenv" / "jobs" / "j.log").read_bytes() == b"hi\n"


# --- on a real sshd ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keepalive_path(agent_path: Path) -> Path:
    """devenv-keepalive beside the agent, readable by any account (0644 in a 0755 folder)."""
    target = agent_path.parent / "devenv-keepalive"
    shutil.copyfile(keepalive.__file__, target)
    target.chmod(0o644)
    return target


def as_user(sshd: Sshd, account: Account, keys: Keys, command: str) -> str:
    result = sshd.ssh(account.name, keys.user, command)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def records(sshd: Sshd, account: Account, keys: Keys, keepalive_file: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    listed = as_user(sshd, account, keys, f"{SYSTEM_PYTHON} {keepalive_file} --jobs")
    return {record["id"]: record for record in json.loads(listed.strip().splitlines()[-1])}


def test_the_agent_counts_jobs_until_they_end(
    sshd: Sshd, account: Account, keys: Keys, streams: OpenStream, keepalive_path: Path
) -> None:
    stream = streams(account)
    start = stream.wait_for(lambda line: line["jobs"] == 0, "no jobs at first")
    ka = f"{SYSTEM_PYTHON} {keepalive_path}"

    # By hand in the background of a shell that leaves (tmux, nohup), logged.
    as_user(sshd, account, keys, f"nohup {ka} --id hand --log -- sleep 600 >/dev/null 2>&1 &")
    one = stream.wait_for(
        lambda line: line["jobs"] == 1 and line["connections"] == 0, "one job, nobody", start
    )
    # As `devenv run --detach` does: the id printed once the job runs.
    assert as_user(sshd, account, keys, f"{ka} --id bg --detach -- sleep 600").strip() == "bg"
    two = stream.wait_for(lambda line: line["jobs"] == 2, "two jobs", one)

    # A listing is not a job; it sees both running, their commands and logs.
    found = records(sshd, account, keys, keepalive_path)
    assert {key: (r["state"], r["command"]) for key, r in found.items()} == {
        "hand": ("running", ["sleep", "600"]),
        "bg": ("running", ["sleep", "600"]),
    }
    assert found["bg"]["log"] == str(account.home / ".devenv" / "jobs" / "bg.log")
    assert all(line["jobs"] <= 2 for line in stream.lines[two:])

    # The failsafe of an EC2 machine counts a job as in use, like a user.
    # (told the file the agent runs as, as the failsafe command is by its argv)
    # (the listing's ssh session above may take a moment to go: wait, do not race it)
    watcher = FailsafeWatcher(account.name, account.uid, 0, AGENT_NAME)
    wait_until(lambda: watcher.observe()[:2] == (2, 2), 10, "the failsafe to count 2 jobs")
    users, counted, _ = watcher.observe()
    assert (users, counted) == (2, 2)

    # A job ends with its command: SIGTERM to the keepalive reaches the command.
    as_user(sshd, account, keys, f"kill -TERM {found['hand']['pid']}")
    back = stream.wait_for(lambda line: line["jobs"] == 1, "one job left", two)
    # One killed without a word no longer counts either, and is listed as lost.
    as_user(sshd, account, keys, f"kill -KILL {found['bg']['pid']}")
    stream.wait_for(lambda line: line["jobs"] == 0, "no job left", back)
    found = records(sshd, account, keys, keepalive_path)
    assert (found["hand"]["state"], found["hand"]["exit_code"]) == ("exited", 143)
    assert found["bg"]["state"] == "lost"

    # A second reader (devenv's probe is one) gets jobs in its first line too.
    again = streams(account)
    assert again.lines[again.wait_for(lambda line: True, "a first line")]["jobs"] == 0


def test_a_job_lasting_through_a_connection_changes_last_change_when_it_ends(
    sshd: Sshd, account: Account, keys: Keys, streams: OpenStream, keepalive_path: Path
) -> None:
    """The idle clock starts when the last job ends: ``last_change`` moves then."""
    stream = streams(account)
    first = stream.wait_for(lambda line: True, "the first line")
    ka = f"{SYSTEM_PYTHON} {keepalive_path}"
    done = account.home / "done"
    as_user(
        sshd,
        account,
        keys,
        f"nohup {ka} -- sh -c 'while [ ! -e {done} ]; do sleep 0.05; done' >/dev/null 2>&1 &",
    )
    running = stream.wait_for(lambda line: line["jobs"] == 1, "the job", first)
    as_user(sshd, account, keys, f"touch {done}")
    ended = stream.wait_for(lambda line: line["jobs"] == 0, "the job's end", running)
    assert stream.lines[ended]["last_change"] > stream.lines[running]["last_change"]
    wait_until(
        lambda: (
            not any(
                b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes()
                for pid in account.pids()
                if Path(f"/proc/{pid}/cmdline").exists()
            )
        ),
        10,
        "the job's processes to end",
    )
