"""`devenv hosts add|list|remove` as the server's admin uses them: the registry of ssh
host pools, checked on the way in, private on disk, never quoting a file it cannot use."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.e2e.harness import DEVENV

SECRET = f"devenv_{secrets.token_urlsafe(24)}"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    variables = {key: value for key, value in os.environ.items() if not key.startswith("DEVENV_")}
    return {
        **variables,
        "DEVENV_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "COLUMNS": "200",
    }


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "admin_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    known = tmp_path / "known_hosts"
    known.write_text(f"gpu-1.lan {' '.join(Path(f'{key}.pub').read_text().split()[:2])}\n")
    return key, known


def hosts(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEVENV, "hosts", *args], env=env, capture_output=True, text=True, timeout=60
    )


def error(result: subprocess.CompletedProcess[str]) -> str:
    assert (result.returncode, result.stdout) == (2, ""), result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert SECRET not in result.stderr
    return lines[0]


def test_a_pool_is_added_listed_replaced_and_removed(
    env: dict[str, str], files: tuple[Path, Path], tmp_path: Path
) -> None:
    key, known = files
    added = hosts(env, "add", "gpu-boxes", "--host", "gpu-1.lan", "--host", "10.0.0.7:2222",
                  "--identity-file", str(key), "--known-hosts", str(known))  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stderr.splitlines() == [
        f"warning: 10.0.0.7:2222 has no key in {known}: it will be refused until its key is "
        "pinned there",
        "Added host pool gpu-boxes (2 hosts); users start on it with ssh_config: {pool: gpu-boxes}",
    ]
    registry = tmp_path / "home" / "host-pools.json"
    assert os.stat(registry).st_mode & 0o777 == 0o600
    assert "PRIVATE KEY" not in registry.read_text(), "paths only, never key material"

    again = hosts(env, "add", "gpu-boxes", "--host", "gpu-1.lan", "--identity-file", str(key),
                  "--known-hosts", str(known))  # fmt: skip
    assert error(again) == (
        "error: a host pool named 'gpu-boxes' exists already; `devenv hosts add gpu-boxes ... "
        "--replace` to change it"
    )
    replaced = hosts(env, "add", "gpu-boxes", "--host", "gpu-1.lan", "--user", "deploy",
                     "--identity-file", str(key), "--known-hosts", str(known),
                     "--replace")  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    listed = json.loads(hosts(env, "list", "--json").stdout)
    assert [(p["name"], p["hosts"], p["user"]) for p in listed] == [
        ("gpu-boxes", ["gpu-1.lan"], "deploy")
    ]
    assert listed[0]["identity_file"] == str(key)

    assert error(hosts(env, "remove", "cpu")) == (
        "error: NAME: no host pool named 'cpu' (registered: gpu-boxes)"
    )
    removed = hosts(env, "remove", "gpu-boxes")
    assert removed.returncode == 0 and "Removed host pool gpu-boxes" in removed.stderr
    assert json.loads(hosts(env, "list", "--json").stdout) == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["add", "GPU", "--host", "h"], "error: NAME: invalid value 'GPU': accepted: 1 to 40"),
        (["add", "gpu", "--host", "-oProxyCommand=x"], "error: --host: invalid value"),
        (["add", "gpu", "--host", "h", "--port", "0"], "error: --port: invalid value 0"),
        (["add", "gpu", "--host", "h", "--user", "ro ot"], "error: --user: invalid value"),
    ],
)
def test_bad_values_are_one_line_and_register_nothing(
    env: dict[str, str], files: tuple[Path, Path], tmp_path: Path, args: list[str], expected: str
) -> None:
    key, known = files
    result = hosts(env, *args, "--identity-file", str(key), "--known-hosts", str(known))
    assert error(result).startswith(expected)
    assert not (tmp_path / "home" / "host-pools.json").exists()


def test_a_damaged_registry_is_named_not_quoted(env: dict[str, str], tmp_path: Path) -> None:
    registry = tmp_path / "home" / "host-pools.json"
    registry.parent.mkdir(parents=True)
    registry.write_text(f'{{"{SECRET}": 1}}\n')
    assert error(hosts(env, "list")) == (
        f"error: {registry}: not a devenv host pools file; restore it or move it away"
    )
