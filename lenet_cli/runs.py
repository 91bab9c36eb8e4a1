"""Run directories: where ``lenet train`` writes, and how later commands find a model.

A run directory holds ``model.keras``, ``config.json``, ``history.json``,
``metrics.json`` and ``logs/`` (TensorBoard). Runs live under the runs root:
``--runs-dir``, else ``$LENET_RUNS_DIR``, else ``./runs``. After a successful
run, ``<runs root>/LATEST`` names it; commands given no model use that run,
or else the newest run directory that holds a ``model.keras``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.atomic import write_text_atomic
from lenet_cli.errors import LenetError

RUNS_DIR_ENV = "LENET_RUNS_DIR"
LATEST_FILE = "LATEST"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
CHECKPOINT_FILE = "checkpoint.npz"


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds run directories."""
    return Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs")


def check_output_available(output: str | os.PathLike | None) -> None:
    """Fail early (before any data is loaded) when ``--output`` names a non-empty directory or a file."""
    if output is None:
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise LenetError(f"output {str(path)!r} is a file; --output must name a directory")
    if path.is_dir() and any(path.iterdir()):
        raise LenetError(f"output directory {str(path)!r} already exists and is not empty; choose another --output")


def new_run_dir(dataset: str, runs_dir: str | os.PathLike | None = None, output: str | os.PathLike | None = None) -> Path:
    """Create and return a fresh run directory: ``output`` if given, else ``<root>/<dataset>-<timestamp>``."""
    if output is not None:
        check_output_available(output)
        path = Path(output)
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in [""] + [f"-{i}" for i in range(1, 1000)]:
        path = root / f"{dataset}-{stamp}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise LenetError(f"cannot create a run directory under {str(root)!r}")


def mark_latest(run_dir: Path, runs_dir: str | os.PathLike | None = None) -> None:
    """Record ``run_dir`` as the latest run of the runs root (by name, or by absolute path when it lives elsewhere)."""
    root = runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    inside = run_dir.resolve().parent == root.resolve()
    write_text_atomic(root / LATEST_FILE, (run_dir.name if inside else str(run_dir.resolve())) + "\n")


def latest_run(runs_dir: str | os.PathLike | None = None) -> Path:
    """The run later commands use when given no model.

    Raises:
        LenetError: there is no run yet.
    """
    root = runs_root(runs_dir)
    marker = root / LATEST_FILE
    if marker.is_file():
        candidate = root / marker.read_text(encoding="utf-8").strip()
        if (candidate / MODEL_FILE).is_file():
            return candidate
    runs = [p for p in root.glob("*/") if (p / MODEL_FILE).is_file()] if root.is_dir() else []
    if not runs:
        raise LenetError(f"no trained model found under {str(root)!r}; run `lenet train` first or pass a model path")
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model argument: the model file and, when it came from a run, its run directory."""

    model_path: Path
    run_dir: Path | None

    def run_config(self) -> dict | None:
        """The run's ``config.json`` as a dict, or None when the model did not come from a run."""
        folder = self.run_dir
        if folder is None:
            sidecar = self.model_path.parent / CONFIG_FILE
            folder = self.model_path.parent if sidecar.is_file() else None
        if folder is None:
            return None
        try:
            return json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise LenetError(f"{str(folder / CONFIG_FILE)!r} is unreadable or not valid JSON") from None


def resolve_model(model: str | os.PathLike | None, runs_dir: str | os.PathLike | None = None) -> ModelRef:
    """Turn a run directory, a model file, or nothing (the latest run) into a :class:`ModelRef`.

    Raises:
        LenetError: the path is neither a model file nor a run directory.
    """
    if model is None:
        run = latest_run(runs_dir)
        return ModelRef(run / MODEL_FILE, run)
    path = Path(model)
    if path.is_dir():
        if (path / MODEL_FILE).is_file():
            return ModelRef(path / MODEL_FILE, path)
        if (path / "saved_model.pb").is_file():
            return ModelRef(path, None)
        raise LenetError(f"{str(path)!r} is not a run directory: it holds no {MODEL_FILE}")
    if not path.exists():
        raise LenetError(f"model {str(path)!r} does not exist; pass a run directory or a model file")
    return ModelRef(path, None)
