"""The ``aws`` backend: an environment is an EC2 instance of its own.

Provision checks everything the user could have wrong before it creates anything
(credentials, instance type, image), then runs one instance per instance token:
found again by its ``devenv:token`` tag (and RunInstances' ClientToken) when the
activity is retried, so a retry never makes a second one. The instance boots with a
host key devenv generated (pinned, never trusted on first use) and devenv's admin key;
devenv then sets it up over SSH exactly as ``backend: ssh`` sets up a host (the
account ``dv-NAME``, the user's key, the presence agent) and starts the failsafe,
which shuts the machine down by itself if no control plane reads it any more.

Every instance is created with ``InstanceInitiatedShutdownBehavior=terminate``: a
shutdown from inside (the failsafe) ends the billing for good; with ``on_idle: suspend``
it is ``stop`` instead (kept in step by ``apply_policy``), so the failsafe's shutdown
keeps the disk as ``suspend`` does. Suspend is StopInstances (the EBS volumes are kept
and cost ``storage_price_per_hour``), resume StartInstances: a new address, the same
host key (given at the first boot, on the disk since), the agent and failsafe back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from devenv.backends import progress
from devenv.backends.aws.config import AwsSection, render_endpoint
from devenv.backends.aws.ec2 import (
    GONE_STATES,
    LIVE_STATES,
    TAG_NAME,
    TAG_OWNER,
    TAG_TOKEN,
    TAG_WORKFLOW,
    Ec2,
    Ec2Instance,
    client_token,
)
from devenv.backends.aws.prices import (
    hourly_price,
    parse_memory_gib,
    pick_for_resources,
    storage_price_per_hour,
)
from devenv.backends.aws.userdata import HostKey, cloud_config, derive_host_key
from devenv.backends.base import (
    Backend,
    InstanceGoneError,
    Leftover,
    LeftoversIncompleteError,
    ProvisioningError,
    Suspendable,
)
from devenv.backends.presence_stream import ssh_presence
from devenv.backends.ssh.admin import (
    AdminAccess,
    AdminConnection,
    AdminError,
    AdminLoginRefusedError,
    Endpoint,
    HostDownError,
    HostKeyMismatchError,
    connect_admin,
)
from devenv.backends.ssh.backend import NO_CHANGE_SEEN, SshBackend, worker_host_dir
from devenv.backends.ssh.config import parse_host
from devenv.backends.ssh.failsafe import start_failsafe, write_policy
from devenv.backends.ssh.host_setup import (
    DEFAULT_HOST_DIR,
    account_name,
    agent_path,
    check_token,
    inspect,
    install_agent,
)
from devenv.backends.ssh.login_messages import apply_login, tell_terminals
from devenv.keys import ensure_keypair, public_key_line
from devenv.models.config import Resources
from devenv.models.messages import ProvisionInput, ResumeInput, SuspendInput, TerminateInput
from devenv.models.names import SHARED_TASK_QUEUE
from devenv.models.state import (
    EnvSpec,
    FailsafePolicy,
    InstanceInfo,
    LoginSettings,
    PresenceReport,
)
from devenv.settings import Settings

BACKEND = "aws"
ACTION_VAR = "DEVENV_AWS_FAILSAFE_ACTION"
DEFAULT_ACTION = "shutdown -h now"
"""What the failsafe runs: a shutdown, which ``terminate`` shutdown behaviour makes final."""
POLL_SECONDS = 2.0
TERMINATE_WAIT = 300.0
STOP_WAIT = 600.0
"""How long suspend waits for EC2 to say stopped before the activity retries."""
SUSPEND_REFUSED = "SuspendRefused"
"""Failure type: this instance cannot be suspended (retrying cannot change it)."""
OnIdle = Literal["terminate", "suspend"]

log = logging.getLogger(__name__)


class AwsInstanceData(BaseModel):
    """``InstanceInfo.data`` of an EC2 environment (ids and names only: it sits in history)."""

    region: str
    instance_id: str
    instance_type: str
    spot: bool
    ssh_user: str
    host_dir: str
    failsafe_after: int | None = None
    storage_gb: int | None = None
    """Total size of its EBS volumes (what a suspension still pays for); None: unknown."""


def on_idle_of(spec: EnvSpec) -> OnIdle:
    """The spec's ``on_idle`` (``terminate`` in histories recorded before it existed)."""
    return spec.on_idle


