"""The routes of the HTTP API: each one a call of the SDK, for one authenticated user.

Who may do what is devenv.api.authority's table, which every route consults: a user
sees the environments they own or that are shared with them (another's is a 404,
exactly as if it did not exist); an admin sees all. Every error is
``{"error": "one line"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devenv import __version__
from devenv.api import admin_only, authority
from devenv.api.authority import Action
from devenv.api.errors import ApiError, one_line, status_of
from devenv.api.schemas import (
    CONFIG_EXAMPLE,
    CONFIG_SCHEMA,
    ERROR_CLASS_HEADER,
    UNANSWERED_HEADER,
    ErrorBody,
    ThresholdChanges,
)
from devenv.api.tokens import User, UserStore
from devenv.client.aio import AsyncClient, AsyncEnvironment
from devenv.config.loader import describe_validation_error, shorten
from devenv.errors import (
    DevenvError,
    EnvironmentEndedError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAnsweringError,
    ProvisioningFailedError,
    ServerRefusedError,
)
from devenv.workflows.state import EnvEvent, Status
from devenv.workflows.status import EnvironmentStatus, SshAccess

PREFIX = "/api/v1"
MAX_BODY_BYTES = 64 * 1024
READY_TIMEOUT = 600.0
"""How long ``POST ?wait=ready`` waits for SSH before answering 503 (it keeps starting)."""
READY_POLL = 0.2
MAX_LOGGED_PATH = 200
M = TypeVar("M", bound=BaseModel)

log = logging.getLogger("devenv.api")
bearer = HTTPBearer(
    auto_error=False,
    description="A token from `devenv token` (the local admin) or `devenv users add NAME`.",
)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in (
        (400, "The body is not JSON."),
        (401, "No token, or a token no user holds."),
        (404, "No environment of that name that this user may see."),
        (409, "The environment has ended (or is ending), or the name is taken."),
        (413, "Body over 64 kB."),
        (422, "A value devenv does not accept; nothing changed."),
        (502, "The environment could not be provisioned (`wait=ready`)."),
        (503, "No worker or Temporal server answered; nothing changed."),
    )
}


def create_app(client: AsyncClient, store: UserStore) -> FastAPI:
    """The API over ``client`` (the server's one SDK client) and ``store`` (its users)."""
    app = FastAPI(
        title="devenv",
        version=__version__,
        summary="Durable, self-cleaning development environments.",
        description=(
            "Every call needs `Authorization: Bearer TOKEN`. A user sees and changes only "
            'their own environments; an admin sees all. Errors are `{"error": "one '
            'line"}`; bodies over 64 kB are refused with 413.'
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.client = client
    app.state.store = store
    app.state.locks = weakref.WeakValueDictionary()
    app.add_exception_handler(DevenvError, _devenv_error)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _api_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    _routes(app)
    app.add_middleware(Guard)
    return app


# ---------------------------------------------------------------------- who calls


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user holding the request's bearer token; 401 (logged, never the token) else.

    Async on purpose: FastAPI would run a plain function in a thread for every request."""
    store: UserStore = request.app.state.store
    peer = request.client.host if request.client else "?"
    if credentials is None:
        log.warning("api: 401 %s %r from %s: no bearer token", request.method, _path(request), peer)
        raise ApiError(
            401,
            "missing bearer token: send `Authorization: Bearer TOKEN` "
            "(`devenv token` prints the admin's)",
            ServerRefusedError,
        )
    user = store.authenticate(credentials.credentials)
    if user is None:
        log.warning("api: 401 %s %r from %s: wrong token", request.method, _path(request), peer)
        raise ApiError(401, "invalid token", ServerRefusedError)
    request.state.user = user.name
    return user


Caller = Annotated[User, Depends(caller)]


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


async def _seen(
    request: Request, user: User, name: str, action: Action = Action.SEE
) -> tuple[AsyncEnvironment, EnvironmentStatus]:
    """The environment ``name`` and its listed row, if the authority table lets ``user``
    do ``action``: anyone else gets exactly the error of a name that does not exist, so
    that nobody learns what others run; a member doing what only the owner may, a 403."""
    env = await _client(request).get(name)
    listed = await env.listed_status()
    authority.require(user, listed, action, name)
    return env, listed


def _now() -> datetime:
    return datetime.now(UTC)


def _one_change_at_a_time(request: Request, env: AsyncEnvironment) -> asyncio.Lock:
    """Changes of one environment through this server go one by one, in arrival order.

    The workflow applies Updates one at a time anyway; queueing them here keeps the
    server's limit on in-flight Updates per workflow (10) out of reach of a burst of
    PATCHes, makes the last one to arrive the one that wins, and lets each answer show
    its own change."""
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = request.app.state.locks
    lock = locks.get(env.workflow_id)
    if lock is None:
        lock = locks[env.workflow_id] = asyncio.Lock()
    return lock


# ---------------------------------------------------------------------- routes


def _routes(app: FastAPI) -> None:
    @app.get(
        f"{PREFIX}/environments",
        response_model=list[EnvironmentStatus],
        responses=ERRORS,
        summary="List environments (`devenv ps --json`)",
    )
    async def list_environments(
        request: Request,
        response: Response,
        user: Caller,
        include_ended: Annotated[
            bool, Query(alias="all", description="Include ended environments.")
        ] = False,
    ) -> list[EnvironmentStatus]:
        """The caller's environments (an admin: everyone's), each the `ps --json` object."""
        listed = await _client(request).list(all=include_ended)
        if user.admin and listed.unanswered:
            response.headers[UNANSWERED_HEADER] = ",".join(listed.unanswered)
        return [row for row in listed if authority.may_see(user, row)]

    @app.post(
        f"{PREFIX}/environments",
        status_code=201,
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Start an environment (`devenv start`)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": CONFIG_SCHEMA, "example": CONFIG_EXAMPLE}
                },
            }
        },
    )
    async def start_environment(
        request: Request,
        response: Response,
        user: Caller,
        wait: Annotated[
            Literal["ready"] | None,
            Query(description="`ready`: answer once it accepts SSH, not once it is started."),
        ] = None,
    ) -> EnvironmentStatus:
        """Start an environment owned by the caller, accepting the caller's SSH key.

        Answers once its workflow started (status `provisioning`), or with `wait=ready`
        once it accepts SSH.
        """
        config = await _json_object(request, "the configuration's keys, as in the YAML")
        admin_only.check_start(config, user.admin, _client(request).settings)
        if user.public_key is None and not user.admin:
            raise ApiError(
                422,
                f"user {user.name!r} has no SSH public key, so no environment would let them "
                f"in; register one with `devenv users add NAME --key FILE` "
                f"(an existing user: `devenv users key {user.name} FILE`)",
                InvalidValueError,
            )
        authority.require_start(user, config)
        env = await _client(request).start(
            config, wait=False, owner=user.name, public_key=user.public_key
        )
        response.headers["Location"] = f"{PREFIX}/environments/{env.name}"
        return await (_ready(env) if wait == "ready" else env.status())

    @app.get(
        f"{PREFIX}/environments/{{name}}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="One environment (`devenv ps NAME --json`)",
    )
    async def get_environment(request: Request, user: Caller, name: str) -> EnvironmentStatus:
        """Status, presence, thresholds and deadline; `name` may be `devenv-NAME`."""
        return await (await _seen(request, user, name))[0].status()

    @app.get(
        f"{PREFIX}/environments/{{name}}/events",
        response_model=list[EnvEvent],
        responses=ERRORS,
        summary="What happened to it (`devenv logs NAME --json`)",
    )
    async def environment_events(request: Request, user: Caller, name: str) -> list[EnvEvent]:
        """Its history of events in plain words, oldest first."""
        return await (await _seen(request, user, name))[0].events()

    @app.get(
        f"{PREFIX}/environments/{{name}}/connection",
        response_model=SshAccess,
        responses=ERRORS,
        summary="How to log in to it over SSH (`devenv ssh NAME` in remote mode)",
    )
    async def environment_connection(request: Request, user: Caller, name: str) -> SshAccess:
        """Host, port, account and host key of a running environment; its owner and the
        members it is shared with log in with their own registered key. A 409 once ended."""
        env, _ = await _seen(request, user, name, Action.CONNECT)
        state = await env.state()
        if state.status != Status.RUNNING or state.instance is None:
            raise EnvironmentEndedError(
                f"environment {env.name!r} is {state.status.value}, not running"
            )
        return SshAccess.of(env.name, state.instance, state.spec.ide)

    @app.patch(
        f"{PREFIX}/environments/{{name}}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Change thresholds, extend, share, at once (`devenv signal`, `devenv share`)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ThresholdChanges.model_json_schema()}},
            }
        },
    )
    async def change_environment(request: Request, user: Caller, name: str) -> EnvironmentStatus:
        """In force at once; a lowered threshold already exceeded terminates it. A bad
        value is a 422 with the CLI's line and changes nothing; an ended one a 409."""
        changes = await _body(request, ThresholdChanges)
        given = changes.given()
        env, listed = await _seen(request, user, name)
        role = authority.require_change(user, listed, given, name)
        async with _one_change_at_a_time(request, env):
            if role is authority.Role.MEMBER and given.keys() & {
                "inactivity_duration",
                "max_duration",
                "stop_at",
            }:
                authority.require_not_ending(listed, await env.state(), given, _now())
            return await env.update(**given, by=user.name)

    @app.delete(
        f"{PREFIX}/environments/{{name}}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Stop it now (`devenv stop`)",
    )
    async def stop_environment(
        request: Request,
        user: Caller,
        name: str,
        wait: Annotated[bool, Query(description="Answer once it is terminated.")] = False,
        purge: Annotated[bool, Query(description="Delete its workspace too.")] = False,
    ) -> EnvironmentStatus:
        """Terminate it (reason `stopped_by_user`; its events say who stopped it). Its
        owner or an admin only: members of a shared environment get a 403."""
        env, _ = await _seen(request, user, name, Action.STOP)
        async with _one_change_at_a_time(request, env):
            return await env.stop(
                wait=wait, purge=purge, reason=f"stopped by {user.name} via the API"
            )


async def _ready(env: AsyncEnvironment) -> EnvironmentStatus:
    """Poll until it accepts SSH; ProvisioningFailedError if it ended instead."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + READY_TIMEOUT
    while True:
        status = await env.status()
        if status.status != Status.PROVISIONING:
            break
        if loop.time() > give_up:
            raise NotAnsweringError(
                f"environment {env.name!r} still provisioning after {READY_TIMEOUT:.0f}s; "
                f"it keeps starting: GET {PREFIX}/environments/{env.name}"
            )
        await asyncio.sleep(READY_POLL)
    if status.status != Status.RUNNING:
        raise ProvisioningFailedError(
            f"environment {env.name!r} could not start: {status.termination_reason} "
            f"(details: GET {PREFIX}/environments/{env.name}/events)"
        )
    return status


# ---------------------------------------------------------------------- bodies


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


async def _json_object(request: Request, expected: str) -> dict[str, Any]:
    data = await _json(request, expected)
    if not isinstance(data, dict):
        raise ApiError(
            422,
            f"body: expected a JSON object with {expected}, got {_kind(data)}",
            InvalidValueError,
        )
    return data


async def _body(request: Request, model: type[M]) -> M:
    keys = ", ".join(model.model_fields)
    data = await _json_object(request, f"any of {keys}")
    try:
        return model.model_validate(data)
    except ValidationError as problem:
        raise ApiError(422, describe_validation_error(problem, model), InvalidValueError) from None


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


# ---------------------------------------------------------------------- errors


def error_response(
    status: int, message: str, kind: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": one_line(message)},
        status_code=status,
        headers={ERROR_CLASS_HEADER: kind, **(headers or {})},
    )


async def _devenv_error(request: Request, problem: DevenvError) -> JSONResponse:
    status = status_of(problem)
    if status >= 500:
        log.warning("api: %d %s %r: %s", status, request.method, _path(request), problem)
    return error_response(status, str(problem), type(problem).__name__)


async def _api_error(request: Request, problem: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
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
        404: f"no such endpoint: {_path(request)!r} (see /docs)",
        405: f"method {request.method} not allowed on {_path(request)!r} (see /docs)",
    }
    message = messages.get(problem.status_code, str(problem.detail))
    return error_response(
        problem.status_code,
        message,
        EnvironmentNotFoundError.__name__ if problem.status_code == 404 else "UserError",
        dict(problem.headers or {}),
    )


def _path(request: Request) -> str:
    return request.url.path[:MAX_LOGGED_PATH]


# ---------------------------------------------------------------------- the guard


class Guard:
    """Outermost: refuses bodies over 64 kB (413) before any route reads them, answers
    an unexpected exception with a one-line 500 (the traceback goes to the server log
    only) and logs one line per request: who, what, status, time; never a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        answered = 0

        async def sending(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = int(message["status"])
            await send(message)

        try:
            body = await _read_bounded(scope, receive)
            if body is None:
                await _send_error(sending, 413, f"body larger than {MAX_BODY_BYTES // 1024} kB")
                return
            await self.app(scope, _replay(body, receive), sending)
        except Exception:
            log.exception("api: internal error in %s %r", scope["method"], _scope_path(scope))
            if not answered:
                await _send_error(sending, 500, "internal error in the devenv server (see its log)")
        finally:
            user = scope.get("state", {}).get("user", "-")
            log.info(
                "api: %s %s %r -> %s (%.1f ms)",
                user,
                scope["method"],
                _scope_path(scope),
                answered or "no answer",
                (time.perf_counter() - began) * 1000,
            )


async def _read_bounded(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed the limit."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                if int(value) > MAX_BODY_BYTES:
                    return None
            except ValueError:
                pass
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # the client went away; the route will see the disconnect
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_error(send: Send, status: int, message: str) -> None:
    kind = InvalidValueError.__name__ if status == 413 else DevenvError.__name__
    await error_response(status, message, kind)({"type": "http"}, _nothing, send)


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


def _scope_path(scope: Scope) -> str:
    return str(scope.get("path", ""))[:MAX_LOGGED_PATH]
