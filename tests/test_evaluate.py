"""``lenet evaluate``: every number checked against an independent numpy computation."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli


def _evaluate(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


@pytest.fixture(scope="module")
def reference(trained_run, synthetic_data_dir):
    """Probabilities from a plain Keras ``predict`` and labels read straight from the IDX bytes."""
    import gzip

    from lenet_cli.model import load_model_file

    with gzip.open(synthetic_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(synthetic_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(int)
    model = load_model_file(trained_run / "model.keras")
    probs = np.asarray(model.predict(images[..., None].astype("float32") / 255.0, verbose=0), dtype=np.float64)
    return probs, labels


def test_json_report_matches_independent_numpy(trained_run, synthetic_data_dir, reference):
    probs, labels = reference
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist" and report["split"] == "test" and report["count"] == len(labels)
    predicted = probs.argmax(1)
    assert report["accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-12)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    assert report["top_k_accuracy"] == pytest.approx(np.mean([labels[i] in top2[i] for i in range(len(labels))]), abs=1e-12)
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    loss = np.mean(-np.log(clipped[np.arange(len(labels)), labels] / clipped.sum(1)))
    assert report["loss"] == pytest.approx(loss, rel=1e-4)
    matrix = np.zeros((10, 10), int)
    for t, p in zip(labels, predicted):
        matrix[t, p] += 1
    assert report["confusion_matrix"] == matrix.tolist()
    for row in report["per_class"]:
        c = row["index"]
        tp = matrix[c, c]
        precision = tp / matrix[:, c].sum() if matrix[:, c].sum() else 0.0
        recall = tp / matrix[c].sum() if matrix[c].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert (row["label"], row["support"]) == (str(c), int(matrix[c].sum()))
        assert row["precision"] == pytest.approx(precision) and row["recall"] == pytest.approx(recall) and row["f1"] == pytest.approx(f1)
    assert report["objective"] == pytest.approx(report["loss"] + report["l1"] + report["l2"])


def test_reproduces_the_accuracy_train_recorded(trained_run, synthetic_data_dir):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    report = json.loads(_evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json").stdout)
    assert report["accuracy"] == metrics["test_accuracy"]


def test_csv_has_a_row_per_class_and_the_averages(trained_run, synthetic_data_dir):
    result = _evaluate(trained_run / "model.keras", "--dataset", "mnist", "--data-dir", synthetic_data_dir, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["label"] for r in rows] == [str(d) for d in range(10)] + ["macro avg", "weighted avg"]
    assert sum(int(r["support"]) for r in rows[:10]) == int(rows[-1]["support"])


def test_table_goes_to_stdout(trained_run, synthetic_data_dir):
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "table")
    assert result.exit_code == 0
    assert "confusion matrix" in result.stdout and "precision" in result.stdout and "accuracy" in result.stdout


def test_latest_run_is_used_without_argument(trained_run, synthetic_data_dir, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(trained_run.parent))
    result = _evaluate("--data-dir", synthetic_data_dir, "--format", "json", "--split", "validation")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"].endswith("tiny/model.keras") and report["split"] == "validation" and report["count"] == 100


def test_min_accuracy_gate(trained_run, synthetic_data_dir):
    passed = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--min-accuracy", "0.0")
    assert passed.exit_code == 0
    failed = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--min-accuracy", "1.0")
    accuracy = json.loads(passed.stdout)["accuracy"]
    if accuracy < 1.0:
        assert failed.exit_code == 1 and "below --min-accuracy" in failed.stderr
        assert json.loads(failed.stdout)["accuracy"] == accuracy  # the report is still printed


def test_images_are_written(trained_run, synthetic_data_dir, tmp_path):
    from lenet_cli.plots import CONFUSION_PNG_SIZE

    cm, gallery = tmp_path / "cm.png", tmp_path / "mistakes.png"
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--split", "train",
                       "--confusion-png", cm, "--misclassified", gallery, "--misclassified-count", "4")
    assert result.exit_code == 0, result.output
    assert Image.open(cm).size == CONFUSION_PNG_SIZE
    if json.loads(result.stdout)["accuracy"] < 1.0:
        assert Image.open(gallery).format == "PNG"


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (["--split", "bogus"], 2, "Invalid value for '--split'"),
        (["--top-k", "0"], 2, "Invalid value for '--top-k'"),
        (["--min-accuracy", "1.5"], 2, "Invalid value for '--min-accuracy'"),
        (["/nonexistent/model.keras"], 2, "does not exist"),
    ],
)
def test_usage_errors_exit_2(args, code, fragment):
    result = _evaluate(*args)
    assert result.exit_code == code and fragment in result.stderr


def test_no_runs_yet_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(tmp_path / "empty"))
    result = _evaluate("--format", "json")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no trained model found") and len(result.stderr.strip().splitlines()) == 1


def test_model_file_without_config_needs_dataset(trained_run, tmp_path, synthetic_data_dir):
    import shutil

    lone = tmp_path / "lone.keras"
    shutil.copy(trained_run / "model.keras", lone)
    result = _evaluate(lone, "--data-dir", synthetic_data_dir, "--format", "json")
    assert result.exit_code == 1 and "pass --dataset" in result.stderr
