"""The CLI is presentation over the SDK: no Temporal in devenv/cli, cheap to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import devenv

CLI = Path(devenv.__file__).parent / "cli"


def test_no_module_of_the_cli_imports_temporal_or_ssh() -> None:
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not name.startswith(("temporalio", "asyncssh")), f"{path.name}: {name}"


def test_starting_the_cli_loads_neither_temporal_nor_ssh() -> None:
    probe = (
        "import sys, devenv.cli.app; "
        "print(sorted(m for m in ('temporalio', 'asyncssh', 'cryptography') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_version() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "devenv"), "--version"], capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (0, f"devenv {devenv.__version__}\n")
