"""Reads ``dev.yml`` into a DevEnvConfig, or fails with one line naming file, key and value."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from devenv.errors import UserError
from devenv.workflows.config import DevEnvConfig, Resources

MAX_FILE_BYTES = 1_000_000


def load_config(path: Path) -> DevEnvConfig:
    data = _read_mapping(path)
    try:
        return DevEnvConfig.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{path}: {describe_validation_error(err)}") from None


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise UserError(f"{path}: file not found")
    if not path.is_file():
        raise UserError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise UserError(
            f"{path}: file is {size:,} bytes; a dev environment file is a few lines of YAML "
            f"(at most {MAX_FILE_BYTES:,} bytes)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; expected YAML") from None
    if "\x00" in text:
        raise UserError(f"{path}: binary data, not YAML")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{path}: invalid YAML: {_yaml_reason(err)}") from None
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise UserError(
            f"{path}: expected a mapping of keys such as 'type: dev-environment', got {kind}"
        )
    return data


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def describe_validation_error(err: ValidationError) -> str:
    """The first error as 'key: value: what is accepted' (+ how many more there are)."""
    errors = err.errors()
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    suffix = more if len(errors) > 1 else ""
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(first["loc"]) + suffix
    if kind == "missing":
        accepted = " (accepted: dev-environment)" if loc == "type" else ""
        return f"{loc}: required key is missing{accepted}" + suffix
    message = str(first["msg"]).removeprefix("Value error, ")
    if kind in ("literal_error", "enum"):
        expected = first.get("ctx", {}).get("expected", "")
        message = f"accepted: {expected}".replace("'", "")
    return f"{loc}: invalid value {_show(value)}: {message}" + suffix


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    where = ".".join(str(part) for part in loc[:-1])
    model = Resources if where == "resources" else DevEnvConfig
    valid = list(model.model_fields)
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'? " if close else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}unknown key '{key}': {hint}accepted keys: {', '.join(valid)}"


def _show(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
