"""Bad command lines, environment variables and keys: one line on stderr, exit code 2,
nothing created, and no server contacted (nothing listens at the configured address,
so reaching it would show up as a 'no Temporal server' line instead)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest
from typer.testing import CliRunner

from devenv.cli.app import app, run
from devenv.client import sshconfig
from devenv.models.state import InstanceInfo
from devenv.settings import Settings
from tests.unit.test_config_file import GOOD, isolated_home, one_error_line, write

__all__ = ["isolated_home"]  # the autouse fixture: DEVENV_HOME, HOME, a dead address

BAD_NAMES = [
    "my env",
    "a/b",
    "../etc",
    "a" * 200,
    "devenv-" + "a" * 200,
    "x;rm -rf ~",
    "$(reboot)",
    "`id`",
    "a|b",
    "a\nb",
    "UPPER",
    "devenv-",
    "devenv-my env",
    "",
]
NAME_COMMANDS = [
    ["ps"],
    ["signal", "--inactivity", "2h"],
    ["stop"],
    ["stop", "--wait"],
    ["ssh"],
    ["logs"],
]


@pytest.mark.parametrize("bad", BAD_NAMES, ids=lambda bad: repr(bad)[:20])
@pytest.mark.parametrize("command", NAME_COMMANDS, ids=" ".join)
def test_bad_names_are_refused_by_every_command_before_contacting_the_server(
    isolated_home: Path, command: list[str], bad: str
) -> None:
    args = [command[0], bad, *command[1:]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    line = one_error_line(result.output)
    assert line.startswith("error: NAME: invalid value"), line
    assert "devenv-NAME" in line
    assert len(line) < 300
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ps", "-x"], "No such option: -x (see `devenv ps --help`)"),
        (["ps", "a", "b"], "unexpected extra argument"),
        (["stop"], "Missing argument"),
        (["signal", "my-env", "--inactivity"], "'--inactivity' requires an argument"),
        (["launch"], "No such command 'launch'"),
        (["server", "--temporal-port", "0"], "--temporal-port"),
        (["server", "--temporal-port", "70000"], "--temporal-port"),
        (["server", "--ui-port", "x"], "--ui-port"),
    ],
)
def test_usage_errors_are_one_line_too(
    isolated_home: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    """Typer prints usage, a hint and a box; devenv prints what is wrong in one line."""
    assert run(args) == 2
    captured = capsys.readouterr()
    assert expected in one_error_line(captured.err)
    assert captured.out == ""
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DEVENV_TEMPORAL_ADDRESS", "localhost", "DEVENV_TEMPORAL_ADDRESS: invalid value"),
        ("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:99999", "accepted: HOST:PORT"),
        ("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:7233; rm -rf ~", "accepted: HOST:PORT"),
        ("DEVENV_TEMPORAL_ADDRESS", "http://127.0.0.1:7233", "accepted: HOST:PORT"),
        ("DEVENV_UI_PORT", "eighty", "DEVENV_UI_PORT: invalid value 'eighty'"),
        ("DEVENV_UI_PORT", "65536", "DEVENV_UI_PORT: invalid value"),
        ("DEVENV_TEMPORAL_TLS", "maybe", "DEVENV_TEMPORAL_TLS: invalid value 'maybe'"),
        ("DEVENV_TEMPORAL_NAMESPACE", "a b", "DEVENV_TEMPORAL_NAMESPACE: invalid value"),
    ],
)
@pytest.mark.parametrize(
    "command", [["ps"], ["logs", "my-env"], ["start", "FILE"], ["server", "stop"], ["server"]]
)
def test_bad_settings_are_one_line(
    tmp_path: Path,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    variable: str,
    value: str,
    expected: str,
) -> None:
    monkeypatch.setenv(variable, value)
    args = [str(write(tmp_path, GOOD)) if arg == "FILE" else arg for arg in command]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in one_error_line(result.output)
    assert not isolated_home.exists()


def test_the_api_key_stays_out_of_reprs_and_dumps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings travel into logs and error reports; the API key must never be printed."""
    monkeypatch.setenv("DEVENV_TEMPORAL_API_KEY", "sk-very-secret-123")
    settings = Settings.load()
    assert settings.tls, "an API key implies TLS unless DEVENV_TEMPORAL_TLS says otherwise"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "sk-very-secret-123"
    for text in (repr(settings), str(settings), settings.model_dump_json(), f"{settings}"):
        assert "sk-very-secret-123" not in text
    monkeypatch.setenv("DEVENV_TEMPORAL_TLS", "false")
    assert not Settings.load().tls


