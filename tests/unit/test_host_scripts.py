"""The shell scripts devenv runs on ssh hosts: shipped in the package (a plain
``pip install .``, not only an editable checkout), clean under shellcheck, and what the
backend sends is exactly the files' text."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from devenv.backends.ssh import (
    account_env,
    failsafe,
    host_scripts,
    host_setup,
    login_messages,
    suspension,
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "devenv" / "backends" / "ssh" / "scripts"
FILES = sorted(path.name for path in SCRIPTS.glob("*.sh"))

# Every script the backend sends, and the files it is made of.
SENT = {
    "INSPECT": (host_setup.INSPECT, ["prelude.sh", "inspect.sh"]),
    "INSTALL_AGENT": (host_setup.INSTALL_AGENT, ["prelude.sh", "install_agent.sh"]),
    "INSTALL_KEEPALIVE": (host_setup.INSTALL_KEEPALIVE, ["prelude.sh", "install_keepalive.sh"]),
    "CREATE": (host_setup.CREATE, ["prelude.sh", "create.sh"]),
    "TERMINATE": (host_setup.TERMINATE, ["prelude.sh", "end_processes.sh", "terminate.sh"]),
    "SUSPEND": (suspension.SUSPEND, ["prelude.sh", "end_processes.sh", "suspend.sh"]),
    "RESUME": (suspension.RESUME, ["prelude.sh", "resume.sh"]),
    "STATUS": (host_setup.STATUS, ["prelude.sh", "status.sh"]),
    "LIST": (host_setup.LIST, ["prelude.sh", "list.sh"]),
    "USER_RC": (host_setup.USER_RC, ["user_rc.sh"]),
    "WRITE_POLICY": (
        failsafe.WRITE_POLICY,
        ["prelude.sh", "failsafe_prelude.sh", "failsafe_write_policy.sh"],
    ),
    "START": (failsafe.START, ["prelude.sh", "failsafe_prelude.sh", "failsafe_start.sh"]),
    "STOP": (failsafe.STOP, ["prelude.sh", "failsafe_prelude.sh", "failsafe_stop.sh"]),
    "WRITE_BANNER": (login_messages.WRITE_BANNER, ["prelude.sh", "write_banner.sh"]),
    "SET_SHARED_KEYS": (login_messages.SET_SHARED_KEYS, ["prelude.sh", "set_shared_keys.sh"]),
    "TELL": (login_messages.TELL, ["prelude.sh", "tell.sh"]),
    "WRITE_ENV": (account_env.WRITE_ENV, ["prelude.sh", "write_env.sh"]),
    "RUN_INIT": (account_env.RUN_INIT, ["prelude.sh", "run_init.sh"]),
}


def test_every_script_file_is_sent_and_every_sent_script_is_its_files() -> None:
    used = {name for _, parts in SENT.values() for name in parts}
    assert used == set(FILES), "a script file nothing sends, or a script without its file"
    for what, (text, parts) in SENT.items():
        body = "".join((SCRIPTS / name).read_text().removeprefix("#!/bin/sh\n") for name in parts)
        assert text == body, what
        assert host_scripts.shipped_file(parts[-1]) in text


@pytest.mark.parametrize("what", sorted(SENT))
def test_every_sent_script_parses_as_sh(what: str) -> None:
    """``sh -n``: what the host's ``sh -c`` gets is one valid script (preludes included)."""
    done = subprocess.run(["sh", "-n", "-c", SENT[what][0]], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_shellcheck_passes_on_every_script() -> None:
    """CI (.ci/run) installs shellcheck; missing here is a failure, not a skip."""
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (apt-get install shellcheck)"
    done = subprocess.run(
        [shellcheck, *FILES], cwd=SCRIPTS, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_built_wheel_ships_every_script(tmp_path: Path) -> None:
    """What a non-editable ``pip install .`` installs: the package data includes them."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "devenv", source / "devenv", ignore=skip)
    wheels = tmp_path / "wheels"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(wheels)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = wheels.glob("devenv-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [name for name in FILES if f"devenv/backends/ssh/scripts/{name}" not in names]
    assert not missing
