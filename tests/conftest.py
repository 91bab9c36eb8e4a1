"""Shared fixtures: an isolated environment and tiny synthetic datasets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lenet_cli.core.tensorflow_env import prepare_tensorflow_env
from tests.helpers.idx_factory import write_dataset

prepare_tensorflow_env()  # the same TensorFlow settings as the command line, before any test imports it


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the user's cache, runs folder or real data unless it asks to.

    The environment is restored after each test, so a test that sets a
    variable cannot leak it into later tests (or the subprocesses they start).
    """
    saved = dict(os.environ)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("LENET_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("LENET_DATA_DIR", raising=False)
    monkeypatch.delenv("LENET_DEBUG", raising=False)
    monkeypatch.delenv("LENET_TF_LOG", raising=False)
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "0")
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> Path:
    """A data folder with synthetic mnist/ and fashion/ (600 train, 200 test images each)."""
    root = tmp_path_factory.mktemp("data")
    write_dataset(root / "mnist", seed=0)
    write_dataset(root / "fashion", seed=10)
    return root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, synthetic_data_dir) -> Path:
    """One tiny trained run (2 epochs on synthetic mnist, checkpoint kept), shared by the tests that need a model."""
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    runs = tmp_path_factory.mktemp("runs")
    out = runs / "tiny"
    env = {"LENET_VERIFY_CHECKSUMS": "0", "XDG_CACHE_HOME": str(runs / "cache")}
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--epochs",
            "2",
            "--validation-size",
            "100",
            "--batch-size",
            "50",
            "--learning-rate",
            "0.002",
            "--dense-units",
            "64",
            "--output",
            str(out),
            "--runs-dir",
            str(runs),
            "--quiet",
            "--keep-checkpoint",
        ],
        env=env,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out
