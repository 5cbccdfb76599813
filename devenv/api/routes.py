"""The routes of the HTTP API: each one a call of the SDK, for one authenticated user.

Who may do what is devenv.api.authority's table, which every route consults: a user
sees the environments they own or that are shared with them (another's is a 404,
exactly as if it did not exist); an admin sees all. Paths, parameters and headers are
``devenv.wire``'s names, which the SDK's HTTP transport sends.
"""

from __future__ import annotations

import asyncio
import weakref
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request, Response

from devenv import wire
from devenv.api import admin_only, authority, metrics
from devenv.api.auth import Caller
from devenv.api.authority import Action
from devenv.api.bodies import body_as, json_object
from devenv.api.caller_env import pop_caller_env
from devenv.api.errors import ApiError
from devenv.api.schemas import CONFIG_EXAMPLE, CONFIG_SCHEMA
from devenv.client.async_client import AsyncClient
from devenv.client.environment import AsyncEnvironment
from devenv.client.tokens import User
from devenv.errors import (
    EnvironmentEndedError,
    InvalidValueError,
    NotAnsweringError,
    ProvisioningFailedError,
)
from devenv.models.state import EnvEvent, Status
from devenv.models.status import EnvironmentStatus, SshAccess

READY_TIMEOUT = 600.0
"""How long ``POST ?wait=ready`` waits for SSH before answering 503 (it keeps starting)."""
READY_POLL = 0.2
PREFIX = wire.PREFIX

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": wire.ErrorBody, "description": what}
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


