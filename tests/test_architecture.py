"""The layer rule, kept by a test: folders show the layers, and imports only point down.

Every ``import`` in the package counts, inside functions too. A module may
import its own package's modules and any lower rank's, never a higher rank's,
and no set of modules may import each other in a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lenet_cli"

RANKS = {
    "core": 0,
    "data": 1,
    "store": 1,
    "viz": 1,
    "model": 2,
    "runtimes": 2,
    "engine": 3,
    "api": 3,
    "cli": 4,
    "serve": 4,
    "__main__": 5,
}
"""The rank of each top-level package (or module) under ``lenet_cli``; README's "Package layout" names them."""

PRESENTATION_ONLY = ("click", "rich")  # what nothing below the CLI and the server imports


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (absolute names)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only = {id(n) for block in ast.walk(tree) if _is_type_checking_block(block) for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports for type checkers only, which never run."""
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def package_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's own modules it imports (names that are not modules, like functions, drop out)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    return {name: {m for m in imports_of(path, root) if m in modules and m != name} for name, path in modules.items()}


def rank(module: str) -> int | None:
    parts = module.split(".")
    return RANKS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(graph.items()):
        own = rank(module)
        for target in sorted(targets):
            theirs = rank(target)
            if own is not None and theirs is not None and theirs > own:
                bad.append(f"{module} (rank {own}) imports {target} (rank {theirs})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_module_has_a_layer():
    unranked = [m for m in package_graph() if m.count(".") >= 1 and rank(m) is None]
    assert unranked == [], f"modules outside every layer (add them to a layer folder, or to RANKS): {unranked}"


def test_every_lenet_import_names_a_module_that_exists():
    """An import inside a function runs only when it is called: a stale module name must fail here, not in a user's hands."""
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    stale = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("lenet_cli"):
                if node.module not in modules:
                    stale.append(f"{module_name(path)}: from {node.module} import ...")
            elif isinstance(node, ast.Import):
                stale += [
                    f"{module_name(path)}: import {a.name}"
                    for a in node.names
                    if a.name.startswith("lenet_cli") and a.name not in modules
                ]
    assert stale == []


def test_no_import_points_up_a_layer():
    assert upward_imports(package_graph()) == []


def test_no_import_cycle():
    assert cycles(package_graph()) == []


def test_nothing_below_the_command_line_imports_click_or_rich():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        if rank(name) is not None and rank(name) < RANKS["cli"]:
            used = {m.split(".")[0] for m in imports_of(path)} & set(PRESENTATION_ONLY)
            offenders += [f"{name} imports {u}" for u in sorted(used)]
    assert offenders == []


@pytest.mark.parametrize(
    "bad_line, finds",
    [
        ("from lenet_cli.cli.main import cli\n", "upward"),
        ("def f():\n    from lenet_cli.engine import runs\n", "upward"),
        ("def f():\n    from lenet_cli.core import flops\n", "cycle"),
    ],
)
def test_the_checks_catch_a_deliberate_violation(tmp_path, bad_line, finds):
    """A copy of the package with one bad import added must fail the check that guards against it."""
    import shutil

    copy = tmp_path / "lenet_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "static"))
    target = copy / "core" / ("config.py" if finds == "upward" else "flops.py")
    if finds == "cycle":  # flops imports config's ... make config import flops back, and flops import config
        (copy / "core" / "config.py").write_text(
            (copy / "core" / "config.py").read_text() + "\ndef _g():\n    from lenet_cli.core import flops\n"
        )
        bad_line = "def f():\n    from lenet_cli.core import config\n"
    target.write_text(target.read_text() + "\n" + bad_line)
    graph = package_graph(copy)
    if finds == "upward":
        assert upward_imports(graph), "an upward import went unnoticed"
    else:
        assert any("lenet_cli.core.config" in c and "lenet_cli.core.flops" in c for c in cycles(graph))
