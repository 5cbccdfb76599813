"""The SDK in remote mode: the same calls over a devenv server's HTTP API (httpx).

``devenv.AsyncClient()`` is a ``RemoteAsyncClient`` when ``DEVENV_SERVER_URL`` is set
(``DEVENV_TOKEN`` holds the bearer token), so scripts and every CLI command work
against a server without any Temporal access. The classes subclass the direct ones:
the same methods, the same return types, and the same exception classes, raised with
the server's one-line message.

Not available remotely: ``state()`` (the workflow's whole state). ``ssh_config()`` asks
the server how to log in and writes the entry on this machine; the address is the one
the server sees (an ssh or aws host; a local environment only from the server's host).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import weakref
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from devenv.client.aio import (
    _UNSET,
    STOP_WAIT_TIMEOUT,
    AsyncClient,
    AsyncEnvironment,
    ConfigSource,
    Connection,
    Progress,
    _quiet,
    configuration_data,
)
from devenv.client.durations import check_duration, check_stop_at
from devenv.client.models import EnvironmentList, EnvironmentPage, EnvironmentStatus
from devenv.client.refs import candidate_ids
from devenv.config.common import validate_name
from devenv.errors import (
    ChangeRejectedError,
    ConfigError,
    DevenvError,
    EnvironmentEndedError,
    EnvironmentExistsError,
    EnvironmentNotFoundError,
    InvalidValueError,
    NotAnsweringError,
    NoWorkerError,
    ProvisioningFailedError,
    ServerNotAnsweringError,
    ServerRefusedError,
    ServerUnreachableError,
    UserError,
)
from devenv.settings import Settings
from devenv.workflows.state import EnvEvent, EnvState, Status

API = "/api/v1"
REQUEST_TIMEOUT = 30.0
"""Seconds for one ordinary call; the server's own waits for Temporal are 20 s at most."""
READY_TIMEOUT = 660.0
"""``start(wait=True)``: the server answers within 600 s."""
READY_POLL = 0.2
ERROR_CLASS_HEADER = "X-Devenv-Error"
UNANSWERED_HEADER = "X-Devenv-Unanswered"
CLASSES: dict[str, type[DevenvError]] = {
    kind.__name__: kind
    for kind in (
        DevenvError,
        UserError,
        InvalidValueError,
        ConfigError,
        EnvironmentNotFoundError,
        EnvironmentEndedError,
        EnvironmentExistsError,
        ChangeRejectedError,
        ProvisioningFailedError,
        NoWorkerError,
        NotAnsweringError,
        ServerUnreachableError,
        ServerNotAnsweringError,
        ServerRefusedError,
    )
}
"""Classes the server may name; an unknown name falls back on the status code."""
BY_STATUS: dict[int, type[DevenvError]] = {
    401: ServerRefusedError,
    404: EnvironmentNotFoundError,
    409: EnvironmentEndedError,
    413: InvalidValueError,
    422: InvalidValueError,
    503: NotAnsweringError,
}
EVENTS = TypeAdapter(list[EnvEvent])
STATUSES = TypeAdapter(list[EnvironmentStatus])
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
NOT_REMOTE = "not available in remote mode (DEVENV_SERVER_URL is set)"


