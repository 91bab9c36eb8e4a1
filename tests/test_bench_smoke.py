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
        [sys.executable, "-m", "bench.run", "--smoke", "--only", "train,evaluate,predict,coldstart,efficiency", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for fragment in ("training images/s", "plain model.fit, same objective, TensorFlow defaults", "lenet's TensorFlow settings (oneDNN on)", "model.predict on numpy, TensorFlow defaults", "lenet predict on 200", "cold start: lenet --help", "matmul peak"):
        assert fragment in text, fragment
