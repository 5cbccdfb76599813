"""The Python SDK, asyncio flavour: ``AsyncClient`` (and ``AsyncEnvironment``, its
environments).

One client over a transport (``devenv.client.transports``), httpx-style: straight to
Temporal (direct), or through a devenv server's HTTP API (remote mode, when
``DEVENV_SERVER_URL`` is set). The CLI is a thin layer of presentation over it, and the
blocking ``Client`` runs it on a private event loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from devenv.client.environment import AsyncEnvironment
from devenv.client.options import ConfigSource, Progress, quiet
from devenv.client.transports.base import StartRequest, Transport
from devenv.errors import InvalidValueError
from devenv.models.ssh_entry import SshEntry
from devenv.models.status import EnvironmentList, EnvironmentPage
from devenv.settings import Settings, ssh_include_for

if TYPE_CHECKING:
    from temporalio.client import Client as TemporalClient

    from devenv.client.gc import GcReport, OnRemoved
    from devenv.client.report import Report
    from devenv.models.policy import PolicyStatus

__all__ = ["AsyncClient", "AsyncEnvironment", "ConfigSource", "Progress", "SshEntry"]


class AsyncClient:
    """devenv for asyncio programs. Without arguments it uses the CLI's settings
    (``DEVENV_HOME``, ``DEVENV_TEMPORAL_*``); each argument overrides one of them.

    Without arguments and with ``DEVENV_SERVER_URL`` set, its calls go over that devenv
    server's HTTP API (remote mode, ``DEVENV_TOKEN`` the bearer token), so scripts and
    the CLI need no Temporal access; ``server_url`` or ``token`` ask for remote mode,
    any other argument for a direct client. ``transport`` gives the transport itself
    (``DirectTransport(settings)``, ``HttpTransport(settings, server_url=...)``).
    """

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
        transport: Transport | None = None,
    ) -> None:
        temporal_options = (address, namespace, api_key, tls)
        if transport is not None:
            if any(v is not None for v in (*temporal_options, home, settings, server_url, token)):
                raise InvalidValueError(
                    "transport: give the transport its settings; accepted: transport alone"
                )
            self.transport = transport
            return
        remote = server_url is not None or token is not None
        if remote and any(value is not None for value in temporal_options):
            raise InvalidValueError(
                "a remote client talks to the devenv server, not to Temporal: "
                "give no address, namespace, api_key or tls"
            )
        given = any(v is not None for v in (*temporal_options, home, settings))
        base = settings or Settings.load()
        updates: dict[str, Any] = {}
        if address is not None:
            updates["address"] = address
        if namespace is not None:
            updates["namespace"] = namespace
        if api_key is not None:
            updates["api_key"] = SecretStr(api_key)
            updates["tls"] = True if tls is None else tls
        if tls is not None:
            updates["tls"] = tls
        if home is not None:
            updates["home"] = Path(home).expanduser().absolute()
            updates["ssh_include"] = ssh_include_for(updates["home"])
        chosen = base.model_copy(update=updates) if updates else base
        if remote or (not given and chosen.server_url is not None):
            from devenv.client.transports.http import HttpTransport

            self.transport = HttpTransport(chosen, server_url=server_url, token=token)
        else:
            from devenv.client.transports.direct import DirectTransport

            self.transport = DirectTransport(chosen)

    @property
    def settings(self) -> Settings:
        return self.transport.settings

    def __repr__(self) -> str:
        return f"<AsyncClient {self.transport!r}>"

    async def temporal(self) -> TemporalClient:
        """The Temporal client, connected on first use (ServerUnreachableError if nothing
        answers); UserError in remote mode, where the devenv server talks to Temporal."""
        return await self.transport.temporal()

    async def start(
        self,
        config: ConfigSource,
        *,
        name: str | None = None,
        wait: bool = True,
        progress: Progress | None = None,
        owner: str | None = None,
        public_key: str | None = None,
        caller_env: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> AsyncEnvironment:
        """Start an environment from a file path, a mapping or a configuration model.

        Keyword overrides replace keys of the configuration (``inactivity_duration="2h"``)
        and are validated like the file. Starts the embedded server when nothing answers
        at a loopback address, as ``devenv start`` does. With ``wait`` (the default)
        returns once the environment accepts SSH, with its ssh config entry written;
        ProvisioningFailedError if it could not start.

        ``owner`` is recorded in the environment (default: the local OS user name);
        ``public_key`` is the one OpenSSH key line the instance accepts (default: this
        machine's user key). The HTTP API passes its user and that user's key; the ssh
        config entry that ``wait`` writes always names this machine's key. In remote
        mode the server takes both from the token's user.

        A bare ``KEY`` of the configuration's ``env`` takes its value from ``caller_env``
        (default: this process's environment); such values are kept out of history.
        """
        say = progress or quiet
        request = StartRequest(config, name, wait, owner, public_key, overrides, caller_env)
        env = AsyncEnvironment(await self.transport.start(request, say))
        if wait:
            await env.wait_ready(progress=say)
        return env

    async def get(self, ref: str) -> AsyncEnvironment:
        """The environment called ``ref`` (a name or its workflow id ``devenv-NAME``);
        EnvironmentNotFoundError if there is none (in remote mode: none the token's user
        may see)."""
        return AsyncEnvironment(await self.transport.get(ref))

    async def list(self, *, all: bool = False, group: str | None = None) -> EnvironmentList:
        """Running environments (``all``: ended ones too; ``group``: only that group's), as
        ``devenv ps --json`` lists them."""
        from devenv.client.checks import checked_group

        return await self.transport.list(all, checked_group(group))

    async def list_pages(
        self, *, all: bool = False, first_page_size: int | None = None, group: str | None = None
    ) -> AsyncGenerator[EnvironmentPage, None]:
        """``list()`` a page at a time, as the server sends them (each page sorted, the
        first of ``first_page_size`` rows, 100 unless given, then 1,000): for fleets too
        large to wait for, as ``devenv ps`` prints them. Remote: one page."""
        from devenv.client.checks import checked_group

        async for page in self.transport.list_pages(all, first_page_size, checked_group(group)):
            yield page

    async def gc(
        self,
        *,
        remove: bool = False,
        report: GcReport | None = None,
        on_removed: OnRemoved | None = None,
    ) -> GcReport:
        """What devenv's backends created, reachable from this machine, that may have
        outlived its environment (``devenv gc``): each leftover ``orphan`` or ``live``.

        With ``remove``, the orphans are terminated too, each re-checked just before
        (``on_removed`` is called after each); ``report`` removes those of an earlier
        listing rather than listing again. A live environment's instance is never
        touched; a backend that cannot be searched is a line of ``warnings``.
        """
        return await self.transport.gc(remove, report, on_removed)

    async def report(self, since: timedelta | str = "7d") -> Report:
        """Hours running, in use and idle before termination, cost, what idle termination
        saved, the user's breaks and a suggested threshold, over the last ``since``
        (``devenv report``; definitions in ``devenv.client.report``)."""
        from devenv.client.report import parse_since

        period = parse_since(since)  # bad input fails before any server is contacted
        return await self.transport.report(period)

    async def policies(self) -> PolicyStatus:
        """The admins' policies (``devenv policy show``): everyone's, each user's, and
        how far the latest version has reached the running environments."""
        return await self.transport.policies()

    async def set_policy(
        self, *, user: str | None = None, by: str | None = None, **keys: Any
    ) -> PolicyStatus:
        """Set keys of everyone's policy (``user``: that user's): ``default_inactivity``,
        ``max_inactivity``, ``max_duration``, ``delete_after``, ``floor_inactivity`` (durations
        as in the YAML; ``"off"`` removes one), ``no_off`` (bool) and ``idle_budget_weekly``
        (USD: ``50`` or ``"$50"``). Other keys of the scope stay. In
        force for new starts at once; every running environment is brought within it
        right after (``policies().reached``). ``by``: who is recorded as making the change
        (default: this machine's user). InvalidValueError: refused, nothing changed."""
        return await self.transport.change_policy(user, keys, False, by)

    async def clear_policy(self, *, user: str | None = None, by: str | None = None) -> PolicyStatus:
        """Remove every key of everyone's policy (``user``: that user's)."""
        return await self.transport.change_policy(user, {}, True, by)

    async def aclose(self) -> None:
        """Close the connections this event loop holds (they are also dropped with it)."""
        await self.transport.aclose()
