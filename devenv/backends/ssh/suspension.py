"""Suspending and resuming an account on a host, as root over the admin login.

Suspend keeps the account and its home but lets nothing run there and nobody in: the
login is locked (password, expiry, shell), every process of the uid is ended, and the
keys (``authorized_keys``, ``authorized_keys2``) and the crontab move to root-only
files beside the account's record::

    accounts/<account>.suspended   "shell=..." / "linger=0|1": what resume restores
    accounts/<account>.keys        the authorized_keys as they were (members' too)
    accounts/<account>.keys2       authorized_keys2, if there was one
    accounts/<account>.crontab     the crontab, if there was one

The record stays ``<token> active``: the name is still taken, ``devenv gc`` sees the
environment's workflow, a retried provision finds it. Resume restores the login and
removes the marker last, so either step cut short is finished by the next try.
"""

from __future__ import annotations

from typing import NoReturn

from devenv.backends.base import InstanceGoneError
from devenv.backends.ssh.admin import AdminConnection, HostCommandError
from devenv.backends.ssh.host_scripts import host_script
from devenv.backends.ssh.host_setup import ACCOUNT_PRELUDES, TERMINATE_TIMEOUT

SUSPEND = host_script("suspend.sh", preludes=ACCOUNT_PRELUDES)
RESUME = host_script("resume.sh")
GONE_STATUS = 3
"""Both scripts: the token's account is gone or was terminated."""


async def suspend_account(admin: AdminConnection, host_dir: str, account: str, token: str) -> str:
    """Suspend ``token``'s account (``SUSPEND``); its home. Idempotent."""
    result = await admin.run(SUSPEND, host_dir, account, token, timeout=TERMINATE_TIMEOUT)
    fields = result.fields()
    if result.status == 0 and fields.get("result") == "suspended":
        return fields.get("home", "")
    _raise(admin, "suspending", account, token, result.status, fields, result.describe())


async def resume_account(admin: AdminConnection, host_dir: str, account: str, token: str) -> str:
    """Resume ``token``'s account (``RESUME``); its home. Idempotent (a running one stays)."""
    result = await admin.run(RESUME, host_dir, account, token)
    fields = result.fields()
    if result.status == 0 and fields.get("result") in ("resumed", "running"):
        return fields.get("home", "")
    _raise(admin, "resuming", account, token, result.status, fields, result.describe())


def _raise(
    admin: AdminConnection,
    doing: str,
    account: str,
    token: str,
    status: int,
    fields: dict[str, str],
    described: str,
) -> NoReturn:
    if status == GONE_STATUS:
        raise InstanceGoneError(
            f"account {account} on {admin.endpoint} is gone or no longer instance {token}'s"
        )
    if fields.get("result") == "survivors":
        raise HostCommandError(
            f"{admin.endpoint}: processes of {account} survive SIGKILL "
            f"({fields.get('pids', '')}); retrying"
        )
    raise HostCommandError(f"{admin.endpoint}: {doing} account {account} failed: {described}")
