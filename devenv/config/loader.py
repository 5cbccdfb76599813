"""Reads ``dev.yml`` (or a mapping) into its backend's configuration model, or fails
with one line naming the file, the key, the value and what is accepted."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from devenv.backends import registry
from devenv.config.common import EnvironmentConfig
from devenv.errors import ConfigError

MAX_FILE_BYTES = 1_000_000
MAX_NODES = 10_000
MAX_DEPTH = 50


def load_config(path: Path) -> EnvironmentConfig:
    """The file's configuration, validated by its backend's model."""
    return parse_config(read_mapping(path), str(path))


def parse_config(data: Mapping[str, Any], source: str = "config") -> EnvironmentConfig:
    """A mapping (the YAML's keys) validated by the model of its ``backend``.

    The configuration is a union discriminated on ``backend`` (default ``local``);
    each backend's model validates its own keys.
    """
    backend = data.get("backend", "local")
    if not isinstance(backend, str) or backend not in registry.names():
        raise ConfigError(
            f"{source}: backend: invalid value {_show(backend)}: accepted: "
            f"{', '.join(registry.names())}"
        )
    model = registry.config_model(backend)
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        problems = validation_problems(err, model)
        raise ConfigError("\n".join(f"{source}: {problem}" for problem in problems)) from None


def read_mapping(path: Path) -> dict[str, Any]:
    """The YAML file as a mapping, refused in one line if it cannot be one."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ConfigError(
            f"{path}: file is {size:,} bytes; a dev environment file is a few lines of YAML "
            f"(at most {MAX_FILE_BYTES:,} bytes)"
        )
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; expected YAML") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: binary data, not YAML")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        _check_size(root)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_reason(err)}") from None
    except _TooBigError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as err:  # a scalar Python cannot convert, e.g. a 5000-digit integer
        raise ConfigError(f"{path}: invalid YAML: {str(err).split(';')[0]}") from None
    _check_unique_keys(root, path)
    if not isinstance(data, dict):
        kind = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(
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


def _check_unique_keys(root: yaml.Node | None, path: Path) -> None:
    """Refuse a key given twice in one mapping: YAML keeps the last silently, so a
    second ``inactivity_duration`` lower in the file would override the first unseen."""
    stack = [root] if root is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                stack.append(value)
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise ConfigError(
                        f"{path}: duplicate key {_show(key.value)} at line {line} (first at "
                        f"line {seen[key.value]}); accepted: each key once per mapping"
                    )
                seen[key.value] = line


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def describe_validation_error(
    err: ValidationError, model: type[BaseModel] = EnvironmentConfig
) -> str:
    """Every problem as 'key: value: what is accepted', joined in one line (the API's)."""
    return "; ".join(validation_problems(err, model))


def validation_problems(
    err: ValidationError, model: type[BaseModel] = EnvironmentConfig
) -> list[str]:
    """Every problem, one line each: 'key: value: what is accepted', in devenv's words.

    A typo ('regoin') also makes the real key missing: the typo comes first, it is the
    cause. A value refused by every member of a union ('int or str') is one problem.
    """
    errors = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")
    grouped: dict[tuple[int | str, ...], list[Any]] = {}
    for error in errors:
        grouped.setdefault(_field_loc(error["loc"]), []).append(error)
    return [_problem(model, loc, group) for loc, group in grouped.items()]


_UNION_TAG = frozenset({"int", "str", "float", "bool", "list", "dict", "none", "is-instance"})


def _field_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The location without pydantic's union member tags (``gpu.int`` -> ``gpu``)."""
    return tuple(
        part
        for part in loc
        if not (
            isinstance(part, str)
            and (part in _UNION_TAG or "[" in part or part.startswith("function-"))
        )
    )


_ACCEPTED: dict[str, str] = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "model_attributes_type": "a mapping of keys",
    "url_type": "a URL",
    "url_parsing": "a URL",
    "datetime_type": "an ISO-8601 date and time",
    "datetime_parsing": "an ISO-8601 date and time",
    "datetime_from_date_parsing": "an ISO-8601 date and time",
}
"""pydantic's error types in devenv's words: what is accepted instead."""


def _accepted(error: Any) -> str | None:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in _ACCEPTED:
        return _ACCEPTED[kind]
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "greater_than": ("more than", "gt"),
        "less_than_equal": ("at most", "le"),
        "less_than": ("less than", "lt"),
        "too_long": ("at most", "max_length"),
        "string_too_long": ("at most", "max_length"),
        "too_short": ("at least", "min_length"),
        "string_too_short": ("at least", "min_length"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        unit = " characters" if kind.startswith("string_") else ""
        unit = " items" if kind in ("too_long", "too_short") else unit
        return f"{words} {ctx.get(key)}{unit}"
    if kind in ("literal_error", "enum"):
        return str(ctx.get("expected", "")).replace("'", "")
    return None


def _problem(model: type[BaseModel], loc: tuple[int | str, ...], group: list[Any]) -> str:
    first = group[0]
    where = ".".join(str(part) for part in loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        return _unknown_key(model, loc)
    if kind == "missing":
        accepted = " (accepted: dev-environment)" if where == "type" else ""
        return f"{where}: required key is missing{accepted}"
    value = first.get("input")
    forms = [form for form in map(_accepted, group) if form is not None]
    if len(forms) == len(group):  # each says what it accepts: one line, all the forms
        message = f"accepted: {' or '.join(dict.fromkeys(forms))}"
    else:  # a validator of devenv's own: its message already says what is accepted
        custom = next(e for e in group if _accepted(e) is None)
        message = shorten(str(custom["msg"]).removeprefix("Value error, "), value)
    return f"{where}: invalid value {_show(value)}: {message}"


def _model_at(model: type[BaseModel], path: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The nested model a location points into (``ssh_config`` -> its section's model)."""
    for part in path:
        field = model.model_fields.get(str(part))
        candidates = [field.annotation] if field is not None else []
        candidates += list(getattr(field.annotation, "__args__", ())) if field else []
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def _unknown_key(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    key = str(loc[-1])
    where = ".".join(str(part) for part in loc[:-1])
    model = _model_at(root, loc[:-1]) or root
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
