"""Removing a user on an ssh host (issue 19, finding 4): `devenv users remove` returns
once the account's authorized_keys holds no key of theirs; real sshd, real OpenSSH."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devenv.backends.ssh.host_setup import account_name
from tests.e2e.harness import wait_for
from tests.ssh.test_e2e import World, world

pytestmark = pytest.mark.e2e
__all__ = ["world"]


def test_a_removed_members_key_is_out_of_the_hosts_authorized_keys_when_remove_returns(
    world: World, tmp_path: Path
) -> None:
    devenv = world.devenv
    name, path = world.config(tmp_path)
    devenv.run("start", str(path))
    key = tmp_path / "hank_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    devenv.run("users", "add", "hank", "--key", f"{key}.pub")
    entry = (devenv.home / "ssh" / "hosts" / f"{name}.conf").read_text()
    hank_config = tmp_path / "hank.conf"
    hank_config.write_text(
        "\n".join(
            f"    IdentityFile {key}" if line.strip().startswith("IdentityFile") else line
            for line in entry.splitlines()
        )
        + "\n"
    )

    def as_hank() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(hank_config), "-o", "BatchMode=yes", name, "id -un"],
            capture_output=True,
            text=True,
            timeout=30,
        )

    devenv.run("share", name, "--with", "hank")
    wait_for(lambda: as_hank().returncode == 0, 20, "hank's key accepted")
    assert as_hank().stdout.strip() == account_name(name)

    removed = devenv.run("users", "remove", "hank")
    assert as_hank().returncode == 255, "refused as soon as the command returned"
    assert removed.stderr.splitlines() == [
        "Removed hank; their token no longer works.",
        f"No longer shared with hank: {name}.",
    ]
    assert "shared_with" not in world.ps(name)
    assert devenv.ssh(name, "true").returncode == 0, "the owner's key still works"
    assert world.ps(name)["status"] == "running"
    devenv.run("stop", name, "--wait")
