"""Bad configuration is refused before anything starts: one line, exit code 2."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from devenv.cli.app import app
from devenv.config.loader import load_config
from devenv.errors import UserError
from devenv.models.config import EnvironmentConfig
from devenv.models.problems import describe_validation_error

GOOD = "type: dev-environment\nname: my-env\ninactivity_duration: 2h\n"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devenv-home"
    monkeypatch.setenv("DEVENV_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    # Nothing listens here: reaching the server would be a bug in these tests.
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:1")
    return home


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "dev.yml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_example_file_is_valid() -> None:
    config = load_config(Path(__file__).parents[2] / "examples" / "dev.yml")
    assert config.type == "dev-environment"
    assert config.inactivity_duration == 7200


def test_defaults_are_off(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "type: dev-environment\n"))
    assert config.inactivity_duration is None
    assert config.max_duration is None
    assert config.backend == "local"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("- a\n- b\n", "expected a mapping of keys such as 'type: dev-environment', got a list"),
        ("just some words\n", "got a str"),
        ("42\n", "got a int"),
        ("--- !!binary aGVsbG8=\n", "got a bytes"),
        ("", "got an empty file"),
        ("type: [unclosed\n", "invalid YAML"),
        (b"\x00\x01\x02\xff\xfe", "not a UTF-8 text file"),
        (random.Random(7).randbytes(4096), "not a UTF-8 text file"),
        (b"type: dev-environment\n\x00\x00\x00\x00", "binary data, not YAML"),
        ("type: dev-environment\n!!python/object:os.system ls\n", "invalid YAML"),
        ("type: dev-environment\nx: !!python/object/apply:os.system [id]\n", "invalid YAML"),
        (
            "type: dev-environment\nmax_duraton: 1d\n",
            "unknown key 'max_duraton': did you mean 'max_duration'?",
        ),
        ("type: dev-environment\nid: vscode\n", "unknown key 'id': did you mean 'ide'?"),
        ("type: dev-environment\nzzz: 1\n", "unknown key 'zzz': accepted keys: type, name"),
        (
            "type: dev-environment\ninactivity: 2h\n",
            "unknown key 'inactivity': did you mean 'inactivity_duration'?",
        ),
        ("type: task\n", "type: invalid value 'task': accepted: dev-environment"),
        ("name: x\n", "type: required key is missing (accepted: dev-environment)"),
        (
            "type: dev-environment\ninactivity_duration: -1h\n",
            "inactivity_duration: invalid value '-1h': '-1h' is not a duration",
        ),
        ("type: dev-environment\ninactivity_duration: 1x\n", "inactivity_duration: invalid value"),
        ("type: dev-environment\nmax_duration: 99999w\n", "longer than 4 weeks"),
        ("type: dev-environment\ninactivity_duration: 1.5.2h\n", "'1.5.2h' is not a duration"),
        ("type: dev-environment\ninactivity_duration: ''\n", "'' is not a duration"),
        ("type: dev-environment\ninactivity_duration: None\n", "'None' is not a duration"),
        ("type: dev-environment\nname: my env\n", "name: invalid value 'my env'"),
        ("type: dev-environment\nname: a/b\n", "name: invalid value 'a/b'"),
        ("type: dev-environment\nname: x;rm -rf\n", "name: invalid value 'x;rm -rf'"),
        ("type: dev-environment\nname: " + "a" * 200 + "\n", "1 to 40 lowercase letters"),
        ("type: dev-environment\nname: '$(reboot)'\n", "name: invalid value '$(reboot)'"),
        ("type: dev-environment\nname: '`id`'\n", "name: invalid value '`id`'"),
        ("type: dev-environment\nname: ../../etc\n", "name: invalid value '../../etc'"),
        ("type: dev-environment\nname: -rf\n", "name: invalid value '-rf'"),
        ("type: dev-environment\nname: 12\n", "name: invalid value 12"),
        ("type: dev-environment\nmin_connection_duration: -5\n", "min_connection_duration"),
        ("type: dev-environment\nmax_duration: 99999999999999999999\n", "max_duration"),
        ("type: dev-environment\ninactivity_duration: [1h]\n", "inactivity_duration"),
        ("type: dev-environment\nbackend: gcp\n", "backend: invalid value 'gcp': accepted: local"),
        ("type: dev-environment\nresources: {cpu: 0}\n", "resources.cpu: invalid value 0"),
        (
            "type: dev-environment\nresources: {gpus: 1}\n",
            "resources: unknown key 'gpus': did you mean 'gpu'?",
        ),
        (
            "type: dev-environment\non_idle: sleep\n",
            "on_idle: invalid value 'sleep': accepted: terminate or suspend",
        ),
        ("type: dev-environment\ndelete_after: 5w\n", "delete_after: invalid value '5w'"),
    ],
)
def test_bad_files_fail_with_one_line_naming_file_key_value(
    tmp_path: Path, isolated_home: Path, text: str | bytes, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert expected in str(caught.value)
    assert str(path) in str(caught.value)

    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:")
    assert not isolated_home.exists(), "nothing may be created for bad input"


def one_error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error: "), output
    return lines[0]


def test_missing_and_huge_files(tmp_path: Path, isolated_home: Path) -> None:
    result = CliRunner().invoke(app, ["start", str(tmp_path / "nope.yml")])
    assert result.exit_code == 2
    assert "file not found" in one_error_line(result.output)
    huge = write(tmp_path, "type: dev-environment\n" + "#" * 10_000_000)
    result = CliRunner().invoke(app, ["start", str(huge)])
    assert result.exit_code == 2
    assert "a dev environment file is a few lines of YAML" in one_error_line(result.output)
    assert len(result.output) < 300, "the error must not echo the file"
    result = CliRunner().invoke(app, ["start", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a file" in one_error_line(result.output)
    assert not isolated_home.exists()


def test_a_huge_single_line_value_is_not_echoed(tmp_path: Path, isolated_home: Path) -> None:
    path = write(tmp_path, "type: dev-environment\nname: " + "x" * 500_000 + "\n")
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    assert len(one_error_line(result.output)) < 400
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--inactivity", "1x"], "--inactivity: '1x' is not a duration"),
        (["--max-duration", "-3h"], "--max-duration: '-3h' is not a duration"),
        (["--name", "Bad Name"], "--name: 'Bad Name' is not a valid name"),
        (["--name", "$(reboot)"], "--name: '$(reboot)' is not a valid name"),
        (["--name", "a/b"], "--name: 'a/b' is not a valid name"),
        (["--name", "x;rm -rf ~"], "--name: 'x;rm -rf ~' is not a valid name"),
        (["--name", "a" * 200], "is not a valid name; accepted: 1 to 40 lowercase letters"),
        (["--name", ""], "--name: '' is not a valid name"),
        *[
            (["--inactivity", bad], f"--inactivity: {bad!r} is not a duration")
            for bad in ("-1h", "1x", "1.5.2h", "", "None")
        ],
        (["--inactivity", "99999w"], "--inactivity: '99999w' is longer than 4 weeks"),
        *[
            (["--max-duration", bad], f"--max-duration: {bad!r} is not a duration")
            for bad in ("-1h", "1x", "1.5.2h", "", "None")
        ],
        (["--max-duration", "99999w"], "--max-duration: '99999w' is longer than 4 weeks"),
    ],
)
def test_bad_flags_fail_before_anything_starts(
    tmp_path: Path, isolated_home: Path, args: list[str], expected: str
) -> None:
    result = CliRunner().invoke(app, ["start", str(write(tmp_path, GOOD)), *args])
    assert result.exit_code == 2, result.output
    assert expected in one_error_line(result.output)
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["signal", "my-env"], "nothing to change"),
        (["signal", "my-env", "--inactivity", "soon"], "--inactivity: 'soon' is not a duration"),
        (["signal", "my env", "--inactivity", "2h"], "NAME: invalid value 'my env'"),
        *[
            (["signal", "my-env", option, bad], f"{option}: {bad!r} is not a duration")
            for option in ("--inactivity", "--max-duration")
            for bad in ("-1h", "1x", "1.5.2h", "", "None")
        ],
        *[
            (["signal", "my-env", option, "99999w"], "'99999w' is longer than 4 weeks")
            for option in ("--inactivity", "--max-duration")
        ],
    ],
)
def test_signal_validates_before_contacting_the_server(
    isolated_home: Path, args: list[str], expected: str
) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in one_error_line(result.output)
    assert not isolated_home.exists()


def test_a_duration_left_empty_is_unset_and_may_have_spaces_as_in_dstack(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            "type: dev-environment\ninactivity_duration:\nmax_duration: 2 h\n"
            "warn_before:\nmin_connection_duration: '1m 30s'\n",
        )
    )
    assert config.inactivity_duration is None, "empty: unset, the default (off)"
    assert config.warn_before is None, "empty: unset, the default rule"
    assert (config.max_duration, config.min_connection_duration) == (7200, 90)


def test_every_problem_of_a_file_is_shown_one_line_each(
    tmp_path: Path, isolated_home: Path
) -> None:
    path = write(
        tmp_path,
        "type: dev-environment\nbackend: aws\naws:\n  regoin: eu-west-1\n"
        "  allow_ssh_from: [203.0.113.7/32]\n  spot: maybe\n",
    )
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"error: {path}: aws: unknown key 'regoin': did you mean 'region'? accepted keys: "
        "region, instance_type, image, subnet, security_group, allow_ssh_from, spot, "
        "ssh_user, ssh_endpoint, ready_timeout, price_per_hour, failsafe_after, tags",
        f"error: {path}: aws.region: required key is missing",
        f"error: {path}: aws.spot: invalid value 'maybe': accepted: true or false",
    ]
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: a\ninactivity_duration: 2h\nname: b\n",
            "duplicate key 'name' at line 4 (first at line 2)",
        ),
        (
            "resources:\n  cpu: 2\n  cpu: 4\n",
            "duplicate key 'cpu' at line 4 (first at line 3)",
        ),
    ],
)
def test_a_key_given_twice_is_refused_naming_it_and_its_line(
    tmp_path: Path, isolated_home: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "type: dev-environment\n" + text)
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2
    assert one_error_line(result.output) == (
        f"error: {path}: {expected}; accepted: each key once per mapping"
    )
    assert not isolated_home.exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: 12\n", "name: invalid value 12: accepted: a string"),
        ("notify: {webhook: 5}\n", "notify.webhook: invalid value 5: accepted: a string"),
        ("notify: x\n", "notify: invalid value 'x': accepted: a mapping of keys"),
        ("resources: x\n", "resources: invalid value 'x': accepted: a mapping of keys"),
        ("resources: {cpu: x}\n", "resources.cpu: invalid value 'x': accepted: a whole number"),
        ("resources: {cpu: 0}\n", "resources.cpu: invalid value 0: accepted: at least 1"),
        (
            "resources: {gpu: [1]}\n",
            "resources.gpu: invalid value [1]: accepted: a whole number or a string",
        ),
        (
            "backend: aws\naws: {region: 5, allow_ssh_from: [203.0.113.7/32]}\n",
            "aws.region: invalid value 5: accepted: a string",
        ),
    ],
)
def test_wrong_types_are_told_in_devenvs_words_not_pydantics(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, "type: dev-environment\n" + text)
    with pytest.raises(UserError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: {expected}"


class _CannotSuspend(EnvironmentConfig):
    """A backend without the Suspendable capability (every shipped one may gain it)."""

    backend: Literal["plain"] = "plain"


def test_on_idle_suspend_is_refused_where_the_backend_cannot_suspend() -> None:
    with pytest.raises(ValidationError) as caught:
        _CannotSuspend.model_validate({"type": "dev-environment", "on_idle": "suspend"})
    assert describe_validation_error(caught.value, _CannotSuspend) == (
        "on_idle: invalid value 'suspend': the plain backend cannot suspend; accepted: terminate"
    )
    plain = _CannotSuspend.model_validate({"type": "dev-environment"})
    assert (plain.on_idle, plain.delete_after) == ("terminate", 7 * 86_400)


def test_local_suspends_and_keeps_a_suspended_one_as_long_as_asked(
    tmp_path: Path, isolated_home: Path
) -> None:
    text = "type: dev-environment\non_idle: suspend\ndelete_after: 2d\n"
    config = load_config(write(tmp_path, text))
    assert (config.on_idle, config.delete_after) == ("suspend", 2 * 86_400)
    kept = load_config(write(tmp_path, "type: dev-environment\ndelete_after: off\n"))
    assert kept.delete_after is None
    empty = load_config(write(tmp_path, "type: dev-environment\ndelete_after:\n"))
    assert empty.delete_after == 7 * 86_400
