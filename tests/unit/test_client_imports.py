"""The SDK's modules import each other in one direction only: no cycle in
``devenv.client``, counting every import (at the top, inside functions and under
``TYPE_CHECKING``), so that each module can be read, and loaded, after the ones it uses.
"""

from __future__ import annotations

import ast
from pathlib import Path

import devenv.client

PACKAGE = "devenv.client"
ROOT = Path(devenv.client.__file__).parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([PACKAGE, *parts])


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports."""
    modules = {module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                # the package's own __init__ imports nothing: a module is what is named
                if target in modules and target != name and target != PACKAGE:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (its modules in import order, the first repeated at the end), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        path.append(module)
        for target in sorted(graph[module]):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        path.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


def test_the_graph_sees_imports_inside_functions_and_type_checking() -> None:
    graph = import_graph()
    assert "devenv.client.transports.direct" in graph["devenv.client.async_client"]  # in __init__
    assert "devenv.client.jobs" in graph["devenv.client.environment"]  # in a method
    assert "devenv.client.lookup" in graph["devenv.client.transports.base"]  # TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_sdk() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in devenv.client: " + " -> ".join(cycle or [])
