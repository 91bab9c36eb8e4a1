"""The default figures people read agree with the runs that produced them.

The built-in models' cards carry ``metrics.json`` of the default-recipe runs
they were made from (``bench.builtin_models``), and ``lenet evaluate --model
NAME`` reproduces each card's test figures (tests/test_builtin_models.py,
on the real data). Here, without any data: the benchmarks page, the built-in
models page and README state exactly those figures.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARDS = ROOT / "lenet_cli" / "builtin_models"
ROW_NAMES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
PERCENT = re.compile(r"(\d+\.\d+) %")


def _card(name: str) -> dict:
    return json.loads((CARDS / f"{name}.card.json").read_text(encoding="utf-8"))


def _row(page: Path, section: str, first_cell: str) -> list[str]:
    """The cells of the table row under ``## section`` whose first cell starts with ``first_cell``."""
    text = page.read_text(encoding="utf-8").split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and (cells[0] == first_cell or cells[0].startswith(f"{first_cell} ")):
            return cells
    raise AssertionError(f"no row {first_cell!r} under {section!r} in {page.name}")


def _percent(fraction: float, digits: int = 2) -> str:
    return f"{100 * fraction:.{digits}f}"


@pytest.mark.parametrize("name", sorted(ROW_NAMES))
def test_the_benchmarks_page_states_the_default_runs_metrics(name):
    card = _card(name)
    row = _row(ROOT / "docs" / "benchmarks.md", "The default recipes", ROW_NAMES[name])
    run = card["training"]["run_metrics"]
    assert PERCENT.findall(row[1])[0] == _percent(run["val_accuracy"]), row
    assert PERCENT.findall(row[2])[0] == _percent(run["test_accuracy"]), row
    for cell in row[1:3]:  # "seed 0 / seed 1 (mean)": the mean is the seeds' own
        seeds = [float(value) for value in PERCENT.findall(cell)]
        assert len(seeds) == 3, cell  # the header promises both seeds and their mean
        assert abs((seeds[0] + seeds[1]) / 2 - seeds[2]) <= 0.005 + 1e-9, cell


@pytest.mark.parametrize("name", sorted(ROW_NAMES))
def test_the_built_in_models_page_states_each_card(name):
    card = _card(name)
    text = (ROOT / "docs" / "guides" / "builtin-models.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |") and line.count("%") >= 2]
    assert len(rows) == 1, rows
    row = [cell.strip() for cell in rows[0].strip().strip("|").split("|")]
    assert row[2] == f"{_percent(card['test']['accuracy'])} %", row
    assert row[3] == f"{_percent(card['test']['expected_calibration_error'])} %", row
    assert row[4] == f"{_percent(card['training']['run_metrics']['test_accuracy'])} %", row
    assert row[5] == f"{card['size_bytes'] / 1e6:.1f} MB", row


def test_readme_rounds_the_benchmarks_page_means():
    """README's one-line figures are the means of the seeds on the benchmarks page, to one decimal."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"\((\d+\.\d) % test accuracy on MNIST, (\d+\.\d) % on\s+Fashion-MNIST", readme)
    assert stated, "README's opening paragraph states both default figures"
    for name, figure in zip(("mnist", "fashion"), stated.groups()):
        row = _row(ROOT / "docs" / "benchmarks.md", "The default recipes", ROW_NAMES[name])
        seeds = [float(value) for value in PERCENT.findall(row[2])]
        mean = seeds[-1] if len(seeds) == 3 else seeds[0]  # "s0 / s1 (mean)", or one seed
        assert f"{mean:.1f}" == figure, (name, row[2], figure)
