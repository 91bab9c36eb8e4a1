"""``lenet tune`` in MLflow: one parent run per search, and each trial a run nested under it.

The parent run carries the study's settings and search space as params and,
when the search stops, the best trial's scores, its recipe file and the
study's plots. Each trial is an ordinary tracked training run
(:mod:`lenet_cli.engine.tracking`) whose ``mlflow.parentRunId`` is the
parent's; a pruned trial is tagged ``lenet.pruned``. A failure of the server
silences the whole study after one warning: the trials share the parent's fate.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.engine import tracking
from lenet_cli.engine.tracking import RunTracker

STATE_TAG = "lenet.state"  # a trial's end: complete, pruned, failed or interrupted
PRUNED_TAG = "lenet.pruned"


def start_study(request, opened, space, log=None) -> RunTracker:
    """Open the search's parent run (or a tracker that is off, when tracking is)."""
    from lenet_cli import __version__
    from lenet_cli.core import tune_space

    settings = tracking.resolve(request.mlflow, request.mlflow_experiment, None, request.dataset, log)
    tracker = RunTracker(
        settings, log, run_name=f"tune {opened.name}", tags={"lenet.study": opened.name, "lenet.storage": opened.shown}
    )
    params: dict[str, Any] = {
        "dataset": request.dataset,
        "study": opened.name,
        "storage": opened.shown,
        "trials": request.target,
        "timeout": request.timeout,
        "pruner": request.pruner,
        "train_limit": request.train_limit,
        "validation_size": request.validation_size,
        "epochs": request.epochs,
        "seed": request.seed,
        "lenet_version": __version__,
    }
    params.update({f"space.{option}": tune_space.describe(param, option) for option, param in space.items()})
    tracker.start(params)
    return tracker


def trial_tracker(parent: RunTracker | None, study: str, number: int) -> RunTracker:
    """A trial's run, nested under the search's; off when the search is not tracked (or its server failed)."""
    if parent is None or not parent.active:
        return RunTracker.off()
    return RunTracker(
        parent.settings,
        parent.log,
        parent=parent,
        run_name=f"trial-{number}",
        tags={"lenet.study": study, "lenet.trial": str(number)},
    )


def end_trial(tracker: RunTracker, state: str) -> None:
    """Tag how the trial ended and close its run: complete and pruned ones finished, failed ones failed."""
    tags = {STATE_TAG: state, **({PRUNED_TAG: "true"} if state == "pruned" else {})}
    tracker.set_tags(tags)
    status = {"failed": tracking.STATUS_FAILED, "interrupted": tracking.STATUS_KILLED}.get(
        state, tracking.STATUS_FINISHED
    )
    tracker.end(status)


def end_study(tracker: RunTracker | None, status: str) -> None:
    """Close the parent run of a search that stopped without results (interrupted, or its database lost)."""
    if tracker is not None:
        tracker.end(status)


def finish_study(tracker: RunTracker | None, outcome) -> None:
    """Log the stopped search's results on its parent run: the best trial, its scores, recipe file and plots."""
    if tracker is None or not tracker.active:
        return
    counts = outcome.counts()
    values: dict[str, Any] = {f"trials_{state}": n for state, n in counts.items()}
    values["pruned_saved_seconds"] = outcome.saved_seconds
    best = outcome.best
    if best is not None:
        values.update(
            {"best_val_accuracy": best.val_accuracy, "test_accuracy": outcome.test_accuracy, "best_trial": best.number}
        )
        tags = {"lenet.best_trial": str(best.number)}
        if best.run_dir:
            tags["lenet.best_run_dir"] = best.run_dir
            from lenet_cli.store import runs

            record = runs.read_json_or_none(Path(best.run_dir) / tracking.RUN_FILE)
            if isinstance(record, dict) and isinstance(record.get("run_id"), str):
                tags["lenet.best_run_id"] = record["run_id"]
        tracker.set_tags(tags)
    tracker.log_metrics(values, 0, "logging the study's results")
    tracker.log_files([path for path in [outcome.recipe_file, *outcome.plots.values()] if path is not None])
    tracker.end()
