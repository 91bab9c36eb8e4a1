"""The names of what a run directory holds, and where run directories live: one place for every module that reads them.

Creating a run (:mod:`lenet_cli.store.runs`), reading where it stands
(:mod:`lenet_cli.store.run_status`) and finding a model in it
(:mod:`lenet_cli.store.model_lookup`) all name the same files; they take the
names from here, so none of them needs the others to agree on a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lenet_cli.core.env import RUNS_DIR_ENV

LATEST_FILE = "LATEST"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
CHECKPOINT_FILE = "checkpoint.npz"
RUNNING_FILE = "RUNNING"
TUNE_DIR = "tune"  # <runs root>/tune/: lenet tune's study databases, results, and <study>/trial-<n>/ run directories
FAST_MODEL_FILE = "model.tflite"  # the TensorFlow-free copy (LiteRT) that predict, evaluate and serve answer with
FAST_MODEL_KEY = "fast_model"  # metrics.json's record of it: file, ok, parity figures


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds run directories."""
    return Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs")


def read_json_or_none(path: Path):
    """A small JSON file's content, or None when it is absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