class RemoteAsyncClient(AsyncClient):
    """``AsyncClient`` over HTTP. ``server_url`` / ``token`` default to
    ``DEVENV_SERVER_URL`` / ``DEVENV_TOKEN``; the Temporal arguments of ``AsyncClient``
    are accepted (``AsyncClient()`` passes them on) but must be left unset."""

    def __init__(
        self,
        *,
        address: str | None = None,
        namespace: str | None = None,
        api_key: str | None = None,
        tls: bool | None = None,
        home: str | Path | None = None,
        settings: Settings | None = None,
        server_url: str | None = None,
        token: str | None = None,
    ) -> None:
        if any(value is not None for value in (address, namespace, api_key, tls)):
            raise InvalidValueError(
                "a remote client talks to the devenv server, not to Temporal: "
                "give no address, namespace, api_key or tls"
            )
        super().__init__(home=home, settings=settings)
        url = server_url or self.settings.server_url
        if url is None:
            raise InvalidValueError(
                "remote mode needs the devenv server's URL: set DEVENV_SERVER_URL "
                "(e.g. http://127.0.0.1:8234)"
            )
        self.server_url = url.rstrip("/")
        self._token = SecretStr(token) if token is not None else self.settings.token
        self._https: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"<RemoteAsyncClient {self.server_url}>"

    async def temporal(self) -> NoReturn:
        """Remote mode has no Temporal client: everything goes through the server."""
        raise UserError(f"no Temporal client: {NOT_REMOTE}; the devenv server talks to Temporal")

    async def start(
        self,
        config: ConfigSource,
        *,
        name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        owner: str | None = None,
        public_key: str | None = None,
        **overrides: Any,
    ) -> RemoteEnvironment:
        """Start it on the server (``POST``), owned by the token's user and accepting
        the key registered for them. Validated here first, so that errors name the file.
        With ``wait`` returns once it accepts SSH, its ssh config entry written here."""
        from devenv.config.loader import parse_config, shorten

        if owner is not None or public_key is not None:
            raise InvalidValueError(
                "owner and public_key: in remote mode the server takes them from the "
                "token's user (`devenv users add NAME --key FILE`)"
            )
        data, source = configuration_data(config, overrides)
        if name is not None:
            try:
                data["name"] = validate_name(name)
            except ValueError as problem:
                raise InvalidValueError(f"name: {shorten(str(problem), name)}") from None
        parse_config(data, source)  # the server validates again; this names the file
        say = progress or _quiet
        say(f"Starting on {self.server_url}…", True)
        response = await self.request(
            "POST",
            "/environments",
            params={"wait": "ready"} if wait else None,
            body=to_jsonable_python(data, fallback=str),
            timeout=READY_TIMEOUT if wait else REQUEST_TIMEOUT,
        )
        status = _parsed(response, EnvironmentStatus, self.server_url)
        env = RemoteEnvironment(self, status.name)
        if wait:
            env.connection = await env.ssh_config()
        return env

    async def get(self, ref: str) -> RemoteEnvironment:
        """The environment called ``ref`` (a name or ``devenv-NAME``), if the token's user
        may see it; EnvironmentNotFoundError otherwise."""
        candidate_ids(ref)
        status = _parsed(
            await self.request("GET", f"/environments/{ref}"), EnvironmentStatus, self.server_url
        )
        return RemoteEnvironment(self, status.name)

    async def list(self, *, all: bool = False) -> EnvironmentList:
        """The token's user's environments (an admin's: all), as ``devenv ps --json``."""
        response = await self.request(
            "GET", "/environments", params={"all": "true"} if all else None
        )
        rows = _parsed_list(response, STATUSES, self.server_url)
        unanswered = response.headers.get(UNANSWERED_HEADER, "")
        return EnvironmentList(rows, [item for item in unanswered.split(",") if item])

    async def list_pages(
        self, *, all: bool = False, first_page_size: int | None = None
    ) -> AsyncGenerator[EnvironmentPage, None]:
        """``list()`` as one page: the API answers a listing whole."""
        listed = await self.list(all=all)
        yield EnvironmentPage(list(listed), listed.unanswered, last=True)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        timeout: float = REQUEST_TIMEOUT,
    ) -> httpx.Response:
        """One call of the API; a refusal becomes the devenv error the server named."""
        if self._token is None:
            raise InvalidValueError(
                "DEVENV_TOKEN is not set: remote mode (DEVENV_SERVER_URL) needs a token; "
                "`devenv token` on the server prints the admin's, `devenv users add` makes others"
            )
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body).encode()
        try:
            response = await self._http().request(
                method,
                f"{self.server_url}{API}{path}",
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


class RemoteEnvironment(AsyncEnvironment):
    """``AsyncEnvironment`` over HTTP; every method asks the server afresh."""

    def __init__(self, client: RemoteAsyncClient, name: str) -> None:
        # No Temporal handle: nothing of the direct parent's state is set but these.
        self._client = client
        self._remote = client
        self.name = name
        self.connection = None

    @property
    def workflow_id(self) -> str:
        return f"devenv-{self.name}"

    def __repr__(self) -> str:
        return f"<Environment {self.name} via {self._remote.server_url}>"

    async def state(self) -> EnvState:
        """Not available remotely: ``status()`` and ``events()`` are."""
        raise UserError(
            f"the whole state of {self.name!r} is {NOT_REMOTE}; "
            f"`devenv ps {self.name}` and `devenv logs {self.name}` work"
        )

    async def status(self) -> EnvironmentStatus:
        response = await self._remote.request("GET", self._path)
        return _parsed(response, EnvironmentStatus, self._remote.server_url)

    async def listed_status(self) -> EnvironmentStatus:
        """Remotely the same as ``status()``: the server decides what to read."""
        return await self.status()

    async def events(self) -> list[EnvEvent]:
        response = await self._remote.request("GET", f"{self._path}/events")
        return _parsed_list(response, EVENTS, self._remote.server_url)

    async def update(
        self,
        *,
        inactivity_duration: Any = _UNSET,
        max_duration: Any = _UNSET,
        extend: Any = _UNSET,
        stop_at: Any = _UNSET,
        shared_with: Any = _UNSET,
        by: str | None = None,
    ) -> EnvironmentStatus:
        """Checked here (the same line as the direct SDK), applied by the server at once,
        recorded as made by the token's user."""
        from devenv.client.sharing import check_names

        if by is not None:
            raise InvalidValueError(
                "by: in remote mode the server records the token's user as who changed it"
            )
        changes: dict[str, int | str | list[str]] = {}
        for key, value in (
            ("inactivity_duration", inactivity_duration),
            ("max_duration", max_duration),
            ("extend", extend),
        ):
            if value is not _UNSET:
                seconds = check_duration(key, value)
                changes[key] = "off" if seconds is None else seconds
        if stop_at is not _UNSET:
            moment = check_stop_at("stop_at", stop_at)
            changes["stop_at"] = "off" if moment is None else moment.isoformat()
        if shared_with is not _UNSET:
            changes["shared_with"] = check_names(shared_with)
        if not changes:
            raise InvalidValueError(
                "nothing to change: give inactivity_duration, max_duration, extend, stop_at "
                "or shared_with"
            )
        response = await self._remote.request("PATCH", self._path, body=changes)
        return _parsed(response, EnvironmentStatus, self._remote.server_url)

    async def stop(
        self,
        *,
        wait: bool = False,
        purge: bool = False,
        timeout: float = STOP_WAIT_TIMEOUT,
        reason: str | None = None,
    ) -> EnvironmentStatus:
        """``DELETE``; the server records who stopped it (``reason`` is its to write)."""
        if reason is not None:
            raise InvalidValueError(
                "reason: in remote mode the server records who stopped it "
                "('stopped by USER via the API')"
            )
        params = {"wait": str(wait).lower(), "purge": str(purge).lower()}
        try:
            response = await self._remote.request(
                "DELETE", self._path, params=params, timeout=timeout + REQUEST_TIMEOUT
            )
        except NotAnsweringError:
            if not wait:
                raise
            raise NotAnsweringError(
                f"{self.workflow_id}: stop requested, but still not terminated after "
                f"{timeout:.0f}s; see `devenv logs {self.name}`"
            ) from None
        return _parsed(response, EnvironmentStatus, self._remote.server_url)

    async def wait_ready(self, *, progress: Progress | None = None) -> EnvironmentStatus:
        """Wait while it provisions; ProvisioningFailedError if it ended instead. Once it
        runs, its ssh config entry is written here (``connection``), as in direct mode."""
        say = progress or _quiet
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
        self.connection = await self.ssh_config()
        return status

    async def ssh_config(self, state: EnvState | None = None) -> Connection:
        """Write its entry in this machine's devenv ssh config from what the server says
        (``GET .../connection``: address, account, host key to pin), with this machine's
        user key: the owner's, or a colleague's it is shared with."""
        from devenv.workflows.status import SshAccess

        response = await self._remote.request("GET", f"{self._path}/connection")
        access = _parsed(response, SshAccess, self._remote.server_url)
        return self._write_ssh_config(access)

    @property
    def _path(self) -> str:
        return f"/environments/{self.name}"


def _refusal(response: httpx.Response, url: str) -> DevenvError:
    """The server's one line, as the class it named (else the status's usual class)."""
    try:
        payload = response.json()
        line = payload["error"] if isinstance(payload, dict) else None
    except (ValueError, KeyError):
        line = None
    if not isinstance(line, str) or not line:
        line = f"the devenv server at {url} answered HTTP {response.status_code}"
    line = line.splitlines()[0] if line.strip() else line
    status = response.status_code
    kind = CLASSES.get(response.headers.get(ERROR_CLASS_HEADER, "")) or BY_STATUS.get(
        status, DevenvError
    )
    if status == 401:
        return ServerRefusedError(
            f"the devenv server at {url} refused the token ({line}); check DEVENV_TOKEN"
        )
    return kind(line)


def _parsed(response: httpx.Response, model: type[M], url: str) -> M:
    try:
        return model.model_validate_json(response.content)
    except ValidationError:
        raise DevenvError(f"the devenv server at {url} answered something unexpected") from None


def _parsed_list(response: httpx.Response, adapter: TypeAdapter[list[T]], url: str) -> list[T]:
    try:
        return adapter.validate_json(response.content)
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
