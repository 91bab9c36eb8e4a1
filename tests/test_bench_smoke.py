"""The benchmark suite runs end to end on tiny synthetic data (a smoke test: timings are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_smoke(tmp_path):
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--smoke",
            "--only",
            "train,evaluate,predict,coldstart,fast,efficiency",
            "--out",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for fragment in (
        "training images/s",
        "plain model.fit, same objective, TensorFlow defaults",
        "lenet's TensorFlow settings (oneDNN on)",
        "model.fit by hand, TensorFlow's LRN op",
        "at the default batch size",
        "model.predict on numpy, TensorFlow defaults",
        "lenet predict on 200",
        "cold start: lenet --help",
        "matmul peak",
        "lenet predict one.png against the latest run",
        "lenet predict calls in a bash loop",
        "/readyz",
        "lenet evaluate RUN",
    ):
        assert fragment in text, fragment


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_time_to_accuracy_stops_at_the_first_probe_that_reaches_the_target(synthetic_data_dir):
    """The bench stops a run once the target is reached, so no recipe pays for the epochs after it."""
    from bench.time_to_accuracy import seconds_to
    from lenet_cli.data.loader import load_dataset

    data = load_dataset("mnist", synthetic_data_dir, validation_size=100)
    reached = seconds_to(0.0, {"epochs": 2, "batch_size": 16}, data)
    assert reached["seconds"] is not None and reached["seconds"] > 0
    assert len(reached["probes"]) == 1 and reached["epoch"] < 1  # stopped after a quarter epoch, not at the end of two
    missed = seconds_to(1.01, {"epochs": 1, "batch_size": 16}, data)
    assert missed["seconds"] is None and missed["epoch"] is None
    assert [row["epoch"] for row in missed["probes"]] == [0.26, 0.51, 0.77, 1.0]
