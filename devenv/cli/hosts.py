"""`devenv hosts add|list|remove`: the ssh host pools users name (`ssh_config: {pool: NAME}`).

Run on the server's machine by its admin: it edits DEVENV_HOME/host-pools.json, which
the worker reads at each provisioning. The key files are checked here, so that a pool
that cannot work is refused at once (their content is never shown).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devenv.cli.output import JSON_OPT, err, fail, out
from devenv.errors import DevenvError, InvalidValueError

if TYPE_CHECKING:
    from devenv.backends.ssh.pools import HostPool

hosts_app = typer.Typer(
    help="Host pools of the ssh backend: registered by the admin, named by users.",
    no_args_is_help=True,
)

POOL_ARG = Annotated[str, typer.Argument(help="The pool's name, as users write it: pool: NAME.")]


@hosts_app.command("add")
def add(
    name: POOL_ARG,
    host: Annotated[
        list[str],
        typer.Option(
            "--host", metavar="HOST[:PORT]", help="A host of the pool (repeat for several)."
        ),
    ],
    identity_file: Annotated[
        Path,
        typer.Option(metavar="FILE", help="The admin's private key (unencrypted) for them."),
    ],
    known_hosts: Annotated[
        Path,
        typer.Option(metavar="FILE", help="Their pinned host keys (never trusted on first use)."),
    ] = Path("~/.ssh/known_hosts"),
    user: Annotated[
        str, typer.Option(help="The admin login: root, or an account with passwordless sudo.")
    ] = "root",
    port: Annotated[int, typer.Option(help="SSH port of hosts given without one.")] = 22,
    price_per_hour: Annotated[
        float, typer.Option(help="USD per hour an environment there costs (devenv ps).")
    ] = 0.0,
    replace: Annotated[
        bool, typer.Option("--replace", help="Change the pool of that name if it exists.")
    ] = False,
) -> None:
    """Register a pool of hosts; users then start on it with `ssh_config: {pool: NAME}`."""
    from devenv.backends.ssh import pools
    from devenv.settings import Settings

    try:
        pool = pools.new_pool(
            name,
            hosts=host,
            port=port,
            user=user,
            identity_file=identity_file,
            known_hosts=known_hosts,
            price_per_hour=price_per_hour,
        )
        unpinned = _check_files(pool)
        pools.add_pool(Settings.load(), pool, replace=replace)
    except DevenvError as problem:
        raise fail(problem) from None
    for endpoint in unpinned:
        err.print(
            f"warning: {endpoint} has no key in {pool.known_hosts}: it will be refused "
            "until its key is pinned there",
            markup=False,
        )
    err.print(
        f"Added host pool {name} ({len(pool.hosts)} host{'s' if len(pool.hosts) > 1 else ''}); "
        f"users start on it with ssh_config: {{pool: {name}}}",
        markup=False,
    )


@hosts_app.command("list")
def list_pools(json_output: JSON_OPT = False) -> None:
    """The registered pools: name, hosts, admin login, key files (paths only)."""
    from devenv.backends.ssh.pools import load_pools
    from devenv.settings import Settings

    try:
        found = load_pools(Settings.load())
    except DevenvError as problem:
        raise fail(problem) from None
    if json_output:
        out.print_json(json.dumps([pool.model_dump(mode="json") for pool in found]))
        return
    if not found:
        err.print("No host pools yet: `devenv hosts add NAME --host H --identity-file F`.")
        return
    width = max(4, *(len(pool.name) for pool in found))
    header = f"{'NAME':{width}}  {'USER':8}  {'HOSTS':30}  IDENTITY FILE / KNOWN HOSTS"
    out.print(header, markup=False)
    for pool in found:
        out.print(
            f"{pool.name:{width}}  {pool.user:8}  {_hosts(pool):30}  "
            f"{pool.identity_file} / {pool.known_hosts}",
            markup=False,
        )


@hosts_app.command("remove")
def remove(name: POOL_ARG) -> None:
    """Forget a pool: new environments can no longer name it (running ones keep running)."""
    from devenv.backends.ssh.pools import remove_pool
    from devenv.settings import Settings

    try:
        remove_pool(Settings.load(), name)
    except DevenvError as problem:
        raise fail(problem) from None
    err.print(f"Removed host pool {name}; environments on its hosts keep running.", markup=False)


def _check_files(pool: HostPool) -> list[str]:
    """Refuse a key or known_hosts file devenv cannot use (file and line, never content);
    the hosts that have no key pinned, to warn about."""
    from devenv.backends.ssh import keyfiles

    try:
        keyfiles.read_private_key(Path(pool.identity_file))
    except keyfiles.KeyFileError as problem:
        raise InvalidValueError(
            f"--identity-file: cannot use {problem}; accepted: an unencrypted OpenSSH private key"
        ) from None
    try:
        entries = keyfiles.read_known_hosts(Path(pool.known_hosts))
    except keyfiles.KeyFileError as problem:
        raise InvalidValueError(
            f"--known-hosts: cannot read {problem}; accepted: an OpenSSH known_hosts file"
        ) from None
    unpinned = []
    for host, port in pool.section().endpoints():
        keys, ca_keys, *_ = entries.match(host, "", None if port == 22 else port)
        if not keys and not ca_keys:
            unpinned.append(f"{host}:{port}")
    return unpinned


def _hosts(pool: HostPool) -> str:
    shown = ", ".join(pool.hosts)
    return shown if len(shown) <= 30 else shown[:27] + "..."
