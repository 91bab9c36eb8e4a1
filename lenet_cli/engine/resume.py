"""Continuing a run: the request that trains it on from its last completed epoch, with the recipe it saved.

One function for ``lenet train --resume RUN`` and ``api.train(resume=RUN)``, so both find the run the same way,
load the same ``config.json`` and refuse the same things before any data or TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.engine.runs import find_run
from lenet_cli.engine.train import TrainRequest
from lenet_cli.model.checkpoint import completed_epochs
from lenet_cli.store import runs

CHANGEABLE = ("epochs",)
"""The recipe fields a resume may set: ``epochs`` moves the run's end (every other field is the saved one)."""


def resume_request(
    run: str | os.PathLike | None, recipe: Mapping[str, Any] | None = None, **fields: Any
) -> TrainRequest:
    """The :class:`TrainRequest` that continues ``run`` with its saved recipe.

    Args:
        run: The run's folder, or its name under the runs folder (``fields["runs_dir"]``).
        recipe: The recipe fields the caller gave (None values count as not given): only ``epochs``, the run's new
            end (its completed epochs to finish now, more to extend it).
        **fields: :class:`TrainRequest`'s other fields (``data_dir``, ``runs_dir``, ``tensorboard``, the distribution's,
            ...); ``output``, when given, must be the run's own folder.

    Raises:
        BadValue: a recipe field other than ``epochs`` (``field`` names it), ``epochs`` below the epochs already
            completed, a ``resume`` that names no run, or an ``output`` elsewhere.
        RunError: the run has finished, or is not resumable (no config or checkpoint, an unreadable one).
    """
    if not isinstance(run, (str, os.PathLike)):
        raise BadValue("resume", f"must be a run's folder or its name, not {run!r}")
    given = {name: value for name, value in (recipe or {}).items() if value is not None}
    for name in given:
        if name not in CHANGEABLE:
            raise BadValue(
                name, "a resumed run keeps the recipe it saved; only epochs may change", mentions=("epochs",)
            )
    run_dir = _run_folder(run, fields.get("runs_dir"))
    output = fields.pop("output", None)
    if output is not None and Path(output).resolve() != run_dir.resolve():
        raise BadValue("output", f"a resumed run stays in its own folder {str(run_dir)!r}, not {str(output)!r}")
    config = resumable_config(run_dir, given.get("epochs"))
    return TrainRequest(config, output=run_dir, resume=True, **fields)


def _run_folder(run: str | os.PathLike, runs_dir: Any) -> Path:
    """``run`` as a folder: itself when it is one, else the run of that name under the runs folder."""
    path = Path(run)
    if path.exists():
        return path
    try:
        return find_run(path, runs_dir)
    except RunError as exc:
        raise BadValue("resume", str(exc)) from None


def resumable_config(run_dir: Path, epochs: int | None = None) -> TrainConfig:
    """The saved config of a run that can be continued, checked before any data loads.

    ``epochs`` moves the run's end: to the epochs already completed (finish now,
    keeping the last completed epoch's weights) or beyond the planned total.

    Raises:
        RunError: the folder is not a resumable run, or it has finished.
        BadValue: ``epochs`` is below the epochs already completed.
    """
    if (run_dir / runs.MODEL_FILE).is_file() and (run_dir / runs.METRICS_FILE).is_file():
        raise RunError(
            f"run {str(run_dir)!r} has finished; to train it further, start a new run from its weights with "
            f"init_from={str(run_dir)!r} and epochs=N",
            mentions=("init_from", "epochs"),
        )
    if not (run_dir / runs.CONFIG_FILE).is_file() or not (run_dir / runs.CHECKPOINT_FILE).is_file():
        raise RunError(
            f"{str(run_dir)!r} is not a resumable run: it needs {runs.CONFIG_FILE} and {runs.CHECKPOINT_FILE}"
        )
    config = TrainConfig.load(run_dir / runs.CONFIG_FILE)
    if epochs is None:
        return config
    done = completed_epochs(run_dir)
    if epochs < max(done, 1):
        raise BadValue(
            "epochs", f"the run has completed {done} epoch(s); resuming it, epochs must be at least {max(done, 1)}"
        )
    return dataclasses.replace(config, epochs=epochs)
