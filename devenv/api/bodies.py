"""Request bodies: JSON read by the routes themselves, so that every problem is one
line naming the key, the value and what is accepted (a 422), or a 400 for non-JSON."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from devenv.api.errors import ApiError
from devenv.errors import InvalidValueError
from devenv.models.problems import describe_validation_error

M = TypeVar("M", bound=BaseModel)


async def _json(request: Request, expected: str) -> Any:
    raw = await request.body()
    if not raw.strip():
        raise ApiError(422, f"body: expected a JSON object with {expected}", InvalidValueError)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as problem:
        where = (
            f" ({problem.msg} at line {problem.lineno} column {problem.colno})"
            if isinstance(problem, json.JSONDecodeError)
            else ""
        )
        raise ApiError(400, f"body is not valid JSON{where}", InvalidValueError) from None


async def json_object(request: Request, expected: str) -> dict[str, Any]:
    data = await _json(request, expected)
    if not isinstance(data, dict):
        raise ApiError(
            422,
            f"body: expected a JSON object with {expected}, got {_kind(data)}",
            InvalidValueError,
        )
    return data


async def body_as(request: Request, model: type[M]) -> M:
    keys = ", ".join(model.model_fields)
    data = await json_object(request, f"any of {keys}")
    try:
        return model.model_validate(data)
    except ValidationError as problem:
        raise ApiError(422, describe_validation_error(problem, model), InvalidValueError) from None


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
