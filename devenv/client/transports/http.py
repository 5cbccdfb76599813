"""The HTTP transport (remote mode): the same calls over a devenv server's HTTP API.

``AsyncClient()`` uses it when ``DEVENV_SERVER_URL`` is set (``DEVENV_TOKEN`` holds the
bearer token), so scripts and every CLI command work against a server without any
Temporal access: the same methods, the same return types, and the same exception
classes, raised with the server's one-line message. The names on the wire are
``devenv.wire``'s, which the API serves.

Not available remotely: ``state()`` (the workflow's whole state), ``gc`` and ``report``.
``ssh_config()`` asks the server how to log in and writes the entry on this machine;
the address is the one the server sees (an ssh or aws host; a local environment only
from the server's host).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import weakref
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from devenv import wire
from devenv.client import checks
from devenv.client.options import Progress, Unset
from devenv.client.refs import candidate_ids
from devenv.client.transports.base import EnvironmentTransport, Ready, StartRequest, Transport
from devenv.errors import (
    DevenvError,
    EnvironmentEndedError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAnsweringError,
    ProvisioningFailedError,
    ServerRefusedError,
    ServerUnreachableError,
    UserError,
)
from devenv.models.state import EnvEvent, EnvState, Status
from devenv.models.status import EnvironmentList, EnvironmentPage, EnvironmentStatus, SshAccess
from devenv.settings import Settings

if TYPE_CHECKING:
    from devenv.client.changes import Changes
    from devenv.client.gc import GcReport, OnRemoved
    from devenv.models.policy import PolicyStatus

REQUEST_TIMEOUT = 30.0
"""Seconds for one ordinary call; the server's own waits for Temporal are 20 s at most."""
READY_TIMEOUT = 660.0
"""``start(wait=True)``: the server answers within 600 s."""
READY_POLL = 0.2
BY_STATUS: dict[int, type[DevenvError]] = {
    401: ServerRefusedError,
    404: EnvironmentNotFoundError,
    409: EnvironmentEndedError,
    413: InvalidValueError,
    422: InvalidValueError,
    503: NotAnsweringError,
}
"""The class of an error answer that names none ``wire.ERROR_CLASSES`` knows."""
EVENTS = TypeAdapter(list[EnvEvent])
STATUSES = TypeAdapter(list[EnvironmentStatus])
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
NOT_REMOTE = "not available in remote mode (DEVENV_SERVER_URL is set)"


