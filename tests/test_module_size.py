"""No module too big to read at once: every module of the package stays under :data:`MAX_MODULE_LINES` lines.

A module over the limit has more than one job; split it along its seams (one job a module, a docstring that says
why it exists) rather than raise the limit. ``find lenet_cli -name '*.py' | xargs wc -l | sort -n | tail`` lists
the largest.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lenet_cli"

MAX_MODULE_LINES = 450


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def oversized_modules(root: Path = PACKAGE, limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """Module path (relative to ``root``) -> its line count, for every module over ``limit`` lines."""
    sizes = {path.relative_to(root).as_posix(): line_count(path) for path in sorted(root.rglob("*.py"))}
    return {name: lines for name, lines in sizes.items() if lines > limit}


def test_no_module_is_too_big_to_read_at_once():
    too_big = oversized_modules()
    assert too_big == {}, f"modules over {MAX_MODULE_LINES} lines (split each along its seams): {too_big}"


def test_the_check_catches_a_module_over_the_limit(tmp_path):
    """A deliberate violation: a module one line over the limit is found, one at the limit is not."""
    (tmp_path / "at_limit.py").write_text("x = 1\n" * MAX_MODULE_LINES)
    (tmp_path / "over.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert oversized_modules(tmp_path) == {"over.py": MAX_MODULE_LINES + 1}
