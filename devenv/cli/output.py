"""Where the CLI writes (stdout for results, stderr for people) and how it fails."""

from __future__ import annotations

import sys
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from devenv.errors import DevenvError, ServerUnreachableError

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
T = TypeVar("T")

DURATION_HELP = "A duration: 7200, 90s, 30m, 2h, 1d, 1w, 1h30m; off to disable."
NAME_ARG = Annotated[str, typer.Argument(help="Environment name, or its workflow id devenv-NAME.")]
JSON_OPT = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def fail(problem: DevenvError) -> typer.Exit:
    """Print ``problem`` as one red line (a file with several problems: one each); the
    exit to raise."""
    text = str(problem)
    if isinstance(problem, ServerUnreachableError):
        text = f"{text}; {problem.hint}"
    for line in text.splitlines() or [""]:
        err.print(f"[red]error:[/] {escape(line)}")  # a command's output may hold [/]
    return typer.Exit(problem.exit_code)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command body; devenv's own errors become one red line and exit code 2."""
    import asyncio  # here: `--help` and the commands that run no coroutine skip its import

    try:
        return asyncio.run(coro)
    except DevenvError as problem:
        raise fail(problem) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def note(message: str, transient: bool = False) -> None:
    """Progress for people, on stderr (dim)."""
    err.print(f"[dim]{message}[/]")
