"""The stopped search's results: the best trial scored on test (once), its recipe file, and the study's plots.

The best trial's model is scored on the test split once per best trial (the
result is kept in the study), and its recipe, the optimisation history and the
parameter importances are written beside the study, in ``<runs>/tune/``.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.config import resolve_config
from lenet_cli.core.train_recipe import recipe_of
from lenet_cli.engine import tracking
from lenet_cli.engine.tune.objective import drop
from lenet_cli.engine.tune.records import TrialRecord, trial_records
from lenet_cli.engine.tune.request import TuneRequest, dataset_label, tune_root
from lenet_cli.engine.tune.storage import OpenStudy, storage_guard
from lenet_cli.engine.tune.tracking import end_study, finish_study
from lenet_cli.store import runs

BEST_SUFFIX = "-best.json"
PLOT_SUFFIXES = {"history": "-history.png", "importances": "-importances.png"}
TEST_ATTR = "lenet_test"  # the study's user attribute: the best trial's test accuracy, read once


@dataclass
class TuneOutcome:
    """A search that stopped: the study's trials, the best one with its test accuracy, and the files written."""

    study: str
    storage: str  # the URL, password hidden
    dataset: str
    records: list[TrialRecord]
    best: TrialRecord | None
    test_accuracy: float | None
    test_note: str | None  # why there is no test accuracy, when there is none
    recipe_file: Path | None
    plots: dict[str, Path]
    plots_skipped: dict[str, str]
    ran: int  # trials this process ran
    stop_reason: str
    saved_seconds: float = 0.0  # training time the pruned trials did not spend (estimated from their own epochs)

    def counts(self) -> dict[str, int]:
        found = {state: 0 for state in ("complete", "pruned", "running", "failed", "waiting")}
        for record in self.records:
            found[record.state] = found.get(record.state, 0) + 1
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": self.storage,
            "dataset": self.dataset,
            "stop_reason": self.stop_reason,
            "trials": self.counts(),
            "ran_here": self.ran,
            "pruned_saved_seconds": self.saved_seconds,
            "best": None if self.best is None else {**self.best.to_dict(), "test_accuracy": self.test_accuracy},
            "test_note": self.test_note,
            "recipe_file": None if self.recipe_file is None else str(self.recipe_file),
            "plots": {name: str(path) for name, path in self.plots.items()},
            "plots_skipped": self.plots_skipped,
        }


def _test_accuracy(study, best: TrialRecord, data_dir, log) -> tuple[float | None, str | None]:
    """The best trial's test accuracy: read from the study when this trial was scored before, else scored here, once.

    Returns:
        ``(accuracy, None)``, or ``(None, why not)`` when the trial's model is on another machine.
    """
    kept = study.user_attrs.get(TEST_ATTR)
    if isinstance(kept, dict) and kept.get("trial") == best.number and isinstance(kept.get("test_accuracy"), float):
        return kept["test_accuracy"], None
    run_dir = Path(best.run_dir) if best.run_dir else None
    if run_dir is None or not (run_dir / runs.MODEL_FILE).is_file():
        where = f" on {best.host}" if best.host and best.host != socket.gethostname() else ""
        return (
            None,
            f"trial {best.number}'s model is not here (it ran{where} in {best.run_dir}); its test accuracy is read where it is",
        )
    from lenet_cli.engine.evaluate import EvaluateRequest, evaluate

    if log:
        log(f"scoring trial {best.number}, the best, on the test split (the only time this study reads it)")
    result = evaluate(EvaluateRequest(model=run_dir, data_dir=data_dir, split="test"))
    accuracy = float(result.accuracy)
    study.set_user_attr(
        TEST_ATTR, {"trial": best.number, "test_accuracy": accuracy, "test_count": int(result.report.get("count") or 0)}
    )
    return accuracy, None


def write_results(request: TuneRequest, opened: OpenStudy, best: TrialRecord, test_accuracy: float | None) -> Path:
    """``<runs>/tune/<study>-best.json``: the best trial's recipe as ``lenet train`` options, with the evidence for it."""
    from lenet_cli.core.config import TrainConfig
    from lenet_cli.store.atomic import write_json_atomic

    assert best.run_dir is not None
    path = tune_root(request.runs_dir) / f"{opened.name}{BEST_SUFFIX}"
    config_file = Path(best.run_dir) / runs.CONFIG_FILE
    if config_file.is_file():
        recipe = recipe_of(TrainConfig.load(config_file))
    else:  # the trial ran on another machine: its parameters over the defaults give the same recipe
        fixed = {
            o: p.value
            for o, p in tune_space.build_space(request.dataset, request.space_file, request.epochs).items()
            if isinstance(p, tune_space.Fixed)
        }
        cfg = resolve_config(
            request.dataset, **tune_space.config_overrides({**fixed, **best.params}), seed=request.seed
        )
        recipe = recipe_of(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        path,
        {
            "recipe": recipe,
            "study": opened.name,
            "storage": opened.shown,
            "trial": best.number,
            "val_accuracy": best.val_accuracy,
            "test_accuracy": test_accuracy,
            "run_dir": best.run_dir,
            "searched_with": {
                "train-limit": request.train_limit,
                "validation-size": request.validation_size,
                "epochs": request.epochs,
            },
            "retrain": f"lenet train --recipe {path}",
        },
    )
    return path


def finish(request: TuneRequest, opened: OpenStudy, ran: int, stop_reason: str, log=None) -> TuneOutcome:
    """The stopped search's summary: the best trial scored on test (once), its recipe file, and the study's plots.

    Raises:
        StorageLost: the study's database went away.
    """
    try:
        with storage_guard(opened):
            outcome = _finish(request, opened, ran, stop_reason, log)
    except BaseException:
        end_study(opened.tracker, tracking.STATUS_FAILED)
        raise
    finish_study(opened.tracker, outcome)
    return outcome


def _finish(request: TuneRequest, opened: OpenStudy, ran: int, stop_reason: str, log) -> TuneOutcome:
    from lenet_cli.store.atomic import write_bytes_atomic
    from lenet_cli.viz.tune_plots import study_plots

    study = opened.study
    records = trial_records(study)
    complete = [r for r in records if r.state == "complete"]
    best = max(complete, key=lambda r: (r.val_accuracy or 0.0, -r.number)) if complete else None
    test_accuracy, note, recipe_file = None, None, None
    if best is not None:
        test_accuracy, note = _test_accuracy(study, best, request.data_dir, log)
        recipe_file = write_results(request, opened, best, test_accuracy)
    else:
        note = "no trial has completed yet"
    pngs, skipped = study_plots(study)
    plots = {
        name: write_bytes_atomic(tune_root(request.runs_dir) / f"{opened.name}{PLOT_SUFFIXES[name]}", png)
        for name, png in pngs.items()
    }
    for name in skipped:  # an earlier picture would contradict the note that says why there is none
        drop(tune_root(request.runs_dir) / f"{opened.name}{PLOT_SUFFIXES[name]}")
    saved = sum(
        float(t.user_attrs.get("saved_seconds") or 0.0)
        for t in study.get_trials(deepcopy=False)
        if t.state.name == "PRUNED"
    )
    return TuneOutcome(
        opened.name,
        opened.shown,
        dataset_label(request.dataset),
        records,
        best,
        test_accuracy,
        note,
        recipe_file,
        plots,
        skipped,
        ran,
        stop_reason,
        saved,
    )
