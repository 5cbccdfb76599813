"""Connection settings that do not fit the server are named in one whole line that says
which setting to change, never 'start a server' when one runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import DEVENV, Devenv

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("args", [["ps"], ["start", "EXAMPLE", "--name", "never", "--detach"]])
def test_tls_against_a_plaintext_server_says_so_and_how_to_fix_it(
    devenv: Devenv, example: Path, args: list[str]
) -> None:
    argv = [str(example) if arg == "EXAMPLE" else arg for arg in args]
    result = subprocess.run(
        [DEVENV, *argv],
        env={**devenv.env, "DEVENV_TEMPORAL_TLS": "true"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error: TLS handshake with the Temporal server at 127.0.0.1:{devenv.temporal_port} "
        "failed: it speaks plaintext; set DEVENV_TEMPORAL_TLS=false (or unset it) for this "
        "server\n"
    )
