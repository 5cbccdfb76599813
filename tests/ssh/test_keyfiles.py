"""Key files are read without ever quoting them, and admin-only keys are found by shape.

asyncssh's own messages quote what they cannot parse (``Invalid known hosts entry:
<the line>``); devenv's name the file, the line and what is wrong instead. And which
configuration keys an API user may not send is read off the backends' models: a
key marked admin-only, or any key holding a path, in any backend's section.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from devenv.api.admin_only import refused_keys
from devenv.backends import registry
from devenv.backends.ssh import keyfiles
from devenv.backends.ssh.admin import AdminAccess, Endpoint, read_identity, trusted_host_keys
from devenv.models.config import EnvironmentConfig

SECRET = f"devenv_{secrets.token_urlsafe(24)}"


def keygen(path: Path, passphrase: str = "") -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-f", str(path)], check=True
    )
    return path


def message(call: object, *args: object) -> str:
    with pytest.raises(Exception) as raised:  # KeyFileError, or an AdminError
        call(*args)  # type: ignore[operator]
    text = str(raised.value)
    assert SECRET not in text and "\n" not in text
    return text


def test_a_known_hosts_line_that_is_wrong_is_named_by_number(tmp_path: Path) -> None:
    key = keygen(tmp_path / "host")
    good = f"127.0.0.1 {' '.join(Path(f'{key}.pub').read_text().split()[:2])}"
    path = tmp_path / "known_hosts"
    path.write_text(f"# pinned\n{good}\n\n{SECRET}\n")
    assert message(keyfiles.read_known_hosts, path) == (
        f"{path} line 4: not a known_hosts entry (expected 'HOST KEYTYPE BASE64', as "
        "ssh-keyscan prints)"
    )
    admin = message(trusted_host_keys, Endpoint("127.0.0.1", 22), path)
    assert admin.startswith(f"ssh_config.known_hosts: cannot read {path} line 4: ")

    path.write_text(f"{good}\n")
    keys, *_ = keyfiles.read_known_hosts(path).match("127.0.0.1", "", None)
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (f"{SECRET}\n".encode(), "line 1 is not the start of a private key"),
        (
            f"-----BEGIN SECRET {SECRET}-----\nAAAA\n-----END X-----\n".encode(),
            "line 1 is not the start of a private key",
        ),
        (
            f"-----BEGIN OPENSSH PRIVATE KEY-----\n{SECRET}\n-----END OPENSSH PRIVATE KEY-----\n"
            "".encode(),
            "not a private key devenv can use",
        ),
        (b"\n\n", "empty file, not a private key"),
        (b"ok\n\xff" + SECRET.encode(), "line 2: not UTF-8 text"),
    ],
    ids=["bare-secret", "fake-header", "bad-body", "empty", "not-utf8"],
)
def test_a_private_key_that_is_not_one_is_never_quoted(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "admin_key"
    path.write_bytes(content)
    assert expected in message(keyfiles.read_private_key, path)
    access = AdminAccess("root", path, tmp_path / "known_hosts")
    assert message(read_identity, access).startswith(f"ssh_config.identity_file: cannot use {path}")


def test_unreadable_encrypted_and_huge_files_say_why(tmp_path: Path) -> None:
    assert keyfiles.read_private_key(keygen(tmp_path / "plain")).algorithm == b"ssh-ed25519"
    encrypted = keygen(tmp_path / "locked", passphrase="pass phrase")
    assert message(keyfiles.read_private_key, encrypted).endswith("encrypted with a passphrase")
    assert message(keyfiles.read_private_key, tmp_path / "nope").endswith(
        "no such file or directory"
    )
    assert message(keyfiles.read_known_hosts, tmp_path).endswith("is a directory")
    huge = tmp_path / "huge"
    huge.write_bytes(b"x" * (keyfiles.MAX_KEY_FILE_BYTES + 1))
    assert "larger than" in message(keyfiles.read_known_hosts, huge)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate: Path | None = None
    label: str = ""


class _ToyConfig(EnvironmentConfig):
    backend: str = "toy-files"
    toy: _Section = _Section()


@pytest.fixture
def toy_backend() -> Iterator[None]:
    registry.register(
        registry.BackendEntry("toy-files", f"{__name__}:_ToyConfig", f"{__name__}:_ToyConfig")
    )
    try:
        yield
    finally:
        registry.unregister("toy-files")


def test_any_path_key_of_any_backend_is_admin_only(toy_backend: None) -> None:
    """A new backend's file key is refused to API users without anyone listing it."""
    config = {
        "backend": "toy-files",
        "toy": {"certificate": "/etc/shadow", "label": "x"},
        "ssh_config": {"pool": "gpu", "purge_workspace": True},
    }
    assert refused_keys(config) == ["toy.certificate"]
    assert refused_keys({"ssh_config": {"pool": "gpu", "purge_workspace": True}}) == []
    assert refused_keys({"ssh_config": "not a section", "toy": []}) == []


def test_where_the_server_connects_is_admin_only_on_aws() -> None:
    """aws.ssh_endpoint names the address the worker logs in to: a non-admin naming
    127.0.0.1:22 would point the server at its own hosts."""
    aws = {"backend": "aws", "aws": {"region": "eu-west-1", "ssh_endpoint": "127.0.0.1:22"}}
    assert refused_keys(aws) == ["aws.ssh_endpoint"]
    assert refused_keys({"backend": "aws", "aws": {"region": "eu-west-1"}}) == []
