"""What users of an ssh host account see from devenv: the login banner, warnings, and
the colleagues it is shared with (their keys in its authorized_keys).

The banner is ``HOST_DIR/banners/ACCOUNT`` (root's, readable by all), printed by the
account's login shell through a line ``create_account`` adds to its profile; a warning
is written by root into every pseudo-terminal the account owns, as ``wall`` does.
Both run over the admin connection; ``backend: aws`` uses them as they are.
"""

from __future__ import annotations

from devenv.backends.ssh.admin import AdminConnection, HostCommandError
from devenv.backends.ssh.failsafe import check_account
from devenv.backends.ssh.host_scripts import host_script
from devenv.backends.ssh.host_setup import check_host_dir, key_line
from devenv.models.sharing import SHARED_MARK, USER_NAME
from devenv.models.state import LoginSettings

WRITE_BANNER = host_script("write_banner.sh")
SET_SHARED_KEYS = host_script("set_shared_keys.sh")
TELL = host_script("tell.sh")


async def apply_login(
    admin: AdminConnection, host_dir: str, account: str, login: LoginSettings
) -> None:
    """The banner, and the members' keys in the account's authorized_keys (its own key and
    devenv's internal line kept; a member removed can no longer log in)."""
    await write_banner(admin, host_dir, account, login.banner)
    keys = "".join(f"{member_line(line)}\n" for line in login.shared_keys)
    result = await admin.run(SET_SHARED_KEYS, check_account(account), stdin=keys)
    if result.status != 0 or result.fields().get("result") != "ok":
        raise HostCommandError(
            f"{admin.endpoint}: authorizing the members of {account} failed: {result.describe()}"
        )


def member_line(line: str) -> str:
    """``TYPE BASE64 devenv-shared:NAME`` rebuilt from the parsed key and a checked name,
    so nothing but one plain key reaches sshd (no option, no second line)."""
    _, _, name = line.rpartition(SHARED_MARK)
    if not USER_NAME.fullmatch(name):
        raise ValueError(f"a shared key without a member's name: {line[:60]!r}")
    return f"{key_line(line)} {SHARED_MARK}{name}"


async def write_banner(admin: AdminConnection, host_dir: str, account: str, text: str) -> None:
    """``HOST_DIR/banners/ACCOUNT`` (readable by all, written by root): the login banner
    the account's login shell prints (a line in its profile, added at creation)."""
    result = await admin.run(
        WRITE_BANNER, check_host_dir(host_dir), check_account(account), stdin=text
    )
    if result.status != 0 or result.fields().get("result") != "ok":
        raise HostCommandError(
            f"{admin.endpoint}: writing the login banner of {account} failed: {result.describe()}"
        )


async def tell_terminals(admin: AdminConnection, account: str, text: str) -> int:
    """Write ``text`` into every terminal of ``account`` (as root, like ``wall``); how many."""
    result = await admin.run(TELL, check_account(account), stdin=text)
    if result.status != 0:
        raise HostCommandError(
            f"{admin.endpoint}: writing to the terminals of {account} failed: {result.describe()}"
        )
    told = result.fields().get("told", "0")
    return int(told) if told.isdigit() else 0
