"""Who calls: the bearer token of each request, as one of the API's users.

A missing or wrong token is a 401 naming what to send, logged with the path and the
peer, never the token.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from devenv import wire
from devenv.api.errors import ApiError, logged_path
from devenv.client.tokens import User, UserStore
from devenv.errors import ServerRefusedError

log = logging.getLogger("devenv.api")
bearer = HTTPBearer(
    auto_error=False,
    description="A token from `devenv token` (the local admin) or `devenv users add NAME`.",
)


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user holding the request's bearer token; 401 (logged, never the token) else.

    Async on purpose: FastAPI would run a plain function in a thread for every request."""
    store: UserStore = request.app.state.store
    peer = request.client.host if request.client else "?"
    if credentials is None:
        log.warning(
            "api: 401 %s %r from %s: no bearer token", request.method, logged_path(request), peer
        )
        raise ApiError(
            401,
            f"missing bearer token: send `{wire.AUTHORIZATION}: {wire.BEARER} TOKEN` "
            "(`devenv token` prints the admin's)",
            ServerRefusedError,
        )
    user = store.authenticate(credentials.credentials)
    if user is None:
        log.warning(
            "api: 401 %s %r from %s: wrong token", request.method, logged_path(request), peer
        )
        raise ApiError(401, "invalid token", ServerRefusedError)
    request.state.user = user.name
    return user


Caller = Annotated[User, Depends(caller)]
