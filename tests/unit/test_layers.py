"""Every import in devenv/ follows the layer table in docs/development.md.

The table is the rule, read from the doc, so the doc and the code cannot drift apart.
Every import counts: at top level, inside a function, under ``TYPE_CHECKING``; an import
that goes up a layer, or sideways to a layer not listed, is a failure naming the file,
the line and the rule.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "devenv"
DOC = ROOT / "docs" / "development.md"
ROW = re.compile(r"^\|\s*(\w+)\s*\|([^|]*)\|([^|]*)\|\s*$")


def layer_table() -> tuple[dict[str, str], dict[str, set[str]]]:
    """Module prefix -> layer, and layer -> the layers it may import (the doc's table)."""
    text = DOC.read_text()
    body = text.split("<!-- layers -->")[1].split("<!-- /layers -->")[0]
    owner: dict[str, str] = {}
    allowed: dict[str, set[str]] = {}
    for line in body.splitlines():
        row = ROW.match(line)
        if row is None or row.group(1) == "Layer":
            continue
        layer, modules, may = row.groups()
        for module in re.findall(r"`([\w.]+)`", modules):
            owner[module] = layer
        may = re.sub(r"\(.*?\)", "", may).replace("nothing", "")
        allowed[layer] = set(re.findall(r"\w+", may))
    return owner, allowed


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """Every devenv module a file imports, wherever the statement stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            # ``from devenv import wire`` imports the module devenv.wire
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                target = (
                    sub
                    if (ROOT / sub.replace(".", "/")).exists()
                    or (ROOT / (sub.replace(".", "/") + ".py")).exists()
                    else base
                )
                found.append((node.lineno, target))
    return sorted({(line, target) for line, target in found if target.split(".")[0] == "devenv"})


def layer_of(module: str, owner: dict[str, str]) -> str | None:
    """The layer of the longest listed prefix of ``module``."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        layer = owner.get(".".join(parts[:end]))
        if layer is not None:
            return layer
    return None


def test_the_doc_lists_the_order_and_every_layer_it_names() -> None:
    _, allowed = layer_table()
    assert {"cli", "api", "client", "worker", "activities", "backends", "workflows", "models"} <= (
        set(allowed)
    )
    for layer, may in allowed.items():
        assert may <= set(allowed), f"{layer} may import an unknown layer: {may - set(allowed)}"
    assert allowed["models"] == set()
    assert allowed["agent"] == set()
    assert allowed["workflows"] == {"models"}


def test_every_module_belongs_to_a_layer() -> None:
    owner, _ = layer_table()
    lost = [
        module_name(path)
        for path in sorted(PACKAGE.rglob("*.py"))
        if layer_of(module_name(path), owner) is None
    ]
    assert not lost, f"modules in no layer of docs/development.md: {lost}"


def test_no_import_crosses_the_layer_order() -> None:
    owner, allowed = layer_table()
    wrong: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        mine = layer_of(module_name(path), owner)
        assert mine is not None
        for line, target in imported(path):
            theirs = layer_of(target, owner)
            if theirs != mine and theirs not in allowed[mine]:
                where = path.relative_to(ROOT)
                wrong.append(f"{where}:{line}: {mine} imports {target} ({theirs})")
    assert not wrong, "imports across the layers of docs/development.md:\n" + "\n".join(wrong)


def test_models_import_only_the_stdlib_and_pydantic() -> None:
    """The shared types load anywhere: in ``devenv ps`` (no Temporal) and in the sandbox."""
    wrong: list[str] = []
    for path in sorted((PACKAGE / "models").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in {"pydantic", "devenv"}:
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}: imports {name}")
    assert not wrong, "\n".join(wrong)
