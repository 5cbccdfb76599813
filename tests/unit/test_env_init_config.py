"""`env` and `init` in the file (dstack's shape): what is accepted, and bad values refused
in one line naming the key, the value and what is accepted, before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from devenv.cli.app import app
from devenv.client.caller_env import split_env
from devenv.config.loader import parse_config
from devenv.errors import InvalidValueError


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "devenv-home"
    monkeypatch.setenv("DEVENV_HOME", str(home))
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.setenv("DEVENV_TEMPORAL_ADDRESS", "127.0.0.1:1")  # nothing may be reached
    return home


def parsed_env(value: object) -> dict[str, str | None]:
    return dict(parse_config({"type": "dev-environment", "env": value}).env)


def test_env_as_a_mapping_or_a_list_is_one_mapping_bare_keys_from_the_caller() -> None:
    assert parsed_env({"A": "1", "B": None, "C": 2, "D": True}) == {
        "A": "1",
        "B": None,
        "C": "2",
        "D": "true",
    }
    assert parsed_env(["A=1", "B", "C=x=y", "E="]) == {"A": "1", "B": None, "C": "x=y", "E": ""}
    assert parsed_env(None) == {}
    config = parse_config({"type": "dev-environment", "init": ["make setup", "echo hi"]})
    assert config.init == ["make setup", "echo hi"]
    assert parse_config({"type": "dev-environment"}).init == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("env", {"PATH": "/x"}, "env.PATH: invalid value 'PATH': PATH is set by every login"),
        ("env", ["HOME=/tmp"], "env.HOME: invalid value 'HOME': HOME is set by every login"),
        ("env", {"SSH_AUTH_SOCK": "x"}, "env.SSH_AUTH_SOCK: invalid value 'SSH_AUTH_SOCK'"),
        ("env", {"DEVENV_ENV": "x"}, "env.DEVENV_ENV: invalid value 'DEVENV_ENV'"),
        ("env", {"1BAD": "x"}, "env.1BAD: invalid value '1BAD': accepted: a letter or _"),
        ("env", ["A-B=1"], "env.A-B: invalid value 'A-B': accepted: a letter or _"),
        ("env", "A=1", "env: invalid value 'A=1': accepted: a mapping of NAME: value, or a list"),
        ("env", ["A", "A=2"], "env: invalid value ['A', 'A=2']: A is given twice"),
        ("env", [{"a": 1}], "an item is not NAME=value or NAME"),
        ("env", {"A": {"b": 1}}, "env.A: invalid value {'b': 1}: accepted: a string, a number"),
        ("init", "make", "init: invalid value 'make': accepted: a list of shell commands"),
        ("init", [""], "init.0: invalid value '': accepted: a non-empty shell command"),
        ("init", [1], "init.0: invalid value 1: accepted: a string"),
    ],
)
def test_bad_env_or_init_is_refused_in_one_line_exit_2_nothing_created(
    tmp_path: Path, isolated_home: Path, key: str, value: object, expected: str
) -> None:
    import yaml

    path = tmp_path / "dev.yml"
    path.write_text(yaml.safe_dump({"type": "dev-environment", key: value}))
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert expected in " ".join(result.output.split()), result.output
    assert not isolated_home.exists(), "nothing may be created for bad input"


def test_a_bare_key_the_caller_lacks_is_refused_in_one_line_exit_2(
    tmp_path: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "dev.yml"
    path.write_text("type: dev-environment\nenv:\n  - ABSENT_TOKEN_FOR_TEST\n")
    monkeypatch.delenv("ABSENT_TOKEN_FOR_TEST", raising=False)
    result = CliRunner().invoke(app, ["start", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "env.ABSENT_TOKEN_FOR_TEST: not set in the environment of devenv start" in lines[0]
    assert not isolated_home.exists(), "nothing may be created for bad input"


def test_the_example_file_is_valid() -> None:
    from devenv.config.loader import load_config

    config = load_config(Path(__file__).parents[2] / "examples" / "init-env.yml")
    assert config.env == {"PYTHONUNBUFFERED": "1", "HF_TOKEN": None}
    assert len(config.init) == 2


def test_bare_keys_are_split_from_literals_and_read_from_the_caller_given() -> None:
    literal, secret = split_env({"A": "1", "TOKEN": None}, {"TOKEN": "s3cret", "OTHER": "x"})
    assert literal == {"A": "1"}
    assert secret == {"TOKEN": "s3cret"}
    with pytest.raises(InvalidValueError, match=r"env\.TOKEN: not set"):
        split_env({"TOKEN": None}, {})