# -- the user's key ------------------------------------------------------------------------


def user_ssh_dir() -> Path:
    path = Path(os.environ["HOME"]) / ".ssh"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def user_keypair(comment: str = "me@laptop") -> tuple[Path, asyncssh.SSHKey]:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    private = user_ssh_dir() / "id_ed25519"
    key.write_private_key(str(private))
    private.chmod(0o600)
    return private, key


def start_line(tmp_path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["start", str(write(tmp_path, GOOD))])
    return result.exit_code, one_error_line(result.output)


def test_a_pub_file_with_two_keys_cannot_smuggle_an_internal_key(
    tmp_path: Path, isolated_home: Path
) -> None:
    """A second line in the .pub would become a second authorized key, with any options
    it carries (such as devenv-internal): refused before anything starts."""
    private, key = user_keypair()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    pub = private.with_name("id_ed25519.pub")
    pub.write_text(key.export_public_key().decode() + f"devenv-internal,no-pty {other}")
    code, line = start_line(tmp_path)
    assert code == 2
    assert "expected exactly one OpenSSH public key line, found 2" in line
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    "content",
    [
        "devenv-internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB+7IcLZLwWTW6TqshzLtNhkKwca2LMdN8OJ",
        "not a key at all",
        "",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA\n",
    ],
    ids=["options", "garbage", "empty", "private-key-as-pub"],
)
def test_a_pub_file_that_is_not_one_public_key_is_refused(
    tmp_path: Path, isolated_home: Path, content: str
) -> None:
    private, _ = user_keypair()
    private.with_name("id_ed25519.pub").write_text(content)
    code, line = start_line(tmp_path)
    assert code == 2
    assert "id_ed25519.pub" in line
    assert "PRIVATE" not in line
    assert not isolated_home.exists()


def test_a_private_key_others_can_read_is_refused(tmp_path: Path, isolated_home: Path) -> None:
    private, key = user_keypair()
    private.with_name("id_ed25519.pub").write_bytes(key.export_public_key())
    private.chmod(0o644)
    code, line = start_line(tmp_path)
    assert code == 2
    assert "chmod 600" in line
    assert not isolated_home.exists()


def test_the_public_key_is_passed_on_as_one_canonical_line(isolated_home: Path) -> None:
    from devenv.client.identity import user_key

    private, key = user_keypair("me@laptop")
    pub = private.with_name("id_ed25519.pub")
    pub.write_text("\n  " + key.export_public_key().decode().strip() + "  \n\n")
    line = user_key(Settings.load()).public_key
    assert line == key.export_public_key().decode().strip()
    assert "\n" not in line


# -- the generated ssh config --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
@pytest.mark.parametrize("folder", ["with space", "per%cent", "plain"])
def test_ssh_config_paths_with_spaces_and_percent_signs_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str
) -> None:
    """OpenSSH splits unquoted arguments at spaces and expands %-tokens in paths."""
    home = tmp_path / folder / "devenv-home"
    monkeypatch.setenv("DEVENV_HOME", str(home))
    settings = Settings.load()
    identity = tmp_path / folder / "id_ed25519"
    info = InstanceInfo(
        instance_id="t1",
        backend="local",
        host="127.0.0.1",
        port=2222,
        username="someone",
        host_public_key=asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode(),
        task_queue="devenv-host-test",
    )
    config = sshconfig.write_entry(settings, "my-env", info, identity)
    shown = subprocess.run(
        ["ssh", "-G", "-F", str(config), "my-env"], capture_output=True, text=True, timeout=10
    )
    assert shown.returncode == 0, shown.stderr
    options = dict(line.split(" ", 1) for line in shown.stdout.splitlines() if " " in line)
    assert options["port"] == "2222"
    assert options["userknownhostsfile"] == str(home / "ssh" / "hosts" / "my-env.known_hosts")
    assert options["identityfile"].replace("%%", "%") == str(identity)
    for path in (config, home / "ssh" / "hosts" / "my-env.conf"):
        assert path.stat().st_mode & 0o777 == 0o600


def test_paths_an_ssh_config_cannot_hold_are_refused(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEVENV_HOME", str(tmp_path / 'quote"d'))
    result = CliRunner().invoke(app, ["start", str(write(tmp_path, GOOD))])
    assert result.exit_code == 2
    assert "cannot be written to an ssh config" in one_error_line(result.output)