class HttpTransport(Transport):
    """A devenv server's HTTP API. ``server_url`` / ``token`` default to
    ``DEVENV_SERVER_URL`` / ``DEVENV_TOKEN`` of ``settings``."""

    def __init__(
        self, settings: Settings, *, server_url: str | None = None, token: str | None = None
    ) -> None:
        self.settings = settings
        url = server_url or settings.server_url
        if url is None:
            raise InvalidValueError(
                "remote mode needs the devenv server's URL: set DEVENV_SERVER_URL "
                "(e.g. http://127.0.0.1:8234)"
            )
        self.server_url = url.rstrip("/")
        self._token = SecretStr(token) if token is not None else settings.token
        self._https: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"<HttpTransport {self.server_url}>"

    async def temporal(self) -> NoReturn:
        """Remote mode has no Temporal client: everything goes through the server."""
        raise UserError(f"no Temporal client: {NOT_REMOTE}; the devenv server talks to Temporal")

    async def start(self, request: StartRequest, say: Progress) -> HttpEnvironment:
        """Started on the server (``POST``), owned by the token's user and accepting the
        key registered for them. Validated here first, so that errors name the file."""
        from devenv.client.caller_env import split_env
        from devenv.config.loader import parse_config

        if request.owner is not None or request.public_key is not None:
            raise InvalidValueError(
                "owner and public_key: in remote mode the server takes them from the "
                "token's user (`devenv users add NAME --key FILE`)"
            )
        data, source = checks.configuration_data(request.config, request.overrides)
        if request.name is not None:
            data["name"] = checks.checked_name(request.name)
        parsed = parse_config(data, source)  # the server validates again; this names the file
        _, secret = split_env(parsed.env, request.caller_env)
        say(f"Starting on {self.server_url}…", True)
        response = await self.request(
            "POST",
            wire.ENVIRONMENTS,
            params={wire.WAIT: wire.WAIT_READY} if request.wait else None,
            body=to_jsonable_python(data, fallback=str)
            | ({wire.CALLER_ENV: secret} if secret else {}),
            timeout=READY_TIMEOUT if request.wait else REQUEST_TIMEOUT,
        )
        status = self.parsed(response, EnvironmentStatus)
        return HttpEnvironment(self, status.name)

    async def get(self, ref: str) -> HttpEnvironment:
        """``ref`` if the token's user may see it; EnvironmentNotFoundError otherwise."""
        candidate_ids(ref)
        response = await self.request("GET", wire.environment(ref))
        return HttpEnvironment(self, self.parsed(response, EnvironmentStatus).name)

    async def list(self, all: bool, group: str | None = None) -> EnvironmentList:
        """The token's user's environments (an admin's: all)."""
        params = {wire.ALL: wire.TRUE} if all else {}
        if group is not None:
            params[wire.GROUP] = group
        response = await self.request("GET", wire.ENVIRONMENTS, params=params or None)
        rows = _parsed(response, STATUSES.validate_json, self.server_url)
        unanswered = response.headers.get(wire.UNANSWERED_HEADER, "")
        return EnvironmentList(rows, [item for item in unanswered.split(",") if item])

    async def list_pages(
        self, all: bool, first_page_size: int | None, group: str | None = None
    ) -> AsyncIterator[EnvironmentPage]:
        """One page: the API answers a listing whole."""
        listed = await self.list(all, group)
        yield EnvironmentPage(list(listed), listed.unanswered, last=True)

    async def gc(
        self, remove: bool, report: GcReport | None, on_removed: OnRemoved | None
    ) -> NoReturn:
        await self.temporal()

    async def report(self, period: timedelta) -> NoReturn:
        await self.temporal()

    async def policies(self) -> PolicyStatus:
        """An admin's: all of them; another user's: everyone's and their own scope."""
        from devenv.models.policy import PolicyStatus

        return self.parsed(await self.request("GET", wire.POLICY), PolicyStatus)

    async def change_policy(
        self, user: str | None, keys: Mapping[str, Any], clear: bool, by: str | None
    ) -> PolicyStatus:
        """Admins only (a 403 otherwise); recorded as done by the token's user."""
        if by is not None:
            raise InvalidValueError("by: in remote mode the server records the token's user")
        from devenv.models.policy import PolicyStatus

        if clear:
            response = await self.request(
                "DELETE", wire.POLICY, params=None if user is None else {wire.USER: user}
            )
        else:
            body = dict(keys) | ({} if user is None else {"user": user})
            response = await self.request(
                "PUT", wire.POLICY, body=to_jsonable_python(body, fallback=str)
            )
        return self.parsed(response, PolicyStatus)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> httpx.Response:
        """One call of the API (``path`` below ``wire.PREFIX``); a refusal becomes the
        devenv error the server named."""
        if self._token is None:
            raise InvalidValueError(
                "DEVENV_TOKEN is not set: remote mode (DEVENV_SERVER_URL) needs a token; "
                "`devenv token` on the server prints the admin's, `devenv users add` makes others"
            )
        headers = {wire.AUTHORIZATION: f"{wire.BEARER} {self._token.get_secret_value()}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        try:
            response = await self._http().request(
                method,
                f"{self.server_url}{wire.PREFIX}{path}",
                params=params,
                content=content,
                headers=headers,
                timeout=timeout,
            )
        except httpx.TimeoutException:
            raise NotAnsweringError(
                f"the devenv server at {self.server_url} did not answer within {timeout:.0f}s"
            ) from None
        except httpx.HTTPError as problem:
            if _untrusted_certificate(problem):
                error = ServerUnreachableError(
                    f"the devenv server at {self.server_url} presented a TLS certificate this "
                    "machine does not trust"
                )
                error.hint = "set SSL_CERT_FILE to the PEM file of the CA that signed it"
                raise error from None
            error = ServerUnreachableError(
                f"no devenv server answers at {self.server_url} ({type(problem).__name__})"
            )
            error.hint = "check DEVENV_SERVER_URL, or start `devenv server` there"
            raise error from None
        if response.status_code >= 400:
            raise _refusal(response, self.server_url)
        return response

    def parsed(self, response: httpx.Response, model: type[M]) -> M:
        """The answer as ``model``; one line if the server answered something else."""
        return _parsed(response, model.model_validate_json, self.server_url)

    async def aclose(self) -> None:
        """Close this loop's connections (they are also dropped with the loop)."""
        http = self._https.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    def _http(self) -> httpx.AsyncClient:
        """One connection pool per event loop: the blocking ``Client`` runs its own loop
        and each CLI command another, and a pool must not outlive its loop."""
        loop = asyncio.get_running_loop()
        http = self._https.get(loop)
        if http is None:
            http = self._https[loop] = httpx.AsyncClient(follow_redirects=False)
        return http


class HttpEnvironment(EnvironmentTransport):
    """One environment through the API; the server decides what it reads."""

    def __init__(self, transport: HttpTransport, name: str) -> None:
        self.transport = transport
        self.settings = transport.settings
        self.name = name

    def where(self) -> str:
        return f" via {self.transport.server_url}"

    def author(self, by: str | None) -> str | None:
        if by is not None:
            raise InvalidValueError(
                "by: in remote mode the server records the token's user as who changed it"
            )
        return None

    async def state(self) -> NoReturn:
        raise UserError(
            f"the whole state of {self.name!r} is {NOT_REMOTE}; "
            f"`devenv ps {self.name}` and `devenv logs {self.name}` work"
        )

    async def status(self) -> EnvironmentStatus:
        response = await self.transport.request("GET", wire.environment(self.name))
        return self.transport.parsed(response, EnvironmentStatus)

    async def listed_status(self) -> EnvironmentStatus:
        """Remotely the same as ``status()``: the server decides what to read."""
        return await self.status()

    async def events(self) -> list[EnvEvent]:
        response = await self.transport.request("GET", wire.events(self.name))
        return _parsed(response, EVENTS.validate_json, self.transport.server_url)

    async def update(self, changes: Changes, by: str | None) -> EnvironmentStatus:
        """Applied by the server at once, recorded as made by the token's user."""
        body: dict[str, int | str | list[str]] = {}
        for key, seconds in (
            ("inactivity_duration", changes.inactivity_duration),
            ("max_duration", changes.max_duration),
            ("extend", changes.extend),
        ):
            if not isinstance(seconds, Unset):
                body[key] = wire.OFF if seconds is None else seconds
        if not isinstance(changes.stop_at, Unset):
            moment = changes.stop_at
            body["stop_at"] = wire.OFF if moment is None else moment.isoformat()
        if not isinstance(changes.shared_with, Unset):
            body["shared_with"] = changes.shared_with
        sent = wire.ThresholdChanges.model_validate(body).given()  # the API's own keys
        response = await self.transport.request("PATCH", wire.environment(self.name), body=sent)
        return self.transport.parsed(response, EnvironmentStatus)

    async def stop(
        self, *, wait: bool, purge: bool, timeout: float, reason: str | None
    ) -> EnvironmentStatus:
        """``DELETE``; the server records who stopped it (``reason`` is its to write)."""
        if reason is not None:
            raise InvalidValueError(
                "reason: in remote mode the server records who stopped it "
                "('stopped by USER via the API')"
            )
        params = {wire.WAIT: wire.flag(wait), wire.PURGE: wire.flag(purge)}
        try:
            response = await self.transport.request(
                "DELETE",
                wire.environment(self.name),
                params=params,
                timeout=timeout + REQUEST_TIMEOUT,
            )
        except NotAnsweringError:
            if not wait:
                raise
            raise NotAnsweringError(
                f"{self.workflow_id}: stop requested, but still not terminated after "
                f"{timeout:.0f}s; see `devenv logs {self.name}`"
            ) from None
        return self.transport.parsed(response, EnvironmentStatus)

    async def request_suspend(self, reason: str | None) -> EnvironmentStatus:
        """``POST .../suspend``; the server records who asked."""
        return await self._post_request(wire.suspend(self.name), reason)

    async def request_resume(self, reason: str | None) -> EnvironmentStatus:
        """``POST .../resume``; the server records who asked."""
        return await self._post_request(wire.resume(self.name), reason)

    async def _post_request(self, path: str, reason: str | None) -> EnvironmentStatus:
        if reason is not None:
            raise InvalidValueError(
                "reason: in remote mode the server records who asked ('by USER via the API')"
            )
        response = await self.transport.request("POST", path, params={wire.WAIT: wire.FALSE})
        return self.transport.parsed(response, EnvironmentStatus)

    async def wait_ready(self, say: Progress) -> Ready:
        loop = asyncio.get_running_loop()
        began = loop.time()
        while (status := await self.status()).status == Status.PROVISIONING:
            say(f"Provisioning {self.name}… {loop.time() - began:.0f}s", True)
            await asyncio.sleep(READY_POLL)
        if status.status != Status.RUNNING:
            raise ProvisioningFailedError(
                f"environment {self.name!r} could not start: {status.termination_reason} "
                f"(details: `devenv logs {self.name}`)"
            )
        return Ready(status, await self.ssh_access(None))

    async def ssh_access(self, state: EnvState | None) -> SshAccess:
        """What the server says (``GET .../connection``: address, account, host key to
        pin); a state read here has no say."""
        response = await self.transport.request("GET", wire.connection(self.name))
        return self.transport.parsed(response, SshAccess)


def _refusal(response: httpx.Response, url: str) -> DevenvError:
    """The server's one line, as the class it named (else the status's usual class)."""
    try:
        payload = response.json()
        line = payload[wire.ERROR_KEY] if isinstance(payload, dict) else None
    except (ValueError, KeyError):
        line = None
    if not isinstance(line, str) or not line:
        line = f"the devenv server at {url} answered HTTP {response.status_code}"
    line = line.splitlines()[0] if line.strip() else line
    status = response.status_code
    kind = wire.ERROR_CLASSES.get(response.headers.get(wire.ERROR_CLASS_HEADER, "")) or (
        BY_STATUS.get(status, DevenvError)
    )
    if status == 401:
        return ServerRefusedError(
            f"the devenv server at {url} refused the token ({line}); check DEVENV_TOKEN"
        )
    return kind(line)


def _parsed(response: httpx.Response, read: Callable[[bytes], T], url: str) -> T:
    try:
        return read(response.content)
    except ValidationError:
        raise DevenvError(f"the devenv server at {url} answered something unexpected") from None


def _untrusted_certificate(problem: BaseException) -> bool:
    """Whether the failure is TLS verification (a self-signed or private-CA certificate)."""
    seen: BaseException | None = problem
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
