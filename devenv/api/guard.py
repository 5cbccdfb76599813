"""The outermost middleware: a bound on bodies, one-line 500s, one log line a request."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from devenv.api.errors import MAX_LOGGED_PATH, error_response
from devenv.errors import DevenvError, InvalidValueError

MAX_BODY_BYTES = 64 * 1024

log = logging.getLogger("devenv.api")


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