def shutdown_behavior(on_idle: OnIdle, spot: bool) -> str:
    """``InstanceInitiatedShutdownBehavior`` for a failsafe shutdown: ``stop`` keeps the
    disk (``on_idle: suspend``); one-time spot instances can only terminate."""
    return "stop" if on_idle == "suspend" and not spot else "terminate"


class AwsBackend(Backend, Suspendable):
    """Environments as EC2 instances (see the module docstring)."""

    name = BACKEND

    def __init__(
        self,
        settings: Settings,
        *,
        host_dir: str = DEFAULT_HOST_DIR,
        failsafe_action: str = DEFAULT_ACTION,
        failsafe_interval: float = 5.0,
        connect_timeout: float = 10.0,
        poll_interval: float = POLL_SECONDS,
    ) -> None:
        super().__init__(settings)
        self.failsafe_action = failsafe_action
        self.failsafe_interval = failsafe_interval
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self._ssh = SshBackend(settings, host_dir=host_dir, connect_timeout=connect_timeout)
        """The host half (account, keys, agent), as ``backend: ssh`` does it."""

    @property
    def host_dir(self) -> str:
        """devenv's folder on the machine (checked by the ssh half)."""
        return self._ssh.host_dir

    @classmethod
    def for_worker(cls, settings: Settings) -> AwsBackend:
        """The backend with ``DEVENV_AWS_FAILSAFE_ACTION`` (default: shutdown) for the
        failsafe and ``DEVENV_SSH_HOST_DIR`` (default /var/lib/devenv) on the machines."""
        action = os.environ.get(ACTION_VAR, "").strip() or DEFAULT_ACTION
        return cls(settings, host_dir=worker_host_dir(), failsafe_action=action)

    @property
    def admin_key_path(self) -> Path:
        """devenv's key for the image's admin login (``aws.ssh_user``), made on first use."""
        return self.settings.keys_dir / "aws_admin_ed25519"

    def _admin_access(self, ssh_user: str) -> AdminAccess:
        ensure_keypair(self.admin_key_path, comment="devenv-aws-admin")
        return AdminAccess(ssh_user, self.admin_key_path, Path(os.devnull))

    def _host_key_secret(self) -> bytes:
        from devenv.keys import ensure_internal_key

        ensure_internal_key(self.settings)
        return self.settings.internal_key.read_bytes()

    # --- provision -------------------------------------------------------------------------

    async def provision(self, request: ProvisionInput) -> InstanceInfo:
        spec = request.spec
        section = _section(spec.backend_config)
        try:
            account = account_name(spec.name)
            token = check_token(request.instance_token)
        except ValueError as problem:
            raise ProvisioningError(f"aws backend: {problem}") from None
        on_idle = on_idle_of(spec)
        if on_idle == "suspend" and section.spot:
            raise ProvisioningError(
                "aws.spot: a one-time spot instance cannot be stopped, so on_idle: suspend "
                "cannot keep its disk; accepted: spot: false, or on_idle: terminate"
            )
        ec2 = Ec2(section.region)
        self._remember_region(section.region)
        host_key = derive_host_key(self._host_key_secret(), token)
        progress.report(f"looking for instance of this run in {section.region}")
        existing = [i for i in await ec2.by_token(token) if i.state in LIVE_STATES]
        if existing:
            instance = existing[0]
            log.info("aws: %s already has instance %s", spec.name, instance.instance_id)
        else:
            instance = await self._run(ec2, request, section, host_key, token)
        instance = await self._wait_running(ec2, instance, section)
        endpoint = _endpoint(section, instance)
        admin = await self._wait_reachable(endpoint, section, instance, host_key.public_line)
        progress.report(f"setting up {account} on {instance.instance_id}")
        async with admin:
            info = await self._set_up(request, admin, account, token, instance, section)
            policy = FailsafePolicy.of(
                spec.inactivity_duration,
                spec.max_duration,
                datetime.now(UTC),
                section.failsafe_after,
                on_idle=on_idle,
            )
            await write_policy(admin, self.host_dir, account, policy)
            report = await inspect(admin, self.host_dir, account)
            assert report.python is not None
            await start_failsafe(
                admin,
                self.host_dir,
                report.python,
                agent_path(self.host_dir),
                account,
                self.failsafe_action,
                self.failsafe_interval,
            )
        log.info("aws: %s is %s at %s", spec.name, instance.instance_id, endpoint)
        return await self._with_storage(ec2, info)

    async def _with_storage(self, ec2: Ec2, info: InstanceInfo) -> InstanceInfo:
        """``info`` with its volumes' size and what they cost an hour while suspended."""
        data = AwsInstanceData.model_validate(info.data)
        try:
            volumes = await ec2.volumes(data.instance_id)
        except Exception as problem:  # a price is worth a warning, never a failed start
            log.warning("aws: the volumes of %s are unknown (%s)", data.instance_id, problem)
            return info
        size = sum(gb for gb, _ in volumes)
        return info.model_copy(
            update={
                "data": data.model_copy(update={"storage_gb": size}).model_dump(),
                "storage_price_per_hour": storage_price_per_hour(volumes, data.region),
            }
        )

    async def _run(
        self,
        ec2: Ec2,
        request: ProvisionInput,
        section: AwsSection,
        host_key: HostKey,
        token: str,
    ) -> Ec2Instance:
        """Check what the user could have wrong, then RunInstances once for this token."""
        spec = request.spec
        progress.report("checking credentials, instance type and image")
        await ec2.check_credentials()
        instance_type = section.instance_type or _pick(spec.resources, section.image)
        arch = await ec2.architecture(instance_type)
        ami, root_device = await ec2.resolve_image(section.image, arch)
        group = section.security_group or await ec2.ensure_ssh_group(
            section.subnet, section.allow_ssh_from
        )
        admin_key = ensure_keypair(self.admin_key_path, comment="devenv-aws-admin")
        tags = {
            **section.tags,
            "Name": f"devenv-{spec.name}",
            TAG_NAME: spec.name,
            TAG_WORKFLOW: request.workflow_id,
            TAG_TOKEN: token,
            TAG_OWNER: spec.owner or "",
        }
        tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
        arguments: dict[str, Any] = {
            "ImageId": ami,
            "InstanceType": instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "ClientToken": client_token(token),
            "UserData": cloud_config(
                host_key,
                public_key_line(admin_key),
                section.ssh_user,
            ),
            "InstanceInitiatedShutdownBehavior": shutdown_behavior(on_idle_of(spec), section.spot),
            "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        }
        if section.subnet:
            arguments["NetworkInterfaces"] = [
                {
                    "DeviceIndex": 0,
                    "SubnetId": section.subnet,
                    "Groups": [group],
                    "AssociatePublicIpAddress": "{public_ip}" in section.ssh_endpoint,
                }
            ]
        else:
            arguments["SecurityGroupIds"] = [group]
        if section.spot:
            arguments["InstanceMarketOptions"] = {
                "MarketType": "spot",
                "SpotOptions": {
                    "SpotInstanceType": "one-time",
                    "InstanceInterruptionBehavior": "terminate",
                },
            }
        disk = _disk_gib(spec.resources)
        if disk is not None and root_device:
            arguments["BlockDeviceMappings"] = [
                {
                    "DeviceName": root_device,
                    "Ebs": {"VolumeSize": disk, "VolumeType": "gp3", "DeleteOnTermination": True},
                }
            ]
        progress.report(f"running a {instance_type} in {section.region}")
        instance = await ec2.run(**arguments)
        log.info("aws: %s runs %s (%s)", spec.name, instance.instance_id, instance_type)
        return instance

    async def _wait_running(
        self, ec2: Ec2, instance: Ec2Instance, section: AwsSection
    ) -> Ec2Instance:
        give_up = instance.launch_time + timedelta(seconds=section.ready_timeout)
        while True:
            if instance.state == "running":
                return instance
            if instance.state in GONE_STATES or instance.state in ("stopping", "stopped"):
                raise ProvisioningError(
                    f"EC2 instance {instance.instance_id} is {instance.state} before it was "
                    f"ready ({instance.state_reason or 'no reason given'})"
                )
            progress.report(f"EC2 instance {instance.instance_id} is {instance.state}")
            if datetime.now(UTC) >= give_up:
                raise ProvisioningError(
                    f"EC2 instance {instance.instance_id} was still {instance.state} after "
                    f"aws.ready_timeout ({section.ready_timeout}s); it is terminated"
                )
            await asyncio.sleep(self.poll_interval)
            found = await ec2.describe(instance.instance_id)
            if found is None:
                raise ProvisioningError(f"EC2 instance {instance.instance_id} disappeared")
            instance = found

    async def _wait_reachable(
        self,
        endpoint: Endpoint,
        section: AwsSection,
        instance: Ec2Instance,
        host_key: str,
        since: datetime | None = None,
    ) -> AdminConnection:
        """The admin login, retried until the instance's sshd answers with its pinned key.

        The deadline counts from the instance's launch (or ``since``: a resume), so a
        retried provision does not restart it. A different host key is never accepted:
        not our machine, or someone in between.
        """
        give_up = (since or instance.launch_time) + timedelta(seconds=section.ready_timeout)
        access = self._admin_access(section.ssh_user)
        last = "no answer yet"
        progress.report(f"waiting for SSH on {instance.instance_id} at {endpoint}")
        while True:
            try:
                return await connect_admin(
                    endpoint, access, connect_timeout=self.connect_timeout, host_key=host_key
                )
            except HostKeyMismatchError:
                raise ProvisioningError(
                    f"aws.ssh_endpoint: {endpoint} answered with a host key other than the one "
                    f"devenv gave {instance.instance_id}; refusing it (another machine at that "
                    "address, or someone in between)"
                ) from None
            except (HostDownError, AdminLoginRefusedError) as problem:
                last = _in_aws_words(problem)
            except AdminError as problem:
                raise ProvisioningError(f"aws: {_in_aws_words(problem)}") from None
            if datetime.now(UTC) >= give_up:
                raise ProvisioningError(
                    f"EC2 instance {instance.instance_id} was not reachable over SSH at "
                    f"{endpoint} (aws.ssh_endpoint) within aws.ready_timeout "
                    f"({section.ready_timeout}s): {last}"
                )
            await asyncio.sleep(self.poll_interval)

    async def _set_up(
        self,
        request: ProvisionInput,
        admin: AdminConnection,
        account: str,
        token: str,
        instance: Ec2Instance,
        section: AwsSection,
    ) -> InstanceInfo:
        """The account, keys and agent, as ``backend: ssh`` makes them on its hosts."""
        report = await inspect(admin, self.host_dir, account)
        problem = report.problem(admin.endpoint, account, request.spec.name, token)
        if problem is not None:
            raise ProvisioningError(f"aws: {problem}")
        ssh_info = await self._ssh.set_up_account(request, admin, report, account, token)
        data = AwsInstanceData(
            region=section.region,
            instance_id=instance.instance_id,
            instance_type=instance.instance_type,
            spot=section.spot,
            ssh_user=section.ssh_user,
            host_dir=self.host_dir,
            failsafe_after=section.failsafe_after,
        )
        price = section.price_per_hour
        if price is None:
            price = hourly_price(instance.instance_type, section.region, section.spot)
        return ssh_info.model_copy(
            update={
                "instance_id": instance.instance_id,
                "backend": BACKEND,
                "task_queue": request.spec.host_task_queue or SHARED_TASK_QUEUE,
                "data": data.model_dump(),
                "price_per_hour": price,
                "failsafe": True,
                "login_messages": True,
            }
        )

    # --- terminate ---------------------------------------------------------------------------

    async def terminate(self, request: TerminateInput) -> None:
        """End every instance of this token (found by tag, and by id if one was recorded)."""
        try:
            section = _section(request.spec.backend_config)
        except ProvisioningError as problem:
            log.warning("aws: nothing to terminate for %s: %s", request.spec.name, problem.message)
            return
        ec2 = Ec2(section.region)
        ids = {instance.instance_id for instance in await ec2.by_token(request.instance_token)}
        if request.instance is not None:
            ids.add(AwsInstanceData.model_validate(request.instance.data).instance_id)
        await self._terminate_ids(ec2, sorted(ids))

    async def _terminate_ids(self, ec2: Ec2, ids: list[str]) -> None:
        """TerminateInstances, then wait until EC2 says terminated (billing has stopped)."""
        await ec2.terminate(ids)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + TERMINATE_WAIT
        pending = list(ids)
        while pending:
            still = []
            for instance_id in pending:
                found = await ec2.describe(instance_id)
                if found is not None and found.state != "terminated":
                    still.append(instance_id)
            pending = still
            if not pending:
                break
            if loop.time() > give_up:
                raise TimeoutError(f"EC2 instances {', '.join(pending)} are not terminated yet")
            await asyncio.sleep(self.poll_interval)
        if ids:
            log.info("aws: terminated %s", ", ".join(ids))

    # --- watching ------------------------------------------------------------------------------

    async def gone_reason(self, instance: InstanceInfo) -> str | None:
        """Why the instance is gone (EC2's state and reason), or None while it exists."""
        data = AwsInstanceData.model_validate(instance.data)
        found = await Ec2(data.region).describe(data.instance_id)
        if found is None:
            return f"EC2 instance {data.instance_id} no longer exists"
        if found.state in GONE_STATES:
            return (
                f"EC2 instance {data.instance_id} is {found.state}: "
                f"{found.state_reason or 'no reason given'}"
            )
        return None

    async def is_alive(self, instance: InstanceInfo) -> bool:
        try:
            return await self.gone_reason(instance) is None
        except Exception as problem:  # a network blip is not a lost instance
            log.warning("aws: cannot tell whether %s lives (%s)", instance.instance_id, problem)
            return True

    async def presence(
        self, instance: InstanceInfo, *, connect_timeout: float = 10.0
    ) -> AsyncIterator[PresenceReport]:
        """The agent's stream over SSH; when it breaks, InstanceGone with EC2's reason."""
        stream = ssh_presence(instance, self.settings.internal_key, connect_timeout=connect_timeout)
        try:
            async for report in stream:
                yield report
        except Exception:
            reason = await self._reason_or_none(instance)
            if reason is not None:
                raise InstanceGoneError(reason) from None
            raise
        finally:
            await stream.aclose()

    async def _reason_or_none(self, instance: InstanceInfo) -> str | None:
        try:
            return await self.gone_reason(instance)
        except Exception:
            return None

    async def probe(self, instance: InstanceInfo) -> PresenceReport:
        report = await super().probe(instance)
        return report.model_copy(update={"last_change": NO_CHANGE_SEEN})

    async def apply_policy(self, instance: InstanceInfo, policy: FailsafePolicy) -> None:
        """Write the thresholds the machine's failsafe enforces (read at its next check)."""
        data = AwsInstanceData.model_validate(instance.data)
        if data.failsafe_after is not None:
            policy = policy.model_copy(update={"failsafe_after_seconds": data.failsafe_after})
        await self._keep_shutdown_behavior(data, policy.on_idle)
        async with await self._admin(instance) as admin:
            await write_policy(admin, data.host_dir, instance.username, policy)

    async def _keep_shutdown_behavior(self, data: AwsInstanceData, on_idle: OnIdle) -> None:
        """Make a shutdown from inside (the failsafe) stop the instance when idleness
        suspends, terminate it otherwise; set before the machine is told the policy."""
        ec2 = Ec2(data.region)
        want = shutdown_behavior(on_idle, data.spot)
        try:
            if await ec2.shutdown_behavior(data.instance_id) != want:
                await ec2.set_shutdown_behavior(data.instance_id, want)
                log.info("aws: %s now does %s on a shutdown", data.instance_id, want)
        except ProvisioningError as problem:
            if want == "stop":
                raise  # else the failsafe's shutdown would delete the disk: say so
            # Never suspended, so launched with terminate: a role without these
            # permissions (granted before suspension existed) loses nothing.
            log.warning("aws: shutdown behaviour of %s not checked: %s", data.instance_id, problem)

    async def apply_login(self, instance: InstanceInfo, login: LoginSettings) -> None:
        """Write the banner the account's login shell prints (as ``backend: ssh`` does)."""
        data = AwsInstanceData.model_validate(instance.data)
        async with await self._admin(instance) as admin:
            await apply_login(admin, data.host_dir, instance.username, login)

    async def tell_terminals(self, instance: InstanceInfo, text: str) -> int:
        """Write ``text`` into the account's terminals (root, like ``wall``)."""
        async with await self._admin(instance) as admin:
            return await tell_terminals(admin, instance.username, text)

    async def _admin(self, instance: InstanceInfo) -> AdminConnection:
        """The admin login of a ready instance, its host key pinned from the start."""
        data = AwsInstanceData.model_validate(instance.data)
        return await connect_admin(
            Endpoint(instance.host, instance.port),
            self._admin_access(data.ssh_user),
            connect_timeout=self.connect_timeout,
            host_key=instance.host_public_key,
        )

    # --- suspend and resume ------------------------------------------------------------------

    async def suspend(self, request: SuspendInput) -> InstanceInfo:
        """StopInstances and wait until EC2 says stopped; the EBS volumes stay (and bill)."""
        info = request.instance
        data = AwsInstanceData.model_validate(info.data)
        if data.spot:
            raise ApplicationError(
                f"EC2 instance {data.instance_id} is a one-time spot instance: it cannot be "
                "stopped, only terminated",
                type=SUSPEND_REFUSED,
                non_retryable=True,
            )
        ec2 = Ec2(data.region)
        await self._move(
            ec2, data.instance_id, "stopped", "running", ec2.stop, "stopping", STOP_WAIT, ""
        )
        log.info("aws: stopped %s (suspended)", data.instance_id)
        return await self._with_storage(ec2, info)

    async def resume(self, request: ResumeInput) -> InstanceInfo:
        """StartInstances, wait until running and reachable at its new address with the
        same pinned host key; then the agent checked and the failsafe started again."""
        info = request.instance
        data = AwsInstanceData.model_validate(info.data)
        section = _section(request.spec.backend_config)
        token = check_token(request.instance_token)
        ec2 = Ec2(data.region)
        since = datetime.now(UTC)
        found = await self._move(
            ec2,
            data.instance_id,
            "running",
            "stopped",
            ec2.start,
            "starting",
            section.ready_timeout,
            f" after aws.ready_timeout ({section.ready_timeout}s)",
        )
        endpoint = _endpoint(section, found)
        admin = await self._wait_reachable(
            endpoint, section, found, info.host_public_key, since=since
        )
        account = info.username
        async with admin:
            agent = await install_agent(admin, data.host_dir)
            report = await inspect(admin, data.host_dir, account)
            if report.record_token != token or report.record_state != "active":
                raise InstanceGoneError(
                    f"EC2 instance {data.instance_id} no longer holds {account} of this run"
                )
            assert report.python is not None
            await start_failsafe(
                admin,
                data.host_dir,
                report.python,
                agent,
                account,
                self.failsafe_action,
                self.failsafe_interval,
            )
        resumed = info.model_copy(update={"host": endpoint.host, "port": endpoint.port})
        await self._ssh._check_agent(resumed)
        log.info("aws: resumed %s at %s", data.instance_id, endpoint)
        return await self._with_storage(ec2, resumed)

    async def is_suspended(self, instance: InstanceInfo) -> bool:
        """Whether EC2 says the instance is stopped (or stopping): by ``suspend``, or by
        the failsafe's shutdown under ``on_idle: suspend`` while no control plane read it."""
        data = AwsInstanceData.model_validate(instance.data)
        found = await Ec2(data.region).describe(data.instance_id)
        return found is not None and found.state in ("stopping", "stopped")

    async def _move(
        self,
        ec2: Ec2,
        instance_id: str,
        want: str,
        ask_from: str,
        ask: Callable[[str], Awaitable[object]],
        doing: str,
        timeout: float,
        bound: str,
    ) -> Ec2Instance:
        """Bring the instance to state ``want``: ``ask`` EC2 once, when it is ``ask_from``
        (a retry after a crash finds it on its way and only waits); TimeoutError past
        ``timeout`` seconds (``bound`` says which setting that is)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        asked = False
        while True:
            found = await self._existing(ec2, instance_id)
            if found.state == want:
                return found
            if found.state == ask_from and not asked:
                progress.report(f"{doing} EC2 instance {instance_id}")
                await ask(instance_id)
                asked = True
                continue
            if loop.time() >= give_up:
                raise TimeoutError(f"EC2 instance {instance_id} is still {found.state}{bound}")
            progress.report(f"EC2 instance {instance_id} is {found.state}")
            await asyncio.sleep(self.poll_interval)

    async def _existing(self, ec2: Ec2, instance_id: str) -> Ec2Instance:
        """The instance as EC2 describes it; InstanceGone once it is terminated."""
        found = await ec2.describe(instance_id)
        if found is None:
            raise InstanceGoneError(f"EC2 instance {instance_id} no longer exists")
        if found.state in GONE_STATES:
            raise InstanceGoneError(
                f"EC2 instance {instance_id} is {found.state}: "
                f"{found.state_reason or 'no reason given'}"
            )
        return found

    # --- leftovers (devenv gc) -------------------------------------------------------------

    @property
    def regions_file(self) -> Path:
        return self.settings.home / "aws-regions.json"

    def _remember_region(self, region: str) -> None:
        """gc looks for leftovers in every region devenv has used from this home."""
        known = self._regions()
        if region in known:
            return
        self.regions_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.regions_file.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(sorted({*known, region})))
        os.replace(tmp, self.regions_file)

    def _regions(self) -> list[str]:
        try:
            value = json.loads(self.regions_file.read_text())
        except (OSError, ValueError):
            return []
        return [str(region) for region in value] if isinstance(value, list) else []

    async def leftovers(self) -> list[Leftover]:
        """Every instance with devenv's tags that is not terminated, in every region used."""
        found: list[Leftover] = []
        problems: list[str] = []
        for region in self._regions():
            try:
                instances = await Ec2(region).find(
                    [
                        {"Name": "tag-key", "Values": [TAG_TOKEN]},
                        {"Name": "instance-state-name", "Values": LIVE_STATES},
                    ]
                )
            except Exception as problem:  # one region down must not hide the others
                reason = problem.message if isinstance(problem, ApplicationError) else problem
                problems.append(f"{region}: {reason}")
                continue
            for instance in instances:
                found.append(
                    Leftover(
                        backend=BACKEND,
                        id=instance.instance_id,
                        where=region,
                        name=instance.tags.get(TAG_NAME),
                        workflow_id=instance.tags.get(TAG_WORKFLOW),
                        instance_token=instance.tags.get(TAG_TOKEN),
                        detail=f"{instance.instance_type} {instance.state} since "
                        f"{instance.launch_time:%Y-%m-%d %H:%M}",
                        data={"region": region},
                    )
                )
        if problems:
            raise LeftoversIncompleteError(found, problems)
        return found

    async def remove_leftover(self, leftover: Leftover) -> None:
        ec2 = Ec2(str(leftover.data["region"]))
        found = await ec2.describe(leftover.id)
        if found is None or TAG_TOKEN not in found.tags:
            return  # never touch an instance without devenv's tags
        await self._terminate_ids(ec2, [leftover.id])


def _in_aws_words(problem: AdminError) -> str:
    """The ssh backend's admin errors name its key (``ssh_config.hosts: ...``); here the
    address came from ``aws.ssh_endpoint``."""
    return str(problem).removeprefix("ssh_config.hosts: ")


def _section(config: dict[str, Any]) -> AwsSection:
    try:
        return AwsSection.model_validate(config)
    except ValidationError as problem:
        from devenv.models.problems import validation_problems

        lines = validation_problems(problem, AwsSection)
        raise ProvisioningError(
            "; ".join(
                f"aws: {line}" if line.startswith("unknown") else f"aws.{line}" for line in lines
            )
        ) from None


def _endpoint(section: AwsSection, instance: Ec2Instance) -> Endpoint:
    values = {
        "public_ip": instance.public_ip or "",
        "private_ip": instance.private_ip or "",
        "instance_id": instance.instance_id,
    }
    for field_name, value in values.items():
        if f"{{{field_name}}}" in section.ssh_endpoint and not value:
            raise ProvisioningError(
                f"aws.ssh_endpoint: {section.ssh_endpoint!r} needs {field_name} but instance "
                f"{instance.instance_id} has none (a subnet without public addresses?); "
                "use {private_ip} with a route to it, or a bastion"
            )
    host, port = parse_host(render_endpoint(section.ssh_endpoint, **values))
    return Endpoint(host, port or 22)


def _pick(resources: Resources, image: str) -> str:
    """The cheapest type of the price table meeting ``resources``; for an explicit AMI an
    x86_64 one (an alias follows the type's architecture)."""
    try:
        return pick_for_resources(resources, arch="x86_64" if image.startswith("ami-") else None)
    except ValueError as problem:
        raise ProvisioningError(f"resources: {problem}") from None


def _disk_gib(resources: Resources) -> int | None:
    size = parse_memory_gib(resources.disk)
    return None if size is None else max(8, int(size + 0.999))
