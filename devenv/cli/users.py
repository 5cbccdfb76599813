"""`devenv users add|list|remove|key`: who may use the HTTP API, with which SSH key.

Run on the server's machine: it edits DEVENV_HOME/users.json, which the running server
rereads at once. A new user's token prints alone on stdout, once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devenv.cli.output import JSON_OPT, err, fail, out
from devenv.errors import DevenvError

if TYPE_CHECKING:
    from devenv.client.revoke import Revocation
    from devenv.client.tokens import User, UserStore

users_app = typer.Typer(help="Users of the HTTP API and their tokens.", no_args_is_help=True)

USER_ARG = Annotated[str, typer.Argument(help="The user's name.")]
KEY_HELP = "Their OpenSSH public key file (one line, e.g. ~/.ssh/id_ed25519.pub)."


def _store() -> UserStore:
    from devenv.client.tokens import UserStore
    from devenv.settings import Settings

    return UserStore(Settings.load())


def _key(path: Path) -> str:
    from devenv.client.identity import canonical_public_key

    return canonical_public_key(path.expanduser())


@users_app.command("add")
def add(
    name: USER_ARG,
    admin: Annotated[
        bool, typer.Option("--admin", help="May see and change every environment.")
    ] = False,
    key: Annotated[Path | None, typer.Option(metavar="FILE", help=KEY_HELP)] = None,
    local_backend: Annotated[
        bool,
        typer.Option(
            "--local-backend",
            help="May start `backend: local` environments: a shell as this server's own OS "
            "user, which can read its keys and tokens; only for someone you would make an "
            "admin.",
        ),
    ] = False,
) -> None:
    """Add a user and print their token (alone on stdout, shown only this once)."""
    from devenv.client.tokens import check_user_name

    try:
        check_user_name(name)
        public_key = None if key is None else _key(key)
        token = _store().add(name, admin=admin, public_key=public_key, local_backend=local_backend)
    except DevenvError as problem:
        raise fail(problem) from None
    role = "an admin" if admin else "a user"
    if local_backend and not admin:
        role += " who may start local environments"
    if public_key is None and not admin:
        role += f"; no SSH key yet, so no environments: `devenv users key {name} FILE`"
    err.print(f"Added {name} ({role}). Their token, shown only once:")
    sys.stdout.write(token + "\n")


@users_app.command("list")
def list_users(json_output: JSON_OPT = False) -> None:
    """The users: name, role, SSH key fingerprint, since when (never a token)."""
    try:
        users = _store().users()
    except DevenvError as problem:
        raise fail(problem) from None
    if json_output:
        rows = [user.model_dump(mode="json", exclude={"token_sha256"}) for user in users]
        out.print_json(json.dumps(rows))
        return
    if not users:
        err.print(
            "No users yet: `devenv token` creates the local admin, `devenv users add` others."
        )
        return
    width = max(len(user.name) for user in users)
    out.print(f"{'NAME':{width}}  {'ROLE':11}  {'CREATED':16}  KEY", markup=False)
    for user in users:
        out.print(
            f"{user.name:{width}}  {_role(user):11}  {user.created_at:%Y-%m-%d %H:%M}  "
            f"{fingerprint(user.public_key)}",
            markup=False,
        )


@users_app.command("remove")
def remove(name: USER_ARG) -> None:
    """Remove a user: their token stops working at once, their SSH key is refused in
    every environment shared with them, and the environments they own are stopped.

    Returns once every instance confirmed it; names those that could not be reached
    (exit 1: run it again). Run again for a user already removed, it retries them."""
    from devenv.client.tokens import NoSuchUserError, check_user_name

    try:
        check_user_name(name)
        _store().remove(name)
        missing: NoSuchUserError | None = None
    except NoSuchUserError as problem:
        missing = problem  # removed earlier: their environments are still swept
    except DevenvError as problem:
        raise fail(problem) from None
    if missing is None:
        err.print(f"Removed {name}; their token no longer works.")
    try:
        result = asyncio.run(_revoke(name))
    except DevenvError as problem:
        err.print(
            f"[red]error:[/] could not revoke {name}'s SSH key from the environments: "
            f"{problem}; once the devenv server runs, `devenv users remove {name}` again"
        )
        raise typer.Exit(1) from None
    if missing is not None and not (result.unshared or result.stopped or result.failed):
        raise fail(missing)
    if result.unshared:
        err.print(f"No longer shared with {name}: {', '.join(result.unshared)}.")
    if result.stopped:
        err.print(f"Stopped {name}'s environments: {', '.join(result.stopped)}.")
    for environment, why in result.failed:
        err.print(f"[red]error:[/] {environment}: could not revoke {name}'s key: {why}")
    if result.failed:
        err.print(f"Run `devenv users remove {name}` again once they answer.")
        raise typer.Exit(1)


async def _revoke(name: str) -> Revocation:
    from devenv.client.async_client import AsyncClient
    from devenv.client.revoke import revoke
    from devenv.settings import Settings, local_user

    client = AsyncClient(settings=Settings.load())  # explicit settings: always direct
    return await revoke(client, name, by=local_user())


@users_app.command("key")
def key(
    name: USER_ARG,
    file: Annotated[Path, typer.Argument(metavar="FILE", help=KEY_HELP)],
) -> None:
    """Register (or replace) a user's SSH key; their token stays the same."""
    try:
        user = _store().set_key(name, _key(file))
    except DevenvError as problem:
        raise fail(problem) from None
    err.print(f"{name}'s environments will accept {fingerprint(user.public_key)}.")


def _role(user: User) -> str:
    if user.admin:
        return "local admin" if user.local_admin else "admin"
    return "user+local" if user.local_backend else "user"


def fingerprint(public_key: str | None) -> str:
    """``SHA256:...`` as ssh-keygen -l shows it, and the key's comment."""
    import base64
    import binascii
    import hashlib

    if not public_key:
        return "-"
    parts = public_key.split()
    try:
        digest = hashlib.sha256(base64.b64decode(parts[1], validate=True)).digest()
    except (IndexError, binascii.Error):
        return "(unreadable key)"
    shown = "SHA256:" + base64.b64encode(digest).decode().rstrip("=")
    return " ".join([parts[0], shown, *parts[2:3]])
