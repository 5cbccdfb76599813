"""Server answers a user can act on, turned into devenv's own one-line errors.

So that no caller of the SDK (the CLI included) has to know Temporal's error types.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from devenv.errors import DevenvError, ServerRefusedError, ServerUnreachableError

if TYPE_CHECKING:
    from temporalio.service import RPCError

    from devenv.settings import Settings

P = ParamSpec("P")
T = TypeVar("T")


def translate(problem: RPCError, settings: Settings) -> DevenvError | None:
    """One line for server answers the user can act on; None for anything else (a bug)."""
    from temporalio.service import RPCStatusCode

    where = f"the Temporal server at {settings.address}"
    first = problem.message.splitlines()[0][:120] if problem.message else ""
    if problem.status == RPCStatusCode.NOT_FOUND and "amespace" in problem.message:
        return ServerRefusedError(
            f"namespace {settings.namespace!r} does not exist on {where}; "
            "check DEVENV_TEMPORAL_NAMESPACE"
        )
    if problem.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return ServerRefusedError(
            f"{where} refused devenv ({first}); "
            "check DEVENV_TEMPORAL_API_KEY and DEVENV_TEMPORAL_NAMESPACE"
        )
    if problem.status == RPCStatusCode.INVALID_ARGUMENT and "DevEnvGroup" in problem.message:
        return ServerRefusedError(
            f"{where} has no search attribute DevEnvGroup, which groups need; restart "
            "`devenv server` (the embedded server registers it) or, on a cluster of your "
            "own: temporal operator search-attribute create --name DevEnvGroup --type Keyword"
        )
    if problem.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        error = ServerUnreachableError(f"{where} stopped answering ({first})")
        error.hint = "is it running? (`devenv server`)"
        return error
    return None


def translated(
    method: Callable[P, Coroutine[Any, Any, T]],
) -> Callable[P, Coroutine[Any, Any, T]]:
    """Decorate an SDK method of an object with ``settings`` (or ``_client.settings``)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with _translating(args[0]):
            return await method(*args, **kwargs)

    return wrapper


def translated_pages(
    method: Callable[P, AsyncGenerator[T, None]],
) -> Callable[P, AsyncGenerator[T, None]]:
    """``translated`` for an SDK method that yields (pages of a listing)."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> AsyncGenerator[T, None]:
        with _translating(args[0]):
            async for item in method(*args, **kwargs):
                yield item

    return wrapper


@contextlib.contextmanager
def _translating(owner: Any) -> Iterator[None]:
    """Raise devenv's one-line error for what the server said, if a user can act on it;
    anything else unchanged."""
    try:
        yield
    except Exception as raised:
        error = _translated(owner, raised)
        if error is raised:
            raise
        raise error from None


def _translated(owner: Any, raised: Exception) -> Exception:
    """devenv's one-line error for ``raised`` if the server said something a user can act
    on; ``raised`` itself otherwise."""
    problem = _rpc_error(raised)
    if problem is None:
        return raised
    settings = getattr(owner, "settings", None) or owner._client.settings
    return translate(problem, settings) or raised


def _rpc_error(problem: Exception) -> RPCError | None:
    """``problem`` if it is a Temporal RPCError. Temporal is imported only by the calls
    that talk to it: while it is not loaded, nothing could have raised one (remote
    mode, checks of input), and it is not loaded just to say so."""
    if "temporalio.service" not in sys.modules:
        return None
    from temporalio.service import RPCError

    return problem if isinstance(problem, RPCError) else None