def add_routes(app: FastAPI) -> None:
    """The routes of ``app``."""
    metrics.add_route(app)  # GET /metrics, Prometheus's format (devenv.api.metrics)

    @app.get(
        f"{PREFIX}{wire.ENVIRONMENTS}",
        response_model=list[EnvironmentStatus],
        responses=ERRORS,
        summary="List environments (`devenv ps --json`)",
    )
    async def list_environments(
        request: Request,
        response: Response,
        user: Caller,
        include_ended: Annotated[
            bool, Query(alias=wire.ALL, description="Include ended environments.")
        ] = False,
        group: Annotated[
            str | None,
            Query(alias=wire.GROUP, description="Only the environments of this group."),
        ] = None,
    ) -> list[EnvironmentStatus]:
        """The caller's environments (an admin: everyone's), each the `ps --json` object."""
        listed = await _client(request).list(all=include_ended, group=group)
        if user.admin and listed.unanswered:
            response.headers[wire.UNANSWERED_HEADER] = ",".join(listed.unanswered)
        return [row for row in listed if authority.may_see(user, row)]

    @app.post(
        f"{PREFIX}{wire.ENVIRONMENTS}",
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
            Literal["ready"] | None,  # wire.WAIT_READY
            Query(
                alias=wire.WAIT,
                description="`ready`: answer once it accepts SSH, not once it is started.",
            ),
        ] = None,
    ) -> EnvironmentStatus:
        """Start an environment owned by the caller, accepting the caller's SSH key.

        Answers once its workflow started (status `provisioning`), or with `wait=ready`
        once it accepts SSH.
        """
        config = await json_object(request, "the configuration's keys, as in the YAML")
        caller_env = pop_caller_env(config)
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
            config,
            wait=False,
            owner=user.name,
            public_key=user.public_key,
            caller_env=caller_env,
        )
        response.headers[wire.LOCATION] = f"{PREFIX}{wire.environment(env.name)}"
        return await (_ready(env) if wait == wire.WAIT_READY else env.status())

    @app.get(
        f"{PREFIX}{wire.ENVIRONMENT}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="One environment (`devenv ps NAME --json`)",
    )
    async def get_environment(request: Request, user: Caller, name: str) -> EnvironmentStatus:
        """Status, presence, thresholds and deadline; `name` may be `devenv-NAME`."""
        return await (await _seen(request, user, name))[0].status()

    @app.get(
        f"{PREFIX}{wire.EVENTS}",
        response_model=list[EnvEvent],
        responses=ERRORS,
        summary="What happened to it (`devenv logs NAME --json`)",
    )
    async def environment_events(request: Request, user: Caller, name: str) -> list[EnvEvent]:
        """Its history of events in plain words, oldest first."""
        return await (await _seen(request, user, name))[0].events()

    @app.get(
        f"{PREFIX}{wire.CONNECTION}",
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
        f"{PREFIX}{wire.ENVIRONMENT}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Change thresholds, extend, share, at once (`devenv signal`, `devenv share`)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": wire.ThresholdChanges.model_json_schema()}
                },
            }
        },
    )
    async def change_environment(request: Request, user: Caller, name: str) -> EnvironmentStatus:
        """In force at once; a lowered threshold already exceeded terminates it. A bad
        value is a 422 with the CLI's line and changes nothing; an ended one a 409."""
        changes = await body_as(request, wire.ThresholdChanges)
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
        f"{PREFIX}{wire.ENVIRONMENT}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Stop it now (`devenv stop`)",
    )
    async def stop_environment(
        request: Request,
        user: Caller,
        name: str,
        wait: Annotated[
            bool, Query(alias=wire.WAIT, description="Answer once it is terminated.")
        ] = False,
        purge: Annotated[
            bool, Query(alias=wire.PURGE, description="Delete its workspace too.")
        ] = False,
    ) -> EnvironmentStatus:
        """Terminate it (reason `stopped_by_user`; its events say who stopped it). Its
        owner or an admin only: members of a shared environment get a 403."""
        env, _ = await _seen(request, user, name, Action.STOP)
        async with _one_change_at_a_time(request, env):
            return await env.stop(
                wait=wait, purge=purge, reason=f"stopped by {user.name} via the API"
            )

    @app.post(
        f"{PREFIX}{wire.SUSPEND}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Suspend it (`devenv suspend`): processes end, the workspace is kept",
    )
    async def suspend_environment(
        request: Request,
        user: Caller,
        name: str,
        wait: Annotated[
            bool, Query(alias=wire.WAIT, description="Answer once it is suspended.")
        ] = False,
    ) -> EnvironmentStatus:
        """Suspend a running one (its events say who asked); `POST .../resume` brings it
        back, `delete_after` deletes it. A 422 (nothing changed) unless it is running on a
        backend that can suspend. Its owner or an admin only: members get a 403, as for a stop."""
        env, _ = await _seen(request, user, name, Action.SUSPEND)
        async with _one_change_at_a_time(request, env):
            return await env.suspend(wait=wait, reason=f"by {user.name} via the API")

    @app.post(
        f"{PREFIX}{wire.RESUME}",
        response_model=EnvironmentStatus,
        responses=ERRORS,
        summary="Resume a suspended one (`devenv resume`)",
    )
    async def resume_environment(
        request: Request,
        user: Caller,
        name: str,
        wait: Annotated[
            bool, Query(alias=wire.WAIT, description="Answer once it accepts SSH.")
        ] = False,
    ) -> EnvironmentStatus:
        """Start it again with its workspace (the port may change, the host key stays:
        `GET .../connection` says where). A 422 (nothing changed) unless it is suspended.
        Its owner, the members it is shared with, and admins."""
        env, _ = await _seen(request, user, name, Action.RESUME)
        async with _one_change_at_a_time(request, env):
            status = await env.transport.request_resume(f"by {user.name} via the API")
        if not wait:
            return status
        from devenv.client.suspension import wait_resumed

        return (await wait_resumed(env.transport, lambda _text, _transient: None)).status


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
                f"it keeps starting: GET {PREFIX}{wire.environment(env.name)}"
            )
        await asyncio.sleep(READY_POLL)
    if status.status != Status.RUNNING:
        raise ProvisioningFailedError(
            f"environment {env.name!r} could not start: {status.termination_reason} "
            f"(details: GET {PREFIX}{wire.events(env.name)})"
        )
    return status
