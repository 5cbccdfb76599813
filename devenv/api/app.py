"""The HTTP API, assembled: its routes (``routes``), who calls (``auth``), request
bodies (``bodies``), errors as one-line answers (``errors``) and the outermost guard
(``guard``). Every error is ``{"error": "one line"}``; the wire's names are
``devenv.wire``'s.
"""

from __future__ import annotations

import weakref

from fastapi import FastAPI

from devenv import __version__, wire
from devenv.api.errors import add_handlers
from devenv.api.guard import MAX_BODY_BYTES, Guard
from devenv.api.policy_routes import add_policy_routes
from devenv.api.routes import add_routes
from devenv.client.async_client import AsyncClient
from devenv.client.tokens import UserStore


def create_app(client: AsyncClient, store: UserStore) -> FastAPI:
    """The API over ``client`` (the server's one SDK client) and ``store`` (its users)."""
    app = FastAPI(
        title="devenv",
        version=__version__,
        summary="Durable, self-cleaning development environments.",
        description=(
            f"Every call needs `{wire.AUTHORIZATION}: {wire.BEARER} TOKEN`. A user sees and "
            "changes only their own environments; an admin sees all. Errors are "
            f'`{{"{wire.ERROR_KEY}": "one line"}}`; bodies over {MAX_BODY_BYTES // 1024} kB '
            "are refused with 413."
        ),
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.client = client
    app.state.store = store
    app.state.locks = weakref.WeakValueDictionary()
    add_handlers(app)
    add_routes(app)
    add_policy_routes(app)
    app.add_middleware(Guard)
    return app
