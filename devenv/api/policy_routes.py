"""The routes of the admins' policies: ``GET/PUT/DELETE /api/v1/policy``.

Setting and clearing are an admin's (``authority.require_policy_change``, a 403 for
anyone else); reading shows an admin everything and anyone else what binds them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, Query, Request

from devenv import wire
from devenv.api import authority
from devenv.api.auth import Caller
from devenv.api.bodies import body_as
from devenv.api.routes import ERRORS
from devenv.client.async_client import AsyncClient
from devenv.client.tokens import User
from devenv.models.policy import PolicyStatus

PREFIX = wire.PREFIX
POLICY_ERRORS = ERRORS | {403: {"model": wire.ErrorBody, "description": "Not an admin."}}


def _client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.client
    return client


def _seen_by(user: User, status: PolicyStatus) -> PolicyStatus:
    """An admin sees every scope; anyone else everyone's and their own."""
    if user.admin:
        return status
    shown = status.model_copy(deep=True)
    shown.policies.users = {
        name: scope for name, scope in shown.policies.users.items() if name == user.name
    }
    shown.policies.over_budget = {
        name: spent for name, spent in shown.policies.over_budget.items() if name == user.name
    }
    if shown.idle is not None:
        shown.idle.spends = {n: s for n, s in shown.idle.spends.items() if n == user.name}
        shown.idle.week_starts = {n: s for n, s in shown.idle.week_starts.items() if n == user.name}
    return shown


def add_policy_routes(app: FastAPI) -> None:
    """The policy routes of ``app``."""

    @app.get(
        f"{PREFIX}{wire.POLICY}",
        response_model=PolicyStatus,
        responses=POLICY_ERRORS,
        summary="The policies (`devenv policy show --json`)",
    )
    async def get_policy(request: Request, user: Caller) -> PolicyStatus:
        """Everyone's policy and each user's (a non-admin: their own), and how far the
        latest version has reached the running environments."""
        return _seen_by(user, await _client(request).policies())

    @app.put(
        f"{PREFIX}{wire.POLICY}",
        response_model=PolicyStatus,
        responses=POLICY_ERRORS,
        summary="Set keys of a scope's policy (`devenv policy set`); admins only",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": wire.PolicyBody.model_json_schema()}},
            }
        },
    )
    async def put_policy(request: Request, user: Caller) -> PolicyStatus:
        """The keys given replace the scope's (the others stay); new starts are bound at
        once, running environments right after. A value outside what is accepted is a
        422 naming the key; nothing changed."""
        authority.require_policy_change(user)
        body = await body_as(request, wire.PolicyBody)
        return await _client(request).set_policy(user=body.user, by=user.name, **body.keys())

    @app.delete(
        f"{PREFIX}{wire.POLICY}",
        response_model=PolicyStatus,
        responses=POLICY_ERRORS,
        summary="Clear a scope's policy (`devenv policy clear`); admins only",
    )
    async def delete_policy(
        request: Request,
        user: Caller,
        scope: Annotated[
            str | None,
            Query(alias=wire.USER, description="That user's scope; absent: everyone's."),
        ] = None,
    ) -> PolicyStatus:
        """Every key of the scope removed; running environments get their own values back."""
        authority.require_policy_change(user)
        return await _client(request).clear_policy(user=scope, by=user.name)
