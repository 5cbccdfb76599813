"""``backend: ssh`` configuration and the pure parts of the backend (no host needed).

Bad configuration is refused before anything starts, in one line naming the file and
the key; host selection and account names are pure functions tested on their own.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from devenv.backends.ssh.admin import AdminError, Endpoint, HostDownError
from devenv.backends.ssh.backend import _Candidate, _choose
from devenv.backends.ssh.config import CHECK_FILES, SshConfig, parse_host
from devenv.backends.ssh.host_setup import (
    AccountConflictError,
    HostNotSupportedError,
    HostReport,
    InstanceTerminatedError,
    account_name,
    authorized_keys,
    check_host_dir,
    forced_command,
    key_line,
)
from devenv.cli.app import app
from devenv.config.loader import load_config
from devenv.errors import ConfigError
from devenv.keys import ensure_keypair, public_key_line

EXAMPLE = Path(__file__).parents[2] / "examples" / "ssh.yml"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devenv-home"
    monkeypatch.setenv("DEVENV_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:1")  # reaching it would be a bug
    return home


@pytest.fixture
def admin_files(tmp_path: Path) -> tuple[Path, Path]:
    key = tmp_path / "keys" / "admin_ed25519"
    ensure_keypair(key)
    known_hosts = tmp_path / "keys" / "known_hosts"
    known_hosts.write_text("")
    return key, known_hosts


def write(tmp_path: Path, section: dict[str, object]) -> Path:
    path = tmp_path / "ssh.yml"
    doc = {"type": "dev-environment", "name": "box", "backend": "ssh", "ssh_config": section}
    path.write_text(yaml.safe_dump(doc))
    return path


def refused(path: Path, isolated_home: Path) -> str:
    """The line `devenv start` prints (exit 2; a line per problem), after checking nothing
    was created."""
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {line}" for line in str(caught.value).splitlines()], result.output
    assert not isolated_home.exists(), "nothing may be created for bad input"
    return str(caught.value)


def test_a_good_file_reads_with_paths_expanded(
    tmp_path: Path, admin_files: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, known_hosts = admin_files
    monkeypatch.setenv("HOME", str(tmp_path))
    section = {"hosts": "gpu-1.lan", "identity_file": "~/keys/admin_ed25519",
               "known_hosts": "~/keys/known_hosts"}  # fmt: skip
    config = load_config(write(tmp_path, section))
    assert isinstance(config, SshConfig)
    assert config.activity_task_queue() is None, "any worker: the shared queue"
    assert config.backend_section() == {
        "hosts": ["gpu-1.lan"],
        "port": 22,
        "user": "root",
        "identity_file": str(key),
        "known_hosts": str(known_hosts),
        "purge_workspace": False,
    }


def test_the_example_file_is_valid_but_for_its_placeholder_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    config = SshConfig.model_validate(data, context={CHECK_FILES: False})
    assert config.ssh_config.endpoints() == [("gpu-1.example.internal", 22)]


@pytest.mark.parametrize(
    ("hosts", "expected"),
    [
        (["bad host"], "ssh_config.hosts.0: invalid value 'bad host': 'bad host' is not a host"),
        (["ok", "-oProxyCommand=sh"], "ssh_config.hosts.1: invalid value '-oProxyCommand=sh'"),
        (["h;reboot"], "ssh_config.hosts.0: invalid value 'h;reboot'"),
        (["h:0"], "'h:0' has no valid port (1-65535)"),
        (["h", "h"], "'h' is listed twice"),
        ([], "ssh_config.hosts: invalid value []"),
    ],
)
def test_a_bad_host_is_named(
    tmp_path: Path,
    admin_files: tuple[Path, Path],
    isolated_home: Path,
    hosts: list[str],
    expected: str,
) -> None:
    key, known_hosts = admin_files
    path = write(tmp_path, {"hosts": hosts, "identity_file": str(key),
                            "known_hosts": str(known_hosts)})  # fmt: skip
    message = refused(path, isolated_home)
    assert message.startswith(f"{path}: ")
    assert expected in message


def test_a_missing_identity_file_is_named_before_anything_starts(
    tmp_path: Path, admin_files: tuple[Path, Path], isolated_home: Path
) -> None:
    _, known_hosts = admin_files
    path = write(tmp_path, {"hosts": ["gpu-1.lan"], "identity_file": "~/.ssh/admin_ed25519",
                            "known_hosts": str(known_hosts)})  # fmt: skip
    message = refused(path, isolated_home)
    expanded = tmp_path / "user" / ".ssh" / "admin_ed25519"
    assert message == (
        f"{path}: ssh_config.identity_file: invalid value '~/.ssh/admin_ed25519': no such file "
        f"({expanded}); accepted: the admin's private key file (e.g. ~/.ssh/id_ed25519)"
    )


def test_a_public_key_given_as_identity_file_is_refused(
    tmp_path: Path, admin_files: tuple[Path, Path], isolated_home: Path
) -> None:
    key, known_hosts = admin_files
    path = write(tmp_path, {"hosts": ["h"], "identity_file": f"{key}.pub",
                            "known_hosts": str(known_hosts)})  # fmt: skip
    assert f"is a public key; accepted: the private key (e.g. {key})" in refused(
        path, isolated_home
    )


def test_a_missing_known_hosts_says_how_to_fill_it(
    tmp_path: Path, admin_files: tuple[Path, Path], isolated_home: Path
) -> None:
    key, _ = admin_files
    path = write(tmp_path, {"hosts": ["h"], "identity_file": str(key)})
    message = refused(path, isolated_home)
    assert "ssh_config.known_hosts: invalid value '~/.ssh/known_hosts': no such file" in message
    assert "ssh-keyscan -p PORT HOST >>" in message


def test_a_typo_in_a_key_says_did_you_mean(
    tmp_path: Path, admin_files: tuple[Path, Path], isolated_home: Path
) -> None:
    key, known_hosts = admin_files
    path = write(tmp_path, {"hots": ["h"], "identity_file": str(key),
                            "known_hosts": str(known_hosts)})  # fmt: skip
    assert refused(path, isolated_home).startswith(
        f"{path}: ssh_config: unknown key 'hots': did you mean 'hosts'? accepted keys: pool, "
        "hosts, port, user, identity_file, known_hosts, purge_workspace"
    )


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("user", "ro ot", "ssh_config.user: invalid value 'ro ot': 'ro ot' is not a user name"),
        ("user", "-oProxyCommand", "ssh_config.user: invalid value '-oProxyCommand'"),
        ("port", 70000, "ssh_config.port: invalid value 70000: accepted: a port number 1-65535"),
        ("purge_workspace", "maybe", "ssh_config.purge_workspace: invalid value 'maybe'"),
    ],
)
def test_other_bad_values_are_named(
    tmp_path: Path,
    admin_files: tuple[Path, Path],
    isolated_home: Path,
    key: str,
    value: object,
    expected: str,
) -> None:
    identity, known_hosts = admin_files
    section = {"hosts": ["h"], "identity_file": str(identity), "known_hosts": str(known_hosts)}
    message = refused(write(tmp_path, {**section, key: value}), isolated_home)
    assert expected in message


def test_hosts_parse_as_ssh_takes_them() -> None:
    assert parse_host("gpu-1.lan") == ("gpu-1.lan", None)
    assert parse_host("10.0.0.7:2222") == ("10.0.0.7", 2222)
    assert parse_host("[2001:db8::7]:2200") == ("2001:db8::7", 2200)
    assert parse_host("2001:db8::7") == ("2001:db8::7", None)
    assert str(Endpoint("2001:db8::7", 22)) == "[2001:db8::7]:22"
    assert Endpoint("h", 2222).known_hosts_name == "[h]:2222"


# --- accounts and keys -------------------------------------------------------------------


def test_account_names_fit_unix_limits_and_stay_distinct() -> None:
    assert account_name("box") == "dv-box"
    longest = "a" + "b" * 38 + "c"
    other = "a" + "b" * 38 + "d"
    assert len(account_name(longest)) <= 32 and account_name(longest) == account_name(longest)
    assert account_name(longest) != account_name(other)
    with pytest.raises(ValueError):
        account_name("../etc")


def test_only_a_parsed_key_reaches_authorized_keys(tmp_path: Path) -> None:
    user = public_key_line(ensure_keypair(tmp_path / "user"))
    internal = public_key_line(ensure_keypair(tmp_path / "internal"))
    smuggled = f'{user} comment\ncommand="sh" {internal}'
    command = forced_command("/usr/bin/python3", "/var/lib/devenv/agent/a.py", "dv-box", 0)
    with pytest.raises(ValueError):
        authorized_keys(smuggled, internal, command)
    lines = authorized_keys(f"{user} someone@laptop", internal, command).splitlines()
    assert lines[0] == " ".join(user.split()[:2]), "the comment is dropped"
    assert lines[1] == (
        'restrict,command="/usr/bin/python3 /var/lib/devenv/agent/a.py stream --user dv-box '
        f'--min-connection-duration 1 --count-recorded-logins" {key_line(internal)}'
    ), "1 s by the process table keeps devenv's own connection from ever counting"
    with pytest.raises(ValueError):
        forced_command('/usr/bin/python3" x', "/a.py", "dv-box", 0)
    with pytest.raises(ValueError):
        check_host_dir("/var/lib/../../etc")
    with pytest.raises(ValueError):
        check_host_dir("relative/dir")


# --- host selection --------------------------------------------------------------------


def report(**more: object) -> HostReport:
    fields: dict[str, object] = dict(
        record_token=None, record_state=None, account_exists=False, active=0,
        python="/usr/bin/python3", missing=(), load=0.0, cpus=2,
    )  # fmt: skip
    fields.update(more)
    return HostReport(**fields)  # type: ignore[arg-type]


def candidate(index: int, **more: object) -> _Candidate:
    return _Candidate(index, Endpoint(f"h{index}", 22), report=report(**more))


def down(index: int) -> _Candidate:
    return _Candidate(index, Endpoint(f"h{index}", 22), problem=HostDownError(f"h{index} down"))


def test_the_least_loaded_host_that_answers_is_chosen() -> None:
    hosts = [down(0), candidate(1, active=3), candidate(2, active=1, load=1.5),
             candidate(3, active=1, load=0.2)]  # fmt: skip
    assert _choose(hosts, "dv-box", "box", "t1").index == 3


def test_the_host_holding_the_token_wins_whatever_its_load() -> None:
    hosts = [candidate(0), candidate(1, active=9, record_token="t1", record_state="active",
                                     account_exists=True)]  # fmt: skip
    assert _choose(hosts, "dv-box", "box", "t1").index == 1
    ended = [candidate(0), candidate(1, record_token="t1", record_state="ended")]
    with pytest.raises(InstanceTerminatedError):
        _choose(ended, "dv-box", "box", "t1")


def test_a_host_that_kept_the_names_home_is_preferred() -> None:
    hosts = [candidate(0), candidate(1, active=5, record_token="old", record_state="ended",
                                     account_exists=True)]  # fmt: skip
    assert _choose(hosts, "dv-box", "box", "t1").index == 1


def test_hosts_that_cannot_take_it_are_skipped_and_explained() -> None:
    taken = candidate(0, record_token="other", record_state="active", account_exists=True)
    foreign = candidate(1, account_exists=True)
    no_python = candidate(2, python=None)
    assert _choose([taken, foreign, no_python, candidate(3)], "dv-box", "box", "t1").index == 3
    with pytest.raises(AccountConflictError, match="already runs an environment named 'box'"):
        _choose([taken], "dv-box", "box", "t1")
    with pytest.raises(HostNotSupportedError, match="has no python3"):
        _choose([no_python], "dv-box", "box", "t1")
    with pytest.raises(AdminError) as several:
        _choose([taken, foreign], "dv-box", "box", "t1")
    assert several.value.permanent and "no host of ssh_config.hosts can take it" in str(
        several.value
    )
    with pytest.raises(HostDownError):
        _choose([down(0), down(1), taken], "dv-box", "box", "t1")  # one may come back
