"""Interrupted training resumes: SIGINT, SIGTERM and SIGKILL, then ``--resume``, equal an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.idx_factory import write_dataset

pytestmark = pytest.mark.slow

RECIPE = [
    "--epochs",
    "3",
    "--batch-size",
    "50",
    "--validation-size",
    "100",
    "--dense-units",
    "256",
    "--seed",
    "7",
    "--deterministic",
    "--no-tensorboard",
    "--quiet",
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume-data")
    write_dataset(root / "mnist", n_train=1600, n_test=100, seed=3)
    return root


def _env(tmp: Path) -> dict:
    return {
        **os.environ,
        "LENET_VERIFY_CHECKSUMS": "0",
        "LENET_RUNS_DIR": str(tmp / "runs"),
        "XDG_CACHE_HOME": str(tmp / "cache"),
    }


def _lenet(args, env, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "lenet_cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _final_weights(run_dir: Path) -> list[np.ndarray]:
    from lenet_cli.model.network import load_model_file

    return [
        w
        for layer in ("conv_1", "conv_2", "dot_1", "dot_2", "logits_layer")
        for w in load_model_file(run_dir / "model.keras").get_layer(layer).get_weights()
    ]


@pytest.fixture(scope="module")
def uninterrupted(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baseline")
    proc = _lenet(["train", "--data-dir", str(data_dir), "--output", str(tmp / "run"), *RECIPE], _env(tmp))
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return _final_weights(tmp / "run")


def _interrupt_after_first_epoch(proc, run_dir: Path, sig: int) -> None:
    deadline = time.time() + 180
    history = run_dir / "history.json"
    while time.time() < deadline:
        if history.is_file() and json.loads(history.read_text() or "[]"):
            proc.send_signal(sig)
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.01)
    pytest.fail("no epoch completed in time")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)])
def test_interrupt_then_resume_equals_uninterrupted(data_dir, tmp_path, uninterrupted, sig, code):
    env = _env(tmp_path)
    run_dir = tmp_path / "run"
    proc = _lenet(["train", "--data-dir", str(data_dir), "--output", str(run_dir), *RECIPE], env)
    _interrupt_after_first_epoch(proc, run_dir, sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert not (run_dir / "model.keras").exists(), "an interrupted run must not leave a final model"
    if sig != signal.SIGKILL:
        assert f"Resume with: lenet train --resume {run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoint.npz").is_file()

    resumed = _lenet(
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
    out, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for ours, theirs in zip(_final_weights(run_dir), uninterrupted):
        np.testing.assert_array_equal(ours, theirs)


def test_resume_refuses_recipe_options(tmp_path):
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run"), "--learning-rate", "0.1"])
    assert result.exit_code == 2 and "'--learning-rate': a resumed run keeps the recipe it saved" in result.stderr
    assert "only --epochs may change" in result.stderr


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    (tmp_path / "run").mkdir()
    result = CliRunner().invoke(cli, ["train", "--resume", str(tmp_path / "run")])
    assert result.exit_code == 1 and "is not a resumable run" in result.stderr
