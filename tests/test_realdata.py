"""Integration on the real MNIST files: a short training run, evaluate, and predict on realistic renderings.

Skipped (with the reason) when the real data is absent: set LENET_DATA_DIR or
place the files in ../shared/datasets.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REAL_DATA, requires_real_data
from lenet_cli.cli import cli

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("real") / "run"
    result = CliRunner().invoke(
        cli, ["train", "--dataset", "mnist", "--data-dir", str(REAL_DATA), "--epochs", "2", "--output", str(out), "--quiet", "--format", "json"],
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
    from renderings import FORMATS, write_renderings

    from lenet_cli.data import load_split

    run, _ = real_run
    split, _ = load_split("mnist", "test", REAL_DATA)
    images, labels = split.images[-400:], split.labels[-400:]
    paths = write_renderings(images, tmp_path / "pics", seed=7, formats=FORMATS)
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(str(p) for p in paths))
    result = CliRunner().invoke(cli, ["predict", "--model", str(run), "--files-from", str(listing), "--format", "jsonl"])
    assert result.exit_code == 0, result.stderr
    predicted = np.array([json.loads(line)["index"] for line in result.stdout.splitlines()])
    assert float((predicted == labels).mean()) >= 0.97
