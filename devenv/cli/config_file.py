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
MAX_NODES = 10_000
MAX_DEPTH = 50


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
        _check_size(yaml.compose(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{path}: invalid YAML: {_yaml_reason(err)}") from None
    except _TooBigError as err:
        raise UserError(f"{path}: invalid YAML: {err}") from None
    except RecursionError:
        raise UserError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as err:  # a scalar Python cannot convert, e.g. a 5000-digit integer
        raise UserError(f"{path}: invalid YAML: {str(err).split(';')[0]}") from None
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise UserError(
            f"{path}: expected a mapping of keys such as 'type: dev-environment', got {kind}"
        )
    return data


class _TooBigError(Exception):
    pass


def _check_size(root: yaml.Node | None) -> None:
    """Refuse documents that expand to more than MAX_NODES values or MAX_DEPTH levels.

    Aliases make a few lines expand exponentially ("billion laughs"): validating or
    printing such a value would take forever, so its expanded size is counted first.
    """
    if root is None:
        return
    budget = MAX_NODES
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        budget -= 1
        if budget < 0:
            raise _TooBigError(f"more than {MAX_NODES:,} values (after expanding aliases)")
        if depth > MAX_DEPTH:
            raise _TooBigError(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.SequenceNode):
            stack.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                stack.extend(((key, depth + 1), (value, depth + 1)))


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
    message = shorten(str(first["msg"]).removeprefix("Value error, "), value)
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


def shorten(message: str, value: object) -> str:
    """``message`` with a long quoted ``value`` in it cut down as ``_show`` does.

    Validators quote the whole value; a 500 kB name must not become a 500 kB line.
    """
    text = repr(value)
    return message.replace(text, _show(value)) if len(text) > 60 else message


def _show(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
