"""The layer rule, kept by a test: folders show the layers, and imports only point down.

Every ``import`` in the package counts, inside functions too. A module may
import its own package's modules and any lower rank's, never a higher rank's
nor another package of its own rank, and no set of modules may import each
other in a cycle. The command line uses only the engine's public workflows, and
no function outside a Click command is too big to read at once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lenet_cli"

RANKS = {
    "core": 0,
    "store": 1,
    "viz": 1,
    "data": 2,  # reads and caches through store
    "model": 3,  # data's preprocessing, viz's figures for TensorBoard
    "runtimes": 4,  # model's network to write Keras exports
    "engine": 5,
    "api": 6,  # the engine's workflows, for Python users
    "serve": 6,  # the engine's model context, for HTTP clients
    "cli": 7,  # serve's runner, behind lenet serve
    "__main__": 8,
}
"""The rank of each top-level package (or module) under ``lenet_cli``: its floor, one above the highest it imports.

docs/reference/api.md ("How the package is layered") names them. Packages of one rank never import each other.
"""

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
            across = module.split(".")[:2] != target.split(".")[:2]
            if own is not None and theirs is not None and (theirs > own or (theirs == own and across)):
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
        ("def f():\n    from lenet_cli.viz import plots\n", "same rank"),
        ("def f():\n    from lenet_cli.engine.tune.search import search\n", "cli internals"),
        ("import lenet_cli.engine.runs\n", "cli internals"),
        ("def f(a, b, c, d, e, f, g, h, i):\n    pass\n", "too big"),
        ("def f():\n" + "    pass\n" * 80, "too big"),
    ],
)
def test_the_checks_catch_a_deliberate_violation(tmp_path, bad_line, finds):
    """A copy of the package with one bad import added must fail the check that guards against it."""
    import shutil

    copy = tmp_path / "lenet_cli"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "static"))
    if finds == "cli internals":
        target = copy / "cli" / "tune.py"
        assert cli_reaches_past_the_workflows(copy) == []
        target.write_text(target.read_text() + "\n" + bad_line)
        assert cli_reaches_past_the_workflows(copy), "a command reaching into the engine went unnoticed"
        return
    if finds == "too big":
        target = copy / "core" / "units.py"
        assert oversized_functions(copy) == []
        target.write_text(target.read_text() + "\n" + bad_line)
        assert oversized_functions(copy), "a function too big to read at once went unnoticed"
        return
    target = copy / {"upward": "core/config.py", "same rank": "store/runs.py"}.get(finds, "core/flops.py")
    if finds == "cycle":  # flops imports config's ... make config import flops back, and flops import config
        (copy / "core" / "config.py").write_text(
            (copy / "core" / "config.py").read_text() + "\ndef _g():\n    from lenet_cli.core import flops\n"
        )
        bad_line = "def f():\n    from lenet_cli.core import config\n"
    target.write_text(target.read_text() + "\n" + bad_line)
    graph = package_graph(copy)
    if finds == "upward":
        assert upward_imports(graph), "an upward import went unnoticed"
    elif finds == "same rank":
        assert any("lenet_cli.store" in line and "lenet_cli.viz" in line for line in upward_imports(graph))
    else:
        assert any("lenet_cli.core.config" in c and "lenet_cli.core.flops" in c for c in cycles(graph))


# --- The command line is a shell over the engine's public workflows ------------------------------------------------

CLI_MAY_IMPORT_FROM_ENGINE = {
    "lenet_cli.engine.train": {"TrainRequest", "train"},
    "lenet_cli.engine.resume": {"resume_request"},  # --resume RUN: the request that continues a run
    "lenet_cli.engine.interrupted": {"TrainingInterrupted"},  # how train ends on a signal: the CLI exits 130 / 143
    "lenet_cli.engine.evaluate": {"EvaluateRequest", "evaluate"},
    "lenet_cli.engine.predict": {"PredictRequest", "start_predict"},
    "lenet_cli.engine.explain": {"ExplainRequest", "explain"},
    "lenet_cli.engine.export": {"export_model"},
    "lenet_cli.engine.export_request": {"ExportRequest"},
    # BENCHMARK_FORMATS and COLUMNS: the formats a request may name, and the result rows' keys (the CSV header)
    "lenet_cli.engine.benchmark": {"BenchmarkRequest", "benchmark", "BENCHMARK_FORMATS", "COLUMNS"},
    # LIST_FIELDS: the keys of list_runs' records (the CSV header, also when there is no run)
    "lenet_cli.engine.runs": {"list_runs", "show_run", "list_builtin_models", "LIST_FIELDS"},
    "lenet_cli.engine.runs_compare": {"CompareRequest", "compare_runs"},
    "lenet_cli.engine.runs_tidy": {
        "TagRequest",
        "tag_run",
        "RemoveRequest",
        "remove_runs",
        "PruneRequest",
        "prune_runs",
    },
    "lenet_cli.engine.tune": {"TuneRequest", "TuneEvents", "TuneInterrupted", "run_tune", "show"},
}
"""Per engine module, the public workflow functions, request types (and their events and outcomes) ``cli/`` may use."""


def engine_imports_of_the_cli(root: Path = PACKAGE) -> list[tuple[str, str, str]]:
    """``(cli module, engine module, name)`` for every import from ``lenet_cli.engine`` under ``cli/``, at any depth.

    ``import lenet_cli.engine.x`` and ``from lenet_cli.engine import x`` take a whole module: their name is ``*``.
    """
    found = []
    for path in sorted((root / "cli").rglob("*.py")):
        name = module_name(path, root)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(name, a.name, "*") for a in node.names if a.name.startswith("lenet_cli.engine")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lenet_cli.engine"):
                module = node.module or ""
                if module == "lenet_cli.engine":
                    found += [(name, f"{module}.{a.name}", "*") for a in node.names]
                else:
                    found += [(name, module, a.name) for a in node.names]
    return found


def cli_reaches_past_the_workflows(root: Path = PACKAGE) -> list[str]:
    return [
        f"{cli} imports {name} from {engine}"
        for cli, engine, name in engine_imports_of_the_cli(root)
        if name not in CLI_MAY_IMPORT_FROM_ENGINE.get(engine, set())
    ]


def test_the_command_line_uses_only_the_engines_public_workflows():
    assert cli_reaches_past_the_workflows() == [], (
        "cli/ calls engine internals: move the step into the engine's workflow (or its request), or, if the name is a "
        "public workflow function or request type, add it to CLI_MAY_IMPORT_FROM_ENGINE"
    )


# --- No function too big to read at once ---------------------------------------------------------------------------

MAX_PARAMETERS = 8  # self and cls not counted; *args and **kwargs count one each
MAX_LINES = 80  # from the def line to the function's last line


def is_click_command(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """A Click command or group takes one parameter per option, and is exempt."""
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        if name in ("command", "group"):
            return True
    return False


def parameter_count(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    args = node.args
    names = [a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs)]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return len(names) + (args.vararg is not None) + (args.kwarg is not None)


def oversized_functions(root: Path = PACKAGE) -> list[str]:
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or is_click_command(node):
                continue
            where = f"{module_name(path, root)}:{node.lineno} {node.name}"
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if parameter_count(node) > MAX_PARAMETERS:
                found.append(f"{where} takes {parameter_count(node)} parameters (at most {MAX_PARAMETERS})")
            if lines > MAX_LINES:
                found.append(f"{where} runs {lines} lines (at most {MAX_LINES})")
    return found


def test_no_function_outside_a_click_command_is_too_big():
    assert oversized_functions() == [], "split the function, or pass one request or plan object instead"


# --- The ranks are the real floors -------------------------------------------------------------------------------


def lowest_ranks(graph: dict[str, set[str]]) -> dict[str, int]:
    """Each top-level package's floor, measured: 0 for one that imports no other, else one above the highest it imports."""
    top = {m: m.split(".")[1] for m in graph if m.count(".") >= 1}
    uses: dict[str, set[str]] = {}
    for module, targets in graph.items():
        if module in top:
            uses.setdefault(top[module], set()).update(top[t] for t in targets if t in top and top[t] != top[module])
    floors: dict[str, int] = {}

    def floor(package: str, seen: frozenset = frozenset()) -> int:
        if package not in floors:
            below = [floor(p, seen | {package}) for p in uses.get(package, ()) if p not in seen]
            floors[package] = 1 + max(below) if below else 0
        return floors[package]

    for package in uses:
        floor(package)
    return floors


def test_the_ranks_match_the_real_floors():
    """Each rank is the package's floor as its imports measure it: no package stands higher than it needs, nor lower."""
    floors = lowest_ranks(package_graph())
    assert {p: RANKS[p] for p in floors} == floors
