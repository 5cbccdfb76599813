"""Configuration problems in devenv's words: one line per problem, 'key: value: accepted'.

Pure functions of a pydantic ``ValidationError``: the loader, the backends' sections, the
API and the SDK's checks all word refusals alike, and none of them imports another for it.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from devenv.models.config import EnvironmentConfig


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
    if not loc:  # a rule across keys: its message names them; the input is the whole file
        return message
    return f"{where}: invalid value {show(value)}: {message}"


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
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.5)
    # 'inactivity' means inactivity_duration, not inactivity_bounds: of the keys it
    # begins, the first the model lists (the main key comes before its companions).
    prefixed = sorted((c for c in close if c.startswith(key)), key=valid.index)
    close = prefixed or close
    hint = f"did you mean '{close[0]}'? " if close else ""
    prefix = f"{where}: " if where else ""
    return f"{prefix}unknown key '{key}': {hint}accepted keys: {', '.join(valid)}"


def shorten(message: str, value: object) -> str:
    """``message`` with a long quoted ``value`` in it cut down as ``_show`` does.

    Validators quote the whole value; a 500 kB name must not become a 500 kB line.
    """
    text = repr(value)
    return message.replace(text, show(value)) if len(text) > 60 else message


def show(value: object) -> str:
    if value is None:
        return "null"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
