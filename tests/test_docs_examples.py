"""The manual's examples run: its Python blocks on tiny data, its JSON schemas against real run files, and the site builds with no warning.

Each page's ``python`` blocks run in order, in one namespace, in a folder laid
out as the examples assume: ``data/mnist/`` (tiny synthetic IDX files),
``runs/mnist-20261127-101500/`` (a tiny trained run, also ``LATEST``), and
``digit.png`` and ``photo.jpg``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli
from tests.helpers.idx_factory import write_dataset

pytestmark = pytest.mark.slow  # trains, exports and builds the site

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SCHEMAS = DOCS / "reference" / "schemas"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXAMPLE_RUN = "mnist-20261127-101500"  # the run name the pages use
NOT_RUN = {  # pages whose Python needs a service the tests do not start, and why
    "docs/guides/tracking.md": "loads a registered model from an MLflow server (tests/test_mlflow_tracking.py runs against a real one)",
}


def _pages_with_python():
    pages = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [page for page in pages if PYTHON_BLOCK.search(page.read_text(encoding="utf-8"))]


def _picture(path: Path, dark_on_light: bool = True) -> Path:
    pixels = np.full((80, 80), 255 if dark_on_light else 0, np.uint8)
    pixels[15:65, 35:45] = 0 if dark_on_light else 255
    Image.fromarray(pixels).convert("RGB").save(path)
    return path


@pytest.fixture
def example_folder(tmp_path, trained_run, monkeypatch):
    """The folder the examples assume, as the working directory."""
    from lenet_cli.store import runs

    write_dataset(
        tmp_path / "data" / "mnist", n_train=7000, n_test=200, seed=3
    )  # room for the 5,000 validation images and train_limit=2000
    shutil.copytree(trained_run, tmp_path / "runs" / EXAMPLE_RUN)
    runs.mark_latest(tmp_path / "runs" / EXAMPLE_RUN, tmp_path / "runs")
    _picture(tmp_path / "digit.png")
    _picture(tmp_path / "photo.jpg", dark_on_light=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_some_pages_have_python_examples():
    names = {page.name for page in _pages_with_python()}
    assert {"README.md", "api.md", "export.md"} <= names, names


@pytest.mark.parametrize("page", _pages_with_python(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_python_examples_of_a_page_run(page, example_folder):
    if str(page.relative_to(ROOT)) in NOT_RUN:
        pytest.skip(NOT_RUN[str(page.relative_to(ROOT))])
    namespace: dict = {"__name__": "__docs_example__"}
    for number, block in enumerate(PYTHON_BLOCK.findall(page.read_text(encoding="utf-8")), 1):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block, f"{page.relative_to(ROOT)} (python block {number})", "exec"), namespace)
    if page.name in ("README.md", "api.md"):
        run = namespace["run"]
        assert (run.run_dir / "model.keras").is_file() and Path("model.tflite").is_file()
        assert namespace["model"].output_shape == (None, 10)


def test_real_run_files_match_their_schemas(trained_run, tmp_path):
    import jsonschema

    def check(schema_name: str, document) -> None:
        schema = json.loads((SCHEMAS / schema_name).read_text(encoding="utf-8"))
        jsonschema.validate(document, schema, cls=jsonschema.Draft202012Validator)

    check("metrics.schema.json", json.loads((trained_run / "metrics.json").read_text()))
    check("history.schema.json", json.loads((trained_run / "history.json").read_text()))
    pruned = {
        "dataset": "mnist",
        "pruned": True,
        "study": "mnist",
        "trial": 3,
        "test_accuracy": None,
        "val_accuracy": 0.41,
        "epochs": 6,
        "epochs_completed": 2,
        "train_seconds": 4.2,
        "saved_seconds": 8.4,
    }  # the shape engine/tune/objective.py writes for a pruned trial
    check("metrics.schema.json", pruned)
    with pytest.raises(jsonschema.ValidationError):
        check("metrics.schema.json", {**json.loads((trained_run / "metrics.json").read_text()), "undocumented": 1})

    pictures = [_picture(tmp_path / "digit.png"), tmp_path / "blank.png"]
    Image.new("L", (40, 40), 255).save(pictures[1])
    result = CliRunner().invoke(cli, ["predict", "--model", str(trained_run), *map(str, pictures), "--format", "json"])
    records = json.loads(result.stdout)
    assert [r["error"] is None for r in records] == [True, False]
    for record in records:
        check("prediction.schema.json", record)


def test_the_site_builds_with_no_warning(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "WARNING" not in proc.stderr, proc.stderr[-4000:]
    site = tmp_path / "site"
    for page in ("index.html", "reference/cli.html", "reference/api.html", "guides/predicting.html"):
        assert (site / page).is_file(), page
    cli_page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    for name in cli.commands:
        assert f'id="lenet-{name}"' in cli_page, f"the CLI reference lacks lenet {name}"
    assert 'id="lenet_cli.api.train"' in (site / "reference" / "api.html").read_text(encoding="utf-8")
    for html in site.rglob("*.html"):  # offline: no script, style sheet or font from another host
        text = html.read_text(encoding="utf-8")
        assert not re.search(r"<(script|link)[^>]+(src|href)=\"(https?:)?//", text), (
            f"{html.relative_to(site)} loads from the network"
        )
    shutil.rmtree(site)
