"""TensorBoard logs, read back with TensorBoard's own reader (never trusting the writer)."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
from tensorboard.util import tensor_util  # noqa: E402

SCALARS = ["cross_entropy", "l1", "l2", "objective", "accuracy", "learning_rate"]
LAYERS = ["conv_1", "conv_2", "dot_1", "dot_2", "logits_layer"]


def _load(path):
    acc = event_accumulator.EventAccumulator(
        str(path), size_guidance={event_accumulator.TENSORS: 0, event_accumulator.IMAGES: 0}
    )
    acc.Reload()
    return acc


def _scalar_series(acc, tag):
    return {event.step: float(tensor_util.make_ndarray(event.tensor_proto)) for event in acc.Tensors(tag)}


@pytest.fixture(scope="module")
def logs(trained_run):
    return {side: _load(trained_run / "logs" / side) for side in ("train", "validation")}


def test_every_scalar_exists_for_train_and_validation_each_epoch(logs, trained_run):
    epochs = len(json.loads((trained_run / "history.json").read_text()))
    for side, acc in logs.items():
        tags = set(acc.Tags()["tensors"])
        for name in SCALARS + [f"{kind}_{layer}" for kind in ("l1", "l2") for layer in LAYERS]:
            tag = f"epoch_{name}"
            assert tag in tags, f"{side} lacks {tag}"
            assert sorted(_scalar_series(acc, tag)) == list(range(1, epochs + 1)), (
                f"{side} {tag}"
            )  # as the console counts


def test_objective_is_cost_plus_l1_plus_l2(logs):
    for side, acc in logs.items():
        cost, l1, l2, objective = (
            _scalar_series(acc, f"epoch_{n}") for n in ("cross_entropy", "l1", "l2", "objective")
        )
        for step in objective:
            assert objective[step] == pytest.approx(cost[step] + l1[step] + l2[step], rel=1e-6, abs=1e-7), side
        layer_l1 = sum(_scalar_series(acc, f"epoch_l1_{layer}")[1] for layer in LAYERS)
        assert layer_l1 == pytest.approx(l1[1], rel=1e-5)


def test_scalars_agree_with_history(logs, trained_run):
    history = json.loads((trained_run / "history.json").read_text())
    train_acc = _scalar_series(logs["train"], "epoch_accuracy")
    val_acc = _scalar_series(logs["validation"], "epoch_accuracy")
    for row in history:
        assert train_acc[row["epoch"]] == pytest.approx(row["accuracy"], rel=1e-6)
        assert val_acc[row["epoch"]] == pytest.approx(row["val_accuracy"], rel=1e-6)


def _images(acc, tag):
    out = []
    for event in acc.Tensors(tag):
        width, height, png = tensor_util.make_ndarray(event.tensor_proto)[:3]
        out.append((event.step, int(width), int(height), png))
    return out


def test_confusion_matrix_image_each_epoch_is_a_png_of_the_expected_size(logs, trained_run):
    from lenet_cli.viz.confusion import CONFUSION_PNG_SIZE

    epochs = len(json.loads((trained_run / "history.json").read_text()))
    images = _images(logs["validation"], "confusion_matrix")
    assert [step for step, *_ in images] == list(range(1, epochs + 1))
    for _, width, height, png in images:
        decoded = Image.open(io.BytesIO(png))
        assert decoded.format == "PNG" and decoded.size == CONFUSION_PNG_SIZE == (width, height)


def test_input_grid_once_and_filters_each_epoch(logs, trained_run):
    epochs = len(json.loads((trained_run / "history.json").read_text()))
    assert [step for step, *_ in _images(logs["train"], "inputs")] == [0]
    filters = _images(logs["train"], "conv_1_filters")
    assert [step for step, *_ in filters] == list(range(1, epochs + 1))
    Image.open(io.BytesIO(filters[-1][3])).verify()


def test_confusion_json_matches_validation_accuracy(logs, trained_run):
    matrix_doc = json.loads((trained_run / "confusion_matrix.json").read_text())
    matrix = np.array(matrix_doc["matrix"])
    config = json.loads((trained_run / "config.json").read_text())
    assert matrix.sum() == config["validation_size"] == matrix_doc["count"]
    last_val_acc = json.loads((trained_run / "history.json").read_text())[-1]["val_accuracy"]
    assert np.trace(matrix) / matrix.sum() == pytest.approx(last_val_acc, abs=1e-12)
    logged = _scalar_series(logs["validation"], "epoch_accuracy")
    assert logged[max(logged)] == pytest.approx(np.trace(matrix) / matrix.sum(), rel=1e-6)


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_a_resumed_run_carries_on_the_console_numbering_and_logs_its_inputs_once(synthetic_data_dir, tmp_path):
    """Epochs 1-2, then --resume for epoch 3: TensorBoard steps 1, 2, 3 as the console says "epoch 1/3" to "3/3"; inputs once, at 0."""
    from click.testing import CliRunner

    from lenet_cli.cli.main import cli

    run = tmp_path / "run"
    tiny = ["--validation-size", "100", "--batch-size", "50", "--dense-units", "16", "--quiet"]
    first = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--epochs",
            "2",
            "--keep-checkpoint",
            *tiny,
        ],
    )
    assert first.exit_code == 0, first.output
    (run / "model.keras").unlink()
    (run / "metrics.json").unlink()  # a run stopped after epoch 2 of 3
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(run), "--epochs", "3", "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1, 2, 3]

    train, validation = _load(run / "logs" / "train"), _load(run / "logs" / "validation")
    assert [step for step, *_ in _images(train, "inputs")] == [0]
    assert [step for step, *_ in _images(train, "conv_1_filters")] == [1, 2, 3]
    assert [step for step, *_ in _images(validation, "confusion_matrix")] == [1, 2, 3]
    for acc in (train, validation):
        assert [event.step for event in acc.Tensors("epoch_accuracy")] == [1, 2, 3]
