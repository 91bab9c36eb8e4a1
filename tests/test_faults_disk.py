"""Disk full while writing: a real file-size limit (RLIMIT_FSIZE) hits each file lenet writes.

``tests/helpers/fault_child.py`` runs the real CLI and sets the limit when the chosen
file is opened, so the kernel refuses that write with ``EFBIG``, the errno a
full disk's ``ENOSPC`` shares every code path with. Each case checks the exit code, a single
``Error:`` line naming the file and the cause, no traceback, no temporary file
and no partial file under a final name, and, for training, that ``--resume``
afterwards ends with the very weights of an uninterrupted run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers.fault_helpers import (
    assert_same_weights,
    error_line,
    leftovers,
    lenet_env,
    run_lenet,
)
from tests.helpers.idx_factory import write_dataset

pytestmark = pytest.mark.slow

RECIPE = [
    "--epochs",
    "2",
    "--batch-size",
    "50",
    "--validation-size",
    "50",
    "--dense-units",
    "16",
    "--seed",
    "3",
    "--deterministic",
    "--no-tensorboard",
    "--quiet",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("disk-data")
    write_dataset(root / "mnist", n_train=350, n_test=50, seed=8)
    return root


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("disk-baseline")
    done = run_lenet(["train", "--data-dir", str(data_dir), "--output", str(tmp / "run"), *RECIPE], lenet_env(tmp))
    assert done.returncode == 0, done.stderr
    return tmp / "run"


# (the file whose write fails, the glob of its temporary name, which write of it fails, epochs the checkpoint keeps)
CASES = [
    ("checkpoint.npz", ".checkpoint.*.tmp.npz", 3, 1),  # 1: at the start, 2: after epoch 1, 3: after epoch 2
    ("history.json", ".history.*.tmp.json", 2, 1),
    ("model.keras", ".model.*.tmp.keras", 1, 2),
    ("metrics.json", ".metrics.*.tmp.json", 1, 2),
]


@pytest.mark.parametrize("name, pattern, nth, kept_epochs", CASES, ids=[c[0] for c in CASES])
def test_disk_full_while_training_then_resume(data_dir, uninterrupted, tmp_path, name, pattern, nth, kept_epochs):
    env = lenet_env(tmp_path)
    run_dir = tmp_path / "run"
    failed = run_lenet(
        ["train", "--data-dir", str(data_dir), "--output", str(run_dir), *RECIPE], env, fault=f"{pattern}:{nth}:0"
    )
    assert failed.returncode == 1, failed.stderr
    line = error_line(failed.stderr)
    assert f"cannot write '{run_dir / name}': File too large (EFBIG)" in line
    assert f"lenet train --resume {run_dir}" in line
    assert not leftovers(run_dir), leftovers(run_dir)
    state = json.loads(np.load(run_dir / "checkpoint.npz")["state"].tobytes())
    assert state["completed_epochs"] == kept_epochs  # the previous checkpoint is whole
    assert not (run_dir / "metrics.json").exists() and not (tmp_path / "runs" / "LATEST").exists()
    if name != "metrics.json":
        assert not (run_dir / "model.keras").exists()
    assert not (run_dir / "RUNNING").exists()

    resumed = run_lenet(
        [
            "train",
            "--resume",
            str(run_dir),
            "--data-dir",
            str(data_dir),
            "--quiet",
            "--no-tensorboard",
            "--deterministic",
        ],
        env,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert [h["epoch"] for h in json.loads((run_dir / "history.json").read_text())] == [1, 2]
    assert json.loads((run_dir / "metrics.json").read_text())["test_count"] == 50
    assert_same_weights(run_dir / "model.keras", uninterrupted / "model.keras")
    assert not leftovers(run_dir)


def test_disk_full_while_exporting(uninterrupted, tmp_path):
    env = lenet_env(tmp_path)
    target = tmp_path / "dist" / "model.keras"
    target.parent.mkdir()
    failed = run_lenet(
        ["export", str(uninterrupted), "--output", str(target), "--no-verify"], env, fault=".model.*.tmp.keras:1:0"
    )
    assert failed.returncode == 1, failed.stderr
    assert f"cannot write '{target}': File too large (EFBIG)" in error_line(failed.stderr)
    assert list(target.parent.iterdir()) == []  # neither the export, its sidecar, nor a temporary file

    again = run_lenet(["export", str(uninterrupted), "--output", str(target), "--no-verify", "--format", "json"], env)
    assert again.returncode == 0, again.stderr
    assert target.is_file() and not leftovers(target.parent)
