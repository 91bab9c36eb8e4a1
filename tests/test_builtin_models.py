"""The models shipped inside the package: they match their cards, answer with no run at all, and never shadow a user's own."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lenet_cli.store.builtin import BUILTIN_NAMES, builtin_model, builtin_models
from tests.helpers.picture_kinds import STYLES, render_kind
from tests.helpers.real_data import REAL_DATA, requires_real_data

CARD_FIELDS = (
    "name",
    "title",
    "sha256",
    "size_bytes",
    "quantization",
    "float32_test_accuracy",
    "test",
    "slice",
    "training",
    "not_for",
)
WHEEL_BUDGET_BYTES = 12_000_000  # what the built-ins may add to the wheel


def lenet(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lenet_cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def drawn_digits(folder: Path) -> dict[Path, int]:
    """Digits drawn from pen strokes in other writers' styles (nothing from MNIST), as photos on paper, with their labels."""
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {}
    for variant, (style, digit) in enumerate(STYLES):
        path = folder / f"{style}.png"
        path.write_bytes(render_kind("styles", (7, variant), variant=variant))
        pictures[path] = digit
    for label in (1, 7):
        path = folder / f"continental-{label}.png"
        path.write_bytes(render_kind("continental", (8, label), label=label))
        pictures[path] = label
    return pictures


def test_every_built_in_is_installed_and_matches_its_card():
    assert [model.name for model in builtin_models()] == list(BUILTIN_NAMES)
    total = 0
    for model in builtin_models():
        card = model.card()
        assert all(field in card for field in CARD_FIELDS), sorted(set(CARD_FIELDS) - set(card))
        data = model.model_path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == card["sha256"]
        assert len(data) == card["size_bytes"]
        sidecar = json.loads(Path(str(model.model_path) + ".lenet.json").read_text())
        assert sidecar["dataset"] == model.name == card["name"]
        assert card["training"]["command"] == f"lenet train --dataset {model.name} --seed 0"
        assert card["test"]["count"] == 10_000 and 0.9 < card["test"]["accuracy"] <= 1
        assert card["test"]["accuracy"] >= card["float32_test_accuracy"] - 0.001  # quantised only within 0.1 points
        total += len(data) + model.card_path.stat().st_size
    assert total < WHEEL_BUDGET_BYTES


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_the_shipped_files_carry_no_path_of_the_machine_that_made_them():
    for model in builtin_models():
        for path in (model.card_path, Path(str(model.model_path) + ".lenet.json")):
            absolute = [text for text in _strings(json.loads(path.read_text())) if text.startswith(("/", "~"))]
            assert not absolute, (path.name, absolute)


def test_predict_answers_right_after_install_with_the_mnist_model(tmp_path):
    pictures = drawn_digits(tmp_path / "pictures")
    result = lenet(
        "predict", *map(str, pictures), "--format", "json", "--runs-dir", str(tmp_path / "no-runs"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    assert [a["index"] for a in answers] == list(pictures.values())
    assert answers[0]["model"].endswith("builtin_models/mnist.tflite")
    notes = [line for line in result.stderr.splitlines() if "built-in" in line]
    assert len(notes) == 1 and "no run under" in notes[0] and "lenet train" in notes[0]


def test_a_built_in_is_named_by_its_dataset(tmp_path):
    picture = next(iter(drawn_digits(tmp_path / "pictures")))
    result = lenet(
        "predict", "--model", "fashion", str(picture), "--format", "json", "--runs-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 0, result.stderr
    (answer,) = json.loads(result.stdout)
    assert answer["label"] in builtin_model("fashion").card()["test"]["per_class"]
    assert answer["model"].endswith("builtin_models/fashion.tflite")
    assert "built-in" not in result.stderr  # named on purpose: nothing to explain


def test_a_run_or_a_path_named_like_a_built_in_wins(tmp_path, trained_run):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / "mnist")
    picture = next(iter(drawn_digits(tmp_path / "pictures")))
    by_run = lenet(
        "predict", "--model", "mnist", str(picture), "--format", "json", "--runs-dir", str(runs), cwd=tmp_path
    )
    assert by_run.returncode == 0, by_run.stderr
    assert json.loads(by_run.stdout)[0]["model"] == str(runs / "mnist" / "model.tflite")
    here = tmp_path / "here"
    shutil.copytree(trained_run, here / "mnist")
    by_path = lenet(
        "predict", "--model", "mnist", str(picture), "--format", "json", "--runs-dir", str(tmp_path / "empty"), cwd=here
    )
    assert by_path.returncode == 0, by_path.stderr
    assert json.loads(by_path.stdout)[0]["model"] == str(Path("mnist") / "model.tflite")


def test_an_unknown_name_says_what_a_model_can_be(tmp_path):
    result = lenet("evaluate", "--model", "cifar", "--runs-dir", str(tmp_path))
    assert result.returncode == 2
    assert "built-in" in result.stderr and "mnist, fashion" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_serve_answers_with_the_built_in_when_there_is_no_run(tmp_path, monkeypatch):
    import httpx

    from tests.test_serve import Server

    monkeypatch.setenv("LENET_RUNS_DIR", str(tmp_path / "no-runs"))
    server = Server(None)
    try:
        assert any("built-in" in line for line in server.lines)
        picture = next(iter(drawn_digits(tmp_path / "pictures")))
        (answer,) = httpx.post(server.url + "predict", files={"file": picture.read_bytes()}, timeout=30).json()
        assert answer["index"] == 4 and answer["model"] == "mnist.tflite"  # closed-4
    finally:
        server.stop()


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_evaluate_reproduces_the_card_on_the_real_test_split(name):
    card = builtin_model(name).card()
    result = lenet("evaluate", "--model", name, "--data-dir", str(REAL_DATA), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["count"] == card["test"]["count"]
    assert report["accuracy"] == card["test"]["accuracy"]


@pytest.mark.realdata
@requires_real_data
@pytest.mark.parametrize("name", BUILTIN_NAMES)
def test_the_shipped_file_reads_its_slice_of_test_images_as_the_card_says(name):
    from lenet_cli.data.loader import load_split
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import ModelRef

    model = builtin_model(name)
    card = model.card()
    test, _ = load_split(name, "test", REAL_DATA)
    count = card["slice"]["first_test_images"]
    answers = open_model(ModelRef(model.model_path, None)).predict(test.images[:count]).argmax(1)
    assert float(np.mean(answers == test.labels[:count].astype(int))) == card["slice"]["accuracy"]


def test_lenet_runs_lists_the_built_ins_apart_from_runs(tmp_path):
    table = lenet("runs", "--format", "table", "--runs-dir", str(tmp_path / "runs"))
    assert table.returncode == 0, table.stderr
    assert "built-in models" in table.stdout and all(f"│ {name} " in table.stdout for name in BUILTIN_NAMES)
    as_json = lenet("runs", "--format", "json", "--runs-dir", str(tmp_path / "runs"))
    assert json.loads(as_json.stdout) == []  # scripts get runs only
