"""The ``ssh`` backend: an environment is a Unix account of its own on an existing sshd host.

Provision logs in to the configured hosts as the admin (root, or sudo), picks the
one already holding this token, else the least loaded that answers, installs the
presence agent, creates the account ``dv-<name>`` with the user's key and devenv's
internal key (forced to run the agent), and returns once that key's login streams
a presence report. Terminate locks the account, kills every process of its uid,
revokes its keys and keeps the home unless asked to purge. What runs on the host is
in ``host_setup``; the admin login and its errors in ``admin``.

Errors: a misconfiguration (host key not in known_hosts, refused admin login, no
sudo, no python3, a taken name) is a ``ProvisioningError``; a host that does not
answer is a plain exception, so provisioning retries and terminate retries forever.

Every host the worker provisions on is remembered in ``DEVENV_HOME/ssh-hosts.json``
(address, admin user, key and known_hosts paths, host folder; no secrets) before
anything is created there, so ``devenv gc`` knows which hosts to search: its
``leftovers`` are the ``active`` account records on those hosts.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncssh
from pydantic import ValidationError

from devenv.backends.base import (
    Backend,
    Leftover,
    LeftoversIncompleteError,
    ProvisioningError,
    Suspendable,
)
from devenv.backends.presence_stream import connect_internal, ssh_presence
from devenv.backends.ssh import pools
from devenv.backends.ssh.account_env import run_account_init, write_account_env
from devenv.backends.ssh.admin import (
    AdminAccess,
    AdminConnection,
    AdminError,
    Endpoint,
    HostDownError,
    connect_admin,
)
from devenv.backends.ssh.config import CHECK_FILES, SshSection
from devenv.backends.ssh.host_setup import (
    DEFAULT_HOST_DIR,
    HostNotSupportedError,
    HostReport,
    InstanceTerminatedError,
    account_name,
    account_status,
    authorized_keys,
    check_host_dir,
    check_token,
    create_account,
    deployment_of,
    forced_command,
    inspect,
    install_agent,
    key_line,
    list_accounts,
    terminate_account,
)
from devenv.backends.ssh.login_messages import apply_login, tell_terminals
from devenv.backends.ssh.suspension import resume_account, suspend_account
from devenv.backends.ssh.used_hosts import (
    HOSTS_FILE,
    AdminTarget,
    UsedHost,
    remember_host,
    used_hosts,
)
from devenv.env_secrets import session_env
from devenv.keys import internal_public_key
from devenv.models.messages import ProvisionInput, ResumeInput, SuspendInput, TerminateInput
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.models.state import InstanceInfo, LoginSettings, PresenceReport
from devenv.settings import Settings, SettingsError

BACKEND = "ssh"
HOST_DIR_VAR = "DEVENV_SSH_HOST_DIR"
"""Where devenv keeps its files on every host (the agent, the account records)."""

NO_CHANGE_SEEN = datetime.fromtimestamp(0, UTC)
"""``last_change`` of a probe: the agent saw no change (earlier than any idle time)."""


log = logging.getLogger(__name__)


class SshInstanceData(AdminTarget):
    """``InstanceInfo.data`` of an ssh instance: where the account is and how to administer it.

    Paths only (the admin key stays a file on the worker), so it may sit in history.
    """

    account: str
    home: str

    @classmethod
    def of(cls, instance: InstanceInfo) -> SshInstanceData:
        return cls.model_validate(instance.data)


@dataclass
class _Candidate:
    """One configured host during provisioning: its admin login and report, or why not."""

    index: int
    endpoint: Endpoint
    admin: AdminConnection | None = None
    report: HostReport | None = None
    problem: AdminError | None = field(default=None)

    def order(self) -> tuple[int, int, float, int]:
        """Least loaded first; a host that kept this name's home (a past environment's
        workspace) before all."""
        report = self.report
        assert report is not None
        kept_home = report.account_exists and report.record_state == "ended"
        return (0 if kept_home else 1, report.active, report.load / report.cpus, self.index)


class SshBackend(Backend, Suspendable):
    """Environments as accounts on sshd hosts (see the module docstring)."""

    name = BACKEND

    def __init__(
        self,
        settings: Settings,
        *,
        host_dir: str = DEFAULT_HOST_DIR,
        connect_timeout: float = 10.0,
        ready_timeout: float = 30.0,
    ) -> None:
        super().__init__(settings)
        self.host_dir = check_host_dir(host_dir)
        self.connect_timeout = connect_timeout
        self.ready_timeout = ready_timeout

    @classmethod
    def for_worker(cls, settings: Settings) -> SshBackend:
        """The backend with ``DEVENV_SSH_HOST_DIR`` (default /var/lib/devenv) as host folder."""
        return cls(settings, host_dir=worker_host_dir())

    def _section(self, config: dict[str, Any]) -> SshSection:
        """The ``ssh_config`` from history, a pool resolved from this server's registry."""
        section = _section(config)
        try:
            return pools.resolve(self.settings, section)
        except pools.PoolError as problem:
            raise ProvisioningError(str(problem)) from None

    # --- provision -------------------------------------------------------------------------

    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        """Create (or find) the account of ``request.instance_token`` on one of the hosts."""
        spec = request.spec
        section = self._section(spec.backend_config)
        try:
            account = account_name(spec.name)
            token = check_token(request.instance_token)
        except ValueError as problem:
            raise ProvisioningError(f"ssh backend: {problem}") from None
        try:
            key_line(spec.user_public_key)
        except ValueError as problem:
            raise ProvisioningError(f"the user's public key: {problem}") from None
        access = _access(section)
        endpoints = [Endpoint(host, port) for host, port in section.endpoints()]
        opened: list[AdminConnection] = []
        try:
            candidates = await self._connect_all(endpoints, access, account, opened)
            chosen = _choose(candidates, account, spec.name, token)
            assert chosen.admin is not None and chosen.report is not None
            await self._remember(chosen.endpoint, access)
            price = section.price_per_hour
            return await self.set_up_account(
                request, chosen.admin, chosen.report, account, token, price
            )
        except AdminError as problem:
            if problem.permanent:
                raise ProvisioningError(str(problem)) from None
            raise
        finally:
            await asyncio.gather(*(admin.close() for admin in opened))

    async def _connect_all(
        self,
        endpoints: Sequence[Endpoint],
        access: AdminAccess,
        account: str,
        opened: list[AdminConnection],
    ) -> list[_Candidate]:
        """Log in to every host at once and read its report; failures become reasons."""

        async def one(index: int, endpoint: Endpoint) -> _Candidate:
            candidate = _Candidate(index, endpoint)
            try:
                admin = await connect_admin(endpoint, access, connect_timeout=self.connect_timeout)
                opened.append(admin)
                candidate.admin = admin
                candidate.report = await inspect(admin, self.host_dir, account)
            except AdminError as problem:
                candidate.problem = problem
            return candidate

        return list(await asyncio.gather(*(one(i, e) for i, e in enumerate(endpoints))))

    async def set_up_account(
        self,
        request: ProvisionInput,
        admin: AdminConnection,
        report: HostReport,
        account: str,
        token: str,
        price_per_hour: float = 0.0,
    ) -> InstanceInfo:
        """The account ``dv-NAME`` with the user's key and devenv's agent-only key, the agent
        installed, checked as the monitor will read it (also the host half of ``aws``)."""
        spec = request.spec
        assert report.python is not None
        if spec.utilization_policy is not None and not report.nvidia_smi:
            raise HostNotSupportedError(
                f"utilization_policy: {admin.endpoint} has no nvidia-smi, so its GPUs cannot "
                "be sampled; accepted: utilization_policy only on hosts with nvidia-smi"
            )
        agent = await install_agent(admin, self.host_dir)
        try:
            command = forced_command(
                report.python,
                agent,
                account,
                spec.min_connection_duration,
                spec.connected_idle_cpu,
                None
                if spec.utilization_policy is None
                else spec.utilization_policy.min_gpu_utilization,
            )
            keys = authorized_keys(
                spec.user_public_key, internal_public_key(self.settings), command
            )
        except ValueError as problem:
            raise ProvisioningError(f"ssh backend on {admin.endpoint}: {problem}") from None
        created = await create_account(admin, self.host_dir, account, token, spec.name, keys)
        configured, hidden = self._session_env(request)
        await write_account_env(admin, account, configured)
        data = SshInstanceData(
            host=admin.endpoint.host,
            port=admin.endpoint.port,
            account=account,
            admin_user=admin.access.user,
            identity_file=str(admin.access.identity_file),
            known_hosts=str(admin.access.known_hosts),
            home=created.home,
            host_dir=self.host_dir,
        )
        info = InstanceInfo(
            instance_id=token,
            backend=BACKEND,
            host=admin.endpoint.host,
            port=admin.endpoint.port,
            username=account,
            host_public_key=admin.host_key,
            task_queue=spec.host_task_queue or SHARED_TASK_QUEUE,
            folder=created.home,
            data=data.model_dump(),
            price_per_hour=price_per_hour,
            login_messages=True,
        )
        await self._check_agent(info)
        await run_account_init(admin, account, token, spec.name, spec.init, hidden)
        log.info("ssh: %s is account %s on %s", spec.name, account, admin.endpoint)
        return info

    def _session_env(self, request: ProvisionInput) -> tuple[dict[str, str], list[str]]:
        """The env values of every session (secrets read back from the worker's home)."""
        try:
            return session_env(self.settings, request.spec)
        except LookupError as problem:
            raise ProvisioningError(str(problem)) from None

    async def _check_agent(self, info: InstanceInfo) -> None:
        """Log in as the account with the internal key, as the monitor will, and read a report.

        Proves sshd takes the account's keys (AllowUsers, AuthorizedKeysFile) and that
        the agent runs there, before anyone is told the environment is ready.
        """
        where = f"{info.username}@{info.host}:{info.port}"
        try:
            async with asyncio.timeout(self.ready_timeout):
                line, stderr = await self._first_agent_line(info)
        except asyncssh.PermissionDenied:
            raise ProvisioningError(
                f"sshd on {info.host}:{info.port} refuses the new account {info.username}'s key "
                "login; check its sshd_config: AllowUsers/AllowGroups/DenyUsers must let it in "
                "and AuthorizedKeysFile must include .ssh/authorized_keys"
            ) from None
        except TimeoutError:
            raise HostDownError(
                f"the presence agent on {where} did not answer within {self.ready_timeout:.0f}s"
            ) from None
        except (OSError, asyncssh.Error) as problem:
            raise HostDownError(f"logging in as {where} failed: {problem}") from None
        if not line:
            raise ProvisioningError(
                f"the presence agent does not run on {where}: {stderr[:300] or 'no output'}"
            )
        try:
            PresenceReport.model_validate_json(line)
        except ValidationError:
            raise ProvisioningError(
                f"the presence agent on {where} printed {line[:120]!r}, not a presence report "
                "(does the account's shell print something?)"
            ) from None

    async def _first_agent_line(self, info: InstanceInfo) -> tuple[str, str]:
        async with connect_internal(
            info, self.settings.internal_key, connect_timeout=self.connect_timeout
        ) as conn:
            async with conn.create_process(encoding="utf-8") as proc:
                line = await proc.stdout.readline()
                if line.strip():
                    return line, ""
                return "", (await proc.stderr.read()).strip()

    # --- terminate ---------------------------------------------------------------------------

    async def terminate(self, request: TerminateInput) -> None:
        """End the account of ``request.instance_token``; keep its home unless purging.

        Without ``request.instance`` (a provision that failed) every configured host is
        visited; a host whose admin login is misconfigured is skipped there, since
        provisioning checks the same login before it creates anything, and so is one
        that does not answer where devenv never logged in (it is not in HOSTS_FILE,
        which a provision writes before it creates anything): it holds nothing of this
        environment. Any other host that does not answer raises: the workflow retries
        until it does.
        """
        spec = request.spec
        try:
            account = account_name(spec.name)
            token = check_token(request.instance_token)
        except ValueError as problem:
            log.warning("ssh: nothing to terminate for %s: %s", spec.name, problem)
            return
        purge = request.purge_workspace or spec.backend_config.get("purge_workspace") is True
        targets: list[tuple[Endpoint, AdminAccess, str]]
        if request.instance is not None:
            data = SshInstanceData.of(request.instance)
            targets = [(data.endpoint, data.access, data.host_dir)]
        else:
            try:
                section = self._section(spec.backend_config)
            except ProvisioningError as problem:
                log.warning("ssh: nothing to terminate for %s: %s", spec.name, problem.message)
                return
            access = _access(section)
            targets = [(Endpoint(h, p), access, self.host_dir) for h, p in section.endpoints()]
        required = request.instance is not None
        used = None if required else await self._logged_in_to()
        results = await asyncio.gather(
            *(
                self._terminate_on(
                    endpoint,
                    access,
                    host_dir,
                    account,
                    token,
                    purge,
                    required,
                    never_used=used is not None
                    and (endpoint.host, endpoint.port, host_dir) not in used,
                )
                for endpoint, access, host_dir in targets
            ),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _terminate_on(
        self,
        endpoint: Endpoint,
        access: AdminAccess,
        host_dir: str,
        account: str,
        token: str,
        purge: bool,
        required: bool,
        never_used: bool = False,
    ) -> None:
        try:
            admin = await connect_admin(endpoint, access, connect_timeout=self.connect_timeout)
        except AdminError as problem:
            if (problem.permanent or never_used) and not required:
                log.warning(
                    "ssh: %s not checked for %s (%s); provisioning could not have created it"
                    " (the login failed, or devenv never logged in there)",
                    endpoint,
                    account,
                    problem,
                )
                return
            raise
        async with admin:
            outcome = await terminate_account(admin, host_dir, account, token, purge)
        log.info("ssh: terminate %s on %s: %s", account, endpoint, outcome)

    # --- suspend and resume ------------------------------------------------------------------

    async def suspend(self, request: SuspendInput) -> InstanceInfo:
        """Lock the account, end its processes, put its keys away; the home stays.

        The instance answered is the same (same host, same pinned host key): resume
        needs nothing more than what provision recorded.
        """
        data = SshInstanceData.of(request.instance)
        token = check_token(request.instance_token)
        admin = await connect_admin(
            data.endpoint, data.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            await suspend_account(admin, data.host_dir, data.account, token)
        log.info("ssh: suspended %s on %s", data.account, data.endpoint)
        return request.instance

    async def resume(self, request: ResumeInput) -> InstanceInfo:
        """Unlock the account with its keys back; return once the agent answers there.

        The agent is installed again if the host lost it (a cleaned host folder).
        """
        info = request.instance
        data = SshInstanceData.of(info)
        token = check_token(request.instance_token)
        admin = await connect_admin(
            data.endpoint, data.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            await install_agent(admin, data.host_dir)
            await resume_account(admin, data.host_dir, data.account, token)
        await self._check_agent(info)
        log.info("ssh: resumed %s on %s", data.account, data.endpoint)
        return info

    async def is_suspended(self, instance: InstanceInfo) -> bool:
        """Whether the account is suspended now (by ``suspend``; a resume cut short too)."""
        data = SshInstanceData.of(instance)
        admin = await connect_admin(
            data.endpoint, data.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            status = await account_status(admin, data.host_dir, data.account)
        return status.alive(instance.instance_id) and status.suspended

    # --- leftovers (devenv gc) ------------------------------------------------------------------

    async def _logged_in_to(self) -> set[tuple[str, int, str]] | None:
        """The hosts devenv ever logged in to (HOSTS_FILE); None when it cannot be read,
        so that every host counts as possibly holding something."""
        try:
            hosts = await asyncio.to_thread(used_hosts, self.settings)
        except OSError as problem:
            log.warning("ssh: %s", problem)
            return None
        return {host.key for host in hosts}

    async def _remember(self, endpoint: Endpoint, access: AdminAccess) -> None:
        """Add the host to HOSTS_FILE before anything is created on it (a warning if not)."""
        entry = UsedHost(
            host=endpoint.host,
            port=endpoint.port,
            admin_user=access.user,
            identity_file=str(access.identity_file),
            known_hosts=str(access.known_hosts),
            host_dir=self.host_dir,
        )
        try:
            await asyncio.to_thread(remember_host, self.settings, entry)
        except OSError as problem:
            log.warning("ssh: %s not recorded in %s (%s)", endpoint, HOSTS_FILE, problem)

    async def leftovers(self) -> list[Leftover]:
        """The ``active`` accounts of this deployment on every host in HOSTS_FILE.

        Accounts another deployment (another internal key) created on a shared host are
        not this one's and are left out; those recorded before devenv noted whose they
        are come without a workflow id, so ``devenv gc`` keeps them. A host that cannot
        be searched does not hide the others: they are listed in the ``found`` of the
        ``LeftoversIncompleteError`` raised at the end.
        """
        hosts = await asyncio.to_thread(used_hosts, self.settings)
        if not hosts:
            return []
        ours = deployment_of(internal_public_key(self.settings))
        results = await asyncio.gather(
            *(self._leftovers_on(host, ours) for host in hosts), return_exceptions=True
        )
        found: list[Leftover] = []
        problems: list[str] = []
        for host, result in zip(hosts, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                problems.append(f"{host.endpoint}: {_first_line(result)}")
            else:
                found += result
        if problems:
            raise LeftoversIncompleteError(found, problems)
        return found

    async def _leftovers_on(self, host: UsedHost, ours: str) -> list[Leftover]:
        admin = await connect_admin(
            host.endpoint, host.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            records = await list_accounts(admin, host.host_dir)
        found = []
        for record in records:
            if record.state != "active" or record.deployment not in (None, ours):
                continue
            detail = f"account {record.account}"
            if not record.exists:
                detail += " (the account is gone; its record says active)"
            if record.deployment is None:
                detail += " (recorded by an older devenv: whose it is is unknown)"
            found.append(
                Leftover(
                    backend=BACKEND,
                    id=f"{record.account}@{host.host}",
                    where=str(host.endpoint),
                    name=record.name,
                    workflow_id=record.workflow_id if record.deployment else None,
                    instance_token=record.token,
                    detail=detail,
                    data={**host.model_dump(), "account": record.account},
                )
            )
        return found

    async def remove_leftover(self, leftover: Leftover) -> None:
        """End the account as ``terminate`` does (its home is kept); nothing if it is
        someone else's by now (the host re-checks the token under its lock)."""
        host = UsedHost.model_validate(leftover.data)
        account = str(leftover.data.get("account", ""))
        if leftover.instance_token is None:
            raise ValueError(f"{leftover.id}: no instance token recorded; not removed")
        token = check_token(leftover.instance_token)
        admin = await connect_admin(
            host.endpoint, host.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            outcome = await terminate_account(admin, host.host_dir, account, token, False)
        log.info("ssh: gc %s on %s: %s", account, host.endpoint, outcome)

    # --- watching ------------------------------------------------------------------------------

    async def is_alive(self, instance: InstanceInfo) -> bool:
        """False only when the host says the account is gone or no longer this instance's."""
        data = SshInstanceData.of(instance)
        try:
            admin = await connect_admin(
                data.endpoint, data.access, connect_timeout=self.connect_timeout
            )
            async with admin:
                status = await account_status(admin, data.host_dir, data.account)
        except AdminError as problem:
            log.warning(
                "ssh: cannot tell whether %s on %s lives (%s); assuming it does",
                data.account,
                data.endpoint,
                problem,
            )
            return True
        return status.alive(instance.instance_id)

    async def apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        """The banner the account's login shell prints, and the members' keys."""
        data = SshInstanceData.of(instance)
        admin = await connect_admin(
            data.endpoint, data.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            await apply_login(admin, data.host_dir, data.account, login)

    async def tell_terminals(self, instance: InstanceInfo, text: str) -> int:
        """Write ``text`` into the account's terminals, as root does with ``wall``."""
        data = SshInstanceData.of(instance)
        admin = await connect_admin(
            data.endpoint, data.access, connect_timeout=self.connect_timeout
        )
        async with admin:
            return await tell_terminals(admin, data.account, text)

    def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        """The agent's stream: the internal key's forced command runs it, whatever is asked."""
        return ssh_presence(instance, self.settings.internal_key, connect_timeout=connect_timeout)

    async def probe(self, instance: InstanceInfo) -> PresenceReport:
        """Who is present now: the first line of a fresh agent, its ``last_change`` undated.

        A fresh agent has seen no change yet and dates its first line at its own start.
        Read as "a user was connected until now", that would restart the idle clock at
        every probe and the environment would never end; the agent cannot know when the
        last user left before it started, so the probe says nothing about it (the
        workflow keeps the idle time the monitor reported). Users present now still
        show as ``connections`` or ``waiting``.
        """
        report = await super().probe(instance)
        return report.model_copy(update={"last_change": NO_CHANGE_SEEN})


def worker_host_dir() -> str:
    """``DEVENV_SSH_HOST_DIR`` (default /var/lib/devenv): devenv's folder on every host."""
    raw = os.environ.get(HOST_DIR_VAR, "").strip() or DEFAULT_HOST_DIR
    try:
        return check_host_dir(raw)
    except ValueError as problem:
        raise SettingsError(f"{HOST_DIR_VAR}: invalid value {raw[:60]!r}: {problem}") from None


def _section(config: dict[str, Any]) -> SshSection:
    """The ``ssh_config`` section from history; the files are checked when used."""
    try:
        return SshSection.model_validate(config, context={CHECK_FILES: False})
    except ValidationError as problem:
        from devenv.models.problems import validation_problems

        lines = validation_problems(problem, SshSection)
        raise ProvisioningError(
            "; ".join(
                f"ssh_config: {line}" if line.startswith("unknown") else f"ssh_config.{line}"
                for line in lines
            )
        ) from None


def _access(section: SshSection) -> AdminAccess:
    """The admin login of a resolved section (a pool's, or the keys given directly)."""
    assert section.identity_file is not None and section.known_hosts is not None
    return AdminAccess(section.user, section.identity_file, section.known_hosts)


def _choose(candidates: Sequence[_Candidate], account: str, name: str, token: str) -> _Candidate:
    """The host holding this token; else the least loaded usable one; else why none is.

    Pure (no I/O) so the order can be tested without hosts.
    """
    for candidate in candidates:
        report = candidate.report
        if report is not None and report.record_token == token:
            if report.record_state != "active":
                raise InstanceTerminatedError(
                    f"instance {token} ({account} on {candidate.endpoint}) was terminated; "
                    "it is not started again"
                )
            problem = report.problem(candidate.endpoint, account, name, token)
            if problem is not None:
                raise problem
            return candidate
    usable = []
    for candidate in candidates:
        if candidate.report is not None:
            candidate.problem = candidate.report.problem(candidate.endpoint, account, name, token)
        if candidate.problem is None:
            usable.append(candidate)
        else:
            log.warning("ssh: %s skipped: %s", candidate.endpoint, candidate.problem)
    if usable:
        return min(usable, key=_Candidate.order)
    problems = [c.problem for c in candidates if c.problem is not None]
    messages = list(dict.fromkeys(str(problem) for problem in problems))
    if len(problems) == 1 or len(messages) == 1:
        raise problems[0]
    joined = "no host of ssh_config.hosts can take it: " + "; ".join(messages)
    if all(problem.permanent for problem in problems):
        raise AdminError(joined)
    raise HostDownError(joined)


def _first_line(problem: BaseException) -> str:
    text = " ".join(str(problem).split())
    return text[:300] or type(problem).__name__
