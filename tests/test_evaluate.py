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
from lenet_cli.core.errors import EXIT_BELOW_BAR


def _evaluate(*args):
    return CliRunner().invoke(cli, ["evaluate", *map(str, args)])


def _read_idx(path, offset):
    import gzip

    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


@pytest.fixture(scope="module")
def reference(trained_run, synthetic_data_dir):
    """Probabilities and logits from a plain Keras ``predict``, and labels read straight from the IDX bytes."""
    import keras

    from lenet_cli.model.network import load_model_file

    images = _read_idx(synthetic_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _read_idx(synthetic_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz", 8).astype(int)
    model = load_model_file(trained_run / "model.keras")
    x = images[..., None].astype("float32") / 255.0
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float64)
    logits_model = keras.Model(model.inputs, model.get_layer("logits_layer").output)
    logits = np.asarray(logits_model.predict(x, verbose=0), dtype=np.float64)
    return probs, labels, logits


def test_json_report_matches_independent_numpy(trained_run, synthetic_data_dir, reference):
    probs, labels, logits = reference
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--top-k", "2")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dataset"] == "mnist" and report["split"] == "test" and report["count"] == len(labels)
    predicted = probs.argmax(1)
    assert report["accuracy"] == pytest.approx(np.mean(predicted == labels), abs=1e-12)
    top2 = np.argsort(-probs, axis=1)[:, :2]
    assert report["top_k_accuracy"] == pytest.approx(
        np.mean([labels[i] in top2[i] for i in range(len(labels))]), abs=1e-12
    )
    cross_entropy = np.mean(np.log(np.exp(logits).sum(1)) - logits[np.arange(len(labels)), labels])
    assert report["cross_entropy"] == pytest.approx(cross_entropy, rel=1e-5)
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
        assert (
            row["precision"] == pytest.approx(precision)
            and row["recall"] == pytest.approx(recall)
            and row["f1"] == pytest.approx(f1)
        )
    assert report["objective"] == pytest.approx(report["cross_entropy"] + report["l1"] + report["l2"])


def test_min_confidence_flag_rate_matches_numpy(trained_run, synthetic_data_dir, reference):
    probs, labels, _ = reference
    threshold = float(np.median(probs.max(1)))  # about half the images fall under it
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--min-confidence", threshold)
    assert result.exit_code == 0, result.output
    unsure = json.loads(result.stdout)["low_confidence"]
    flagged = probs.max(1) < threshold
    wrong = probs.argmax(1) != labels
    assert unsure["threshold"] == pytest.approx(threshold)
    assert (unsure["flagged"], unsure["mistakes"], unsure["mistakes_flagged"]) == (
        int(flagged.sum()),
        int(wrong.sum()),
        int((flagged & wrong).sum()),
    )
    assert unsure["accuracy_unflagged"] == pytest.approx(1 - wrong[~flagged].mean())
    table = _evaluate(
        trained_run, "--data-dir", synthetic_data_dir, "--format", "table", "--min-confidence", threshold
    ).stdout
    assert "flagged below" in table and f"({int(flagged.sum()):,})" in table
    rows = {
        r["label"]: r
        for r in csv.DictReader(
            io.StringIO(
                _evaluate(
                    trained_run, "--data-dir", synthetic_data_dir, "--format", "csv", "--min-confidence", threshold
                ).stdout
            )
        )
    }
    assert float(rows["low_confidence_share"]["value"]) == pytest.approx(flagged.mean(), abs=1e-6)


