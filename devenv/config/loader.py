"""Reads ``dev.yml`` (or a mapping) into its backend's configuration model, or fails
with one line naming the file, the key, the value and what is accepted."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from devenv.backends import registry
from devenv.errors import ConfigError
from devenv.models.config import EnvironmentConfig
from devenv.models.problems import show, validation_problems

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
            f"{source}: backend: invalid value {show(backend)}: accepted: "
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
                        f"{path}: duplicate key {show(key.value)} at line {line} (first at "
                        f"line {seen[key.value]}); accepted: each key once per mapping"
                    )
                seen[key.value] = line


def _yaml_reason(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return str(problem)
