"""Integration on the real MNIST files: a short training run, evaluate, and predict on realistic renderings.

Skipped (with the reason) when the real data is absent: set LENET_DATA_DIR or
place the files in ../shared/datasets.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from tests.helpers.real_data import REAL_DATA, requires_real_data

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(REAL_DATA),
            "--epochs",
            "2",
            "--output",
            str(out),
            "--quiet",
            "--format",
            "json",
        ],
        env={"LENET_VERIFY_CHECKSUMS": "1"},
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def test_two_epochs_on_real_mnist_score_sensibly(real_run):
    _, metrics = real_run
    assert metrics["test_count"] == 10_000
    assert metrics["test_accuracy"] >= 0.98


def test_evaluate_reproduces_the_recorded_test_accuracy(real_run):
    run, metrics = real_run
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--data-dir", str(REAL_DATA), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["accuracy"] == metrics["test_accuracy"]


def test_predict_reads_realistic_renderings_of_test_digits(real_run, tmp_path):
    from lenet_cli.data.loader import load_split
    from tests.helpers.renderings import FORMATS, write_renderings

    run, _ = real_run
    split, _ = load_split("mnist", "test", REAL_DATA)
    images, labels = split.images[-400:], split.labels[-400:]
    paths = write_renderings(images, tmp_path / "pics", seed=7, formats=FORMATS)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    result = CliRunner().invoke(
        cli, ["predict", "--model", str(run), "--files-from", str(listing), "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.stderr
    predicted = np.array([json.loads(line)["index"] for line in result.stdout.splitlines()])
    assert float((predicted == labels).mean()) >= 0.97


def test_tensorboard_logs_of_a_real_run_hold_every_tag(real_run):
    from tensorboard.backend.event_processing import event_accumulator
    from tensorboard.util import tensor_util

    run, _ = real_run
    history = json.loads((run / "history.json").read_text())
    for side in ("train", "validation"):
        acc = event_accumulator.EventAccumulator(str(run / "logs" / side), size_guidance={event_accumulator.TENSORS: 0})
        acc.Reload()
        tags = set(acc.Tags()["tensors"])
        for name in ("cross_entropy", "l1", "l2", "objective", "accuracy", "learning_rate", "l1_conv_1", "l2_dot_1"):
            assert f"epoch_{name}" in tags, (side, name)
        logged = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in acc.Tensors("epoch_accuracy")}
        key = "accuracy" if side == "train" else "val_accuracy"
        assert [round(logged[h["epoch"]], 5) for h in history] == [
            round(h[key], 5) for h in history
        ]  # step = the epoch number, from 1
    matrix = np.array(json.loads((run / "confusion_matrix.json").read_text())["matrix"])
    assert matrix.sum() == 5000 and np.trace(matrix) / matrix.sum() == pytest.approx(
        history[-1]["val_accuracy"], abs=1e-12
    )