def test_reproduces_the_accuracy_train_recorded(trained_run, synthetic_data_dir):
    metrics = json.loads((trained_run / "metrics.json").read_text())
    report = json.loads(_evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json").stdout)
    assert report["accuracy"] == metrics["test_accuracy"]


def test_csv_has_a_row_per_class_and_the_averages(trained_run, synthetic_data_dir):
    result = _evaluate(
        trained_run / "model.keras", "--dataset", "mnist", "--data-dir", synthetic_data_dir, "--format", "csv"
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    names = [r["label"] for r in rows]
    assert names[:19] == [str(d) for d in range(10)] + [
        "macro avg",
        "weighted avg",
        "accuracy",
        "top_3_accuracy",
        "cross_entropy",
        "objective",
        "expected_calibration_error",
        "min_confidence",
        "low_confidence_share",
    ]
    assert set(names[19:]) <= {"mistakes_flagged_share", "accuracy_unflagged"}  # each only where its group is not empty
    assert sum(int(r["support"]) for r in rows[:10]) == int(rows[11]["support"]) == int(rows[-1]["support"])
    report = json.loads(
        _evaluate(
            trained_run / "model.keras", "--dataset", "mnist", "--data-dir", synthetic_data_dir, "--format", "json"
        ).stdout
    )
    assert float(rows[12]["value"]) == pytest.approx(report["accuracy"], abs=1e-6)
    assert float(rows[14]["value"]) == pytest.approx(report["cross_entropy"], abs=1e-6)
    assert float(rows[15]["value"]) == pytest.approx(report["objective"], abs=1e-6)


def test_table_goes_to_stdout(trained_run, synthetic_data_dir):
    result = _evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "table")
    assert result.exit_code == 0
    assert "confusion matrix" in result.stdout and "precision" in result.stdout and "accuracy" in result.stdout


def test_latest_run_is_used_without_argument(trained_run, synthetic_data_dir, monkeypatch):
    monkeypatch.setenv("LENET_RUNS_DIR", str(trained_run.parent))
    result = _evaluate("--data-dir", synthetic_data_dir, "--format", "json", "--split", "validation")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"].endswith("tiny/model.tflite") and report["split"] == "validation" and report["count"] == 100


def test_min_accuracy_gate(trained_run, synthetic_data_dir):
    accuracy = json.loads(_evaluate(trained_run, "--data-dir", synthetic_data_dir, "--format", "json").stdout)[
        "accuracy"
    ]
    assert 0.0 < accuracy < 0.99  # the tiny model is far from perfect, so a gate above it must fail
    at_the_bar = _evaluate(
        trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--min-accuracy", repr(accuracy)
    )
    assert at_the_bar.exit_code == 0, at_the_bar.output
    failed = _evaluate(
        trained_run, "--data-dir", synthetic_data_dir, "--format", "json", "--min-accuracy", f"{accuracy + 0.01:.4f}"
    )
    assert failed.exit_code == EXIT_BELOW_BAR and "below --min-accuracy" in failed.stderr
    assert json.loads(failed.stdout)["accuracy"] == accuracy  # the report is still printed


def test_images_are_written(trained_run, synthetic_data_dir, tmp_path):
    from lenet_cli.viz.confusion import CONFUSION_PNG_SIZE

    cm, gallery = tmp_path / "cm.png", tmp_path / "mistakes.png"
    result = _evaluate(
        trained_run,
        "--data-dir",
        synthetic_data_dir,
        "--format",
        "json",
        "--split",
        "train",
        "--confusion-png",
        cm,
        "--misclassified",
        gallery,
        "--misclassified-count",
        "4",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(cm).size == CONFUSION_PNG_SIZE
    report = json.loads(result.stdout)
    assert report["accuracy"] < 0.99  # the tiny model makes mistakes, so the gallery must exist
    assert Image.open(gallery).format == "PNG"
    mistakes = report["misclassified"]
    assert len(mistakes) == 4 and [m["confidence"] for m in mistakes] == sorted(
        (m["confidence"] for m in mistakes), reverse=True
    )
    labels = _read_idx(synthetic_data_dir / "mnist" / "train-labels-idx1-ubyte.gz", 8)
    held_out = json.loads((trained_run / "config.json").read_text())["validation_size"]
    for mistake in mistakes:  # the train split starts after the validation images of the training file
        assert mistake["file_index"] == mistake["split_index"] + held_out
        assert mistake["label"] == str(labels[mistake["file_index"]]) and mistake["predicted"] != mistake["label"]


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
    assert result.exit_code == 1 and "pass dataset" in result.stderr


def test_report_table_keeps_whole_class_names_and_shows_ece_as_a_percentage(capsys):
    from lenet_cli.cli.evaluate import print_report_table

    names = ["T-shirt/top", "Pullover", "Ankle boot"]
    per_class = [
        {"label": n, "index": i, "precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1} for i, n in enumerate(names)
    ]
    avg = {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    report = {
        "dataset": "fashion",
        "split": "test",
        "count": 3,
        "model": "m.keras",
        "format": "keras",
        "accuracy": 1.0,
        "top_k": 3,
        "top_k_accuracy": 1.0,
        "expected_calibration_error": 0.0057,
        "cross_entropy": 0.1,
        "objective": None,
        "per_class": per_class,
        "macro_avg": avg,
        "weighted_avg": avg,
        "confusion_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
        "class_names": names,
        "low_confidence": {
            "threshold": 0.5,
            "flagged": 0,
            "flagged_share": 0.0,
            "mistakes": 0,
            "mistakes_flagged": 0,
            "accuracy_unflagged": 1.0,
        },
    }
    print_report_table(report)
    out = capsys.readouterr().out
    assert "Pullover" in out and "Ankle boot" in out and "Pullove " not in out.replace("Pullover", "")
    assert "0.57%" in out and "0.0057" not in out
