"""Run directories: where ``lenet train`` writes, and how later commands find a model.

A run directory holds ``model.keras``, ``config.json``, ``history.json``,
``metrics.json`` and ``logs/`` (TensorBoard), and ``RUNNING`` while a
process trains it. A finished run also holds ``model.tflite`` (with its
``model.tflite.lenet.json``): a TensorFlow-free copy of ``model.keras``
whose check against it ``metrics.json`` records under ``fast_model``. Runs live under the runs root:
``--runs-dir``, else ``$LENET_RUNS_DIR``, else ``./runs``. After a successful
run, ``<runs root>/LATEST`` names it; commands given no model use that run,
or else the newest run directory that holds a ``model.keras``.

This module creates run directories and records what a finished run adds to
them. It is also the one name callers import (``from lenet_cli.store import
runs``): the file names (:mod:`~lenet_cli.store.run_files`), where a run
stands (:mod:`~lenet_cli.store.run_status`) and how a model is found
(:mod:`~lenet_cli.store.model_lookup`) are reached through it too.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from lenet_cli.core.env import DATA_DIR_ENV
from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.store.atomic import write_json_atomic
from lenet_cli.store.model_lookup import ModelRef as ModelRef
from lenet_cli.store.model_lookup import NoRunsYet as NoRunsYet
from lenet_cli.store.model_lookup import check_readable_run as check_readable_run
from lenet_cli.store.model_lookup import latest_name as latest_name
from lenet_cli.store.model_lookup import latest_run as latest_run
from lenet_cli.store.model_lookup import mark_latest as mark_latest
from lenet_cli.store.model_lookup import resolve_model as resolve_model
from lenet_cli.store.run_files import CHECKPOINT_FILE as CHECKPOINT_FILE
from lenet_cli.store.run_files import CONFIG_FILE as CONFIG_FILE
from lenet_cli.store.run_files import FAST_MODEL_FILE as FAST_MODEL_FILE
from lenet_cli.store.run_files import FAST_MODEL_KEY as FAST_MODEL_KEY
from lenet_cli.store.run_files import HISTORY_FILE as HISTORY_FILE
from lenet_cli.store.run_files import LATEST_FILE as LATEST_FILE
from lenet_cli.store.run_files import LOGS_DIR as LOGS_DIR
from lenet_cli.store.run_files import METRICS_FILE as METRICS_FILE
from lenet_cli.store.run_files import MODEL_FILE as MODEL_FILE
from lenet_cli.store.run_files import RUNNING_FILE as RUNNING_FILE
from lenet_cli.store.run_files import TUNE_DIR as TUNE_DIR
from lenet_cli.store.run_files import read_json_or_none as read_json_or_none
from lenet_cli.store.run_files import runs_root as runs_root
from lenet_cli.store.run_status import RunStatus as RunStatus
from lenet_cli.store.run_status import discard_unstarted_run as discard_unstarted_run
from lenet_cli.store.run_status import run_status as run_status
from lenet_cli.store.run_status import running_marker as running_marker


def check_output_available(output: str | os.PathLike | None) -> None:
    """Fail early (before any data is loaded) when ``output`` names a non-empty directory or a file.

    Raises:
        BadValue: ``output`` is a file.
        RunError: ``output`` is a directory that already holds files.
    """
    if output is None:
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise BadValue("output", f"{str(path)!r} is a file; name a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"output directory {str(path)!r} already exists and is not empty; choose another output folder")


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Fail fast, before any data loads, when nothing can be written at ``path``.

    Creates nothing: a temporary file is opened (and vanishes) in ``path``, or
    in its nearest existing ancestor when ``path`` does not exist yet. A probe
    rather than ``os.access``, which says yes to root on a read-only mount.

    Raises:
        RunError: the nearest existing ancestor is a file, or refuses a new file.
    """
    import tempfile

    target = Path(path)
    existing = target
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise RunError(
            f"{what} {str(target)!r} cannot be created: {str(existing)!r} is a file, not a folder; choose another path"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(
            f"{what} {str(target)!r} is not writable ({reason} in {str(existing)!r}); "
            f"fix its permissions or choose another folder"
        ) from None


def new_run_dir(
    dataset: str, runs_dir: str | os.PathLike | None = None, output: str | os.PathLike | None = None
) -> Path:
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
    raise RunError(f"cannot create a run directory under {str(root)!r}")


def fast_model_record(run_dir: Path) -> dict | None:
    """``metrics.json``'s record of the run's TensorFlow-free copy, or None (an older run, or no readable metrics)."""
    metrics = read_json_or_none(Path(run_dir) / METRICS_FILE)
    record = metrics.get(FAST_MODEL_KEY) if isinstance(metrics, dict) else None
    return record if isinstance(record, dict) else None


def record_fast_model(run_dir: Path, record: dict) -> None:
    """Write ``record`` into the run's ``metrics.json`` under ``fast_model`` (atomically; the other metrics kept).

    Raises:
        RunError: the run has no readable ``metrics.json`` (it has not finished).
    """
    path = Path(run_dir) / METRICS_FILE
    metrics = read_json_or_none(path)
    if not isinstance(metrics, dict):
        raise RunError(
            f"{str(path)!r} is missing or unreadable, so the run's {FAST_MODEL_FILE} cannot be recorded; "
            f"finish the run first (lenet train --resume {run_dir})"
        )
    metrics[FAST_MODEL_KEY] = record
    write_json_atomic(path, metrics)


def remembered_data_dir(data_dir, run_config: dict | None, dataset: str | None):
    """Where a command that scores or resumes a run finds its data.

    ``--data-dir`` wins, then ``$LENET_DATA_DIR`` (returned as None: the loader
    reads it); else the folder the run was trained from, when it still exists
    and the command wants that run's dataset; else None (the usual look-up).
    """
    if data_dir is not None or os.environ.get(DATA_DIR_ENV):
        return data_dir
    source = (run_config or {}).get("data_source")
    if source and (run_config or {}).get("dataset") == dataset and Path(source).is_dir():
        return Path(source)
    return None
