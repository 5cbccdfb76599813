"""devenv's errors as HTTP answers: ``{"error": "one line"}`` with the fitting status.

The class travels in a header (``wire.ERROR_CLASS_HEADER``), so that the remote SDK raises the
very class the direct SDK would have raised, with the server's line.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from devenv import wire
from devenv.client.tokens import StoreError
from devenv.errors import (
    ChangeRejectedError,
    DevenvError,
    EnvironmentEndedError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAllowedError,
    NotAnsweringError,
    NoWorkerError,
    ProvisioningFailedError,
    ServerRefusedError,
    ServerUnreachableError,
    UserError,
)
from devenv.models.problems import shorten

MAX_LINE = 500
MAX_LOGGED_PATH = 200

log = logging.getLogger("devenv.api")

STATUS_OF: tuple[tuple[type[DevenvError], int], ...] = (
    # Most specific first: the first class the error is an instance of decides.
    (EnvironmentNotFoundError, 404),
    (NotAllowedError, 403),
    (EnvironmentEndedError, 409),
    (EnvironmentExistsError, 409),
    (ProvisioningFailedError, 502),
    (StoreError, 503),
    (NoWorkerError, 503),
    (NotAnsweringError, 503),
    (ServerUnreachableError, 503),
    (ServerRefusedError, 503),
    (InvalidValueError, 422),
    (ChangeRejectedError, 422),
    (UserError, 409),  # a name already taken, a workflow that is not an environment
    (DevenvError, 503),
)


class ApiError(Exception):
    """An answer decided by the API itself (authentication, body, size)."""

    def __init__(self, status: int, message: str, kind: type[DevenvError]) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


def status_of(problem: DevenvError) -> int:
    return next(status for kind, status in STATUS_OF if isinstance(problem, kind))


def one_line(message: str) -> str:
    """The first line, bounded: an error answer is never a dump of anything."""
    line = message.strip().splitlines()[0] if message.strip() else "error"
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 3] + "..."


def add_handlers(app: FastAPI) -> None:
    """Every error ``app`` raises becomes one line with the status that fits it."""
    app.add_exception_handler(DevenvError, _devenv_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]


def error_response(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {wire.ERROR_KEY: one_line(message)},
        status_code=status,
        headers={wire.ERROR_CLASS_HEADER: kind, **(headers or {})},
    )


async def _devenv_error(request: Request, problem: DevenvError) -> JSONResponse:
    status = status_of(problem)
    if status >= 500:
        log.warning("api: %d %s %r: %s", status, request.method, logged_path(request), problem)
    return error_response(status, str(problem), type(problem).__name__)


async def _api_error(request: Request, problem: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": wire.BEARER} if problem.status == 401 else None
    return error_response(problem.status, str(problem), problem.kind.__name__, headers)


async def _request_error(request: Request, problem: RequestValidationError) -> JSONResponse:
    """A bad query or path parameter: one line naming it (bodies are parsed by the routes)."""
    first = problem.errors()[0]
    name = str(first["loc"][-1]) if first.get("loc") else "request"
    value = first.get("input")
    accepted = {
        "bool_parsing": "true or false",
        "literal_error": str(first.get("ctx", {}).get("expected", "")).replace("'", ""),
    }.get(first["type"], shorten(str(first["msg"]), value))
    return error_response(
        422,
        f"{name}: invalid value {shorten(repr(value), value)}: accepted: {accepted}",
        InvalidValueError.__name__,
    )


async def _http_error(request: Request, problem: StarletteHTTPException) -> JSONResponse:
    messages = {
        404: f"no such endpoint: {logged_path(request)!r} (see /docs)",
        405: f"method {request.method} not allowed on {logged_path(request)!r} (see /docs)",
    }
    message = messages.get(problem.status_code, str(problem.detail))
    return error_response(
        problem.status_code,
        message,
        EnvironmentNotFoundError.__name__ if problem.status_code == 404 else "UserError",
        dict(problem.headers or {}),
    )


def logged_path(request: Request) -> str:
    """The path as logged and quoted in errors: bounded."""
    return request.url.path[:MAX_LOGGED_PATH]
