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
        raise ConfigError(f"{source}: {describe_validation_error(err, model)}") from None


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
        _check_size(yaml.compose(text, Loader=yaml.SafeLoader))
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {_yaml_reason(err)}") from None
    except _TooBigError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    except ValueError as err:  # a scalar Python cannot convert, e.g. a 5000-digit integer
        raise ConfigError(f"{path}: invalid YAML: {str(err).split(';')[0]}") from None
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


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)


def describe_validation_error(
    err: ValidationError, model: type[BaseModel] = EnvironmentConfig
) -> str:
    """The first error as 'key: value: what is accepted' (+ how many more there are)."""
    errors = err.errors()
    # A typo ('regoin') also makes the real key missing: name the typo, it is the cause.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    first = errors[0]
    loc = ".".join(str(part) for part in first["loc"])
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    suffix = more if len(errors) > 1 else ""
    kind = first["type"]
    value = first.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(model, first["loc"]) + suffix
    if kind == "missing":
        accepted = " (accepted: dev-environment)" if loc == "type" else ""
        return f"{loc}: required key is missing{accepted}" + suffix
    message = shorten(str(first["msg"]).removeprefix("Value error, "), value)
    if kind in ("literal_error", "enum"):
        expected = first.get("ctx", {}).get("expected", "")
        message = f"accepted: {expected}".replace("'", "")
    return f"{loc}: invalid value {_show(value)}: {message}" + suffix


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
