"""One trial: draw a recipe from the space, train it as one ordinary run, and return its final validation accuracy.

Every epoch reports validation accuracy to the pruner, which may stop the trial
before its next epoch (its run keeps config, history and metrics, no model).
Only the best complete trial keeps its ``model.keras``, unless the request keeps
them all. Nothing here prints: lines go to the caller's events.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.config import resolve_config
from lenet_cli.core.errors import DataError, LenetError
from lenet_cli.engine.interrupted import TrainingInterrupted
from lenet_cli.engine.tune.events import TuneEvents, TuneProgress
from lenet_cli.engine.tune.records import best_of, value_text
from lenet_cli.engine.tune.request import TuneRequest, tune_root
from lenet_cli.engine.tune.storage import OpenStudy, load_optuna
from lenet_cli.engine.tune.tracking import end_trial, trial_tracker
from lenet_cli.store import runs


def trial_callbacks(
    trial, state: dict, progress: Callable[[TuneProgress], None] | None, steps: int, epochs: int, common: dict[str, Any]
):
    """The Keras callback that reports every epoch's validation accuracy, prunes, and feeds the live line.

    A prune decided after epoch k takes effect when epoch k+1 begins, once the
    trainer has written epoch k to the history and checkpoint; after the last
    epoch there is nothing left to save, so the trial completes.
    """
    import keras
    import optuna

    class TrialReporter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._epoch = 0
            self._shown = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            if state.get("prune_after") is not None:
                raise optuna.TrialPruned(f"pruned after epoch {state['prune_after']}")
            self._epoch = epoch
            if epoch:  # the epochs so far, for lenet tune --show while the trial runs
                trial.set_user_attr("train_seconds", train_seconds(state["run_dir"]))

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if progress is not None and (now - self._shown >= 0.25 or batch + 1 == steps):
                self._shown = now
                progress(_progress(state, common, self._epoch, batch + 1, steps, epochs))

        def on_epoch_end(self, epoch, logs=None):
            accuracy = (logs or {}).get("val_accuracy")
            state["epochs_run"] = epoch + 1
            if accuracy is None or not math.isfinite(accuracy):
                return
            trial.report(float(accuracy), epoch + 1)
            state["last"] = float(accuracy)
            if epoch + 1 < epochs and trial.should_prune():
                state["prune_after"] = epoch + 1

    return [TrialReporter()]


def _progress(state: dict, common: dict[str, Any], epoch: int, step: int, steps: int, epochs: int) -> TuneProgress:
    """The live line's facts, with an ETA: this trial's rest at its own pace, then the trials still to run at the mean pace so far."""
    now = time.monotonic()
    done = epoch + step / max(1, steps)
    trial_elapsed = now - state["started"]
    this_left = trial_elapsed / done * (epochs - done) if done > 0 else None
    durations = common["durations"]
    per_trial = sum(durations) / len(durations) if durations else (trial_elapsed / done * epochs if done > 0 else None)
    eta = None
    target = common["target"]
    if target is not None and this_left is not None and per_trial is not None:
        eta = this_left + max(0, target - common["finished"] - 1) * per_trial
    if common["deadline"] is not None:
        left = max(0.0, common["deadline"] - now)
        eta = left if eta is None else min(eta, left + (this_left or 0.0))
    return TuneProgress(
        trial=state["number"],
        epoch=epoch + 1,
        epochs=epochs,
        step=step,
        steps=steps,
        finished=common["finished"],
        target=target,
        best=common["best"],
        best_trial=common["best_trial"],
        eta_seconds=eta,
    )


def drop(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _epoch_seconds(run_dir: Path) -> list[float]:
    history = runs.read_json_or_none(run_dir / runs.HISTORY_FILE)
    if not isinstance(history, list):
        return []
    return [
        float(h["epoch_seconds"])
        for h in history
        if isinstance(h, dict) and isinstance(h.get("epoch_seconds"), (int, float))
    ]


def train_seconds(run_dir: Path) -> float | None:
    """A trial's training time as ``lenet runs`` shows its run: the sum of its epochs' times (None before its first epoch)."""
    seconds = _epoch_seconds(run_dir)
    return float(sum(seconds)) if seconds else None


def keep_pruned(run_dir: Path, cfg, state: dict) -> float:
    """A pruned trial keeps its config, history and a metrics.json that says it was pruned; no model, no checkpoint.

    Returns:
        The training time it saved: its unrun epochs at its own mean epoch time.
    """
    from lenet_cli.store.atomic import write_json_atomic

    drop(run_dir / runs.CHECKPOINT_FILE)
    drop(run_dir / runs.MODEL_FILE)
    seconds = _epoch_seconds(run_dir)
    run = len(seconds)
    saved = (sum(seconds) / run) * (cfg.epochs - run) if run else 0.0
    write_json_atomic(
        run_dir / runs.METRICS_FILE,
        {
            "dataset": cfg.dataset,
            "pruned": True,
            "study": cfg.study,
            "trial": cfg.trial,
            "test_accuracy": None,
            "val_accuracy": state.get("last"),
            "epochs": cfg.epochs,
            "epochs_completed": run,
            "train_seconds": sum(seconds),
            "saved_seconds": saved,
        },
    )
    return saved


class Objective:
    """Optuna's objective: draw a recipe, train it as one ordinary run, return its final validation accuracy."""

    def __init__(
        self,
        request: TuneRequest,
        opened: OpenStudy,
        space: tune_space.Space,
        common: dict[str, Any],
        events: TuneEvents,
    ):
        self.request = request
        self.opened = opened
        self.space = space
        self.common = common
        self.events = events
        self.current: int | None = None

    def __call__(self, trial) -> float:
        from lenet_cli.engine.train import TrainRequest
        from lenet_cli.engine.train import train as train_run

        self.current = trial.number
        values = tune_space.suggest(trial, self.space)
        study_dir = tune_root(self.request.runs_dir) / self.opened.name
        run_dir = study_dir / f"trial-{trial.number}"
        cfg = self._config(trial.number, values)
        self._start(trial, run_dir, cfg.epochs, values)
        state: dict[str, Any] = {"number": trial.number, "started": time.monotonic(), "run_dir": run_dir}

        def callbacks_for(plan):
            steps = math.ceil(len(plan.data.train) / plan.config.batch_size)
            return trial_callbacks(trial, state, self.events.progress, steps, plan.config.epochs, self.common)

        train_request = TrainRequest(
            cfg, data_dir=self.request.data_dir, output=run_dir, runs_dir=study_dir, tensorboard=False, score_test=False
        )
        tracker = trial_tracker(self.opened.tracker, self.opened.name, trial.number)
        ended = "failed"
        try:
            outcome = train_run(
                train_request, callbacks_for=callbacks_for, should_stop=self.events.should_stop, tracker=tracker
            )
            ended = "complete"
        except BaseException as exc:
            ended = _ended(trial, exc, run_dir, cfg, state)
            raise
        finally:
            end_trial(tracker, ended)
            _clear_keras()
            trial.set_user_attr("train_seconds", train_seconds(run_dir))  # whatever the end: what lenet runs shows
        accuracy = outcome.metrics.get("val_accuracy")
        if accuracy is None or not math.isfinite(accuracy):
            raise DataError("the trial has no validation accuracy to be scored by: the validation split is empty")
        if not self.request.keep_models:
            _keep_best_model(self.opened.study, trial.number, float(accuracy), run_dir)
        return float(accuracy)

    def _config(self, number: int, values: dict[str, Any]):
        """The trial's training config: the drawn values over the dataset's defaults, with the study's fixed settings."""
        request = self.request
        return resolve_config(
            request.dataset,
            **tune_space.config_overrides(values),
            train_limit=request.train_limit,
            validation_size=request.validation_size,
            seed=request.seed,
            study=self.opened.name,
            trial=number,
        )

    def _start(self, trial, run_dir: Path, epochs: int, values: dict[str, Any]) -> None:
        """The trial's attributes that ``lenet tune --show`` reads while it runs, and its first log line."""
        for key, value in (
            ("run_dir", str(run_dir.resolve())),
            ("host", socket.gethostname()),
            ("epochs", epochs),
            ("error", None),
            ("saved_seconds", 0.0),
        ):
            trial.set_user_attr(key, value)
        retry_of = next(
            (
                t.system_attrs.get("failed_trial")
                for t in self.opened.study.get_trials(deepcopy=False)
                if t.number == trial.number
            ),
            None,
        )
        again = f" (retrying trial {retry_of})" if retry_of is not None else ""
        self.events.say(f"trial {trial.number}{again}: " + ", ".join(f"{k} {value_text(v)}" for k, v in values.items()))


def _ended(trial, exc: BaseException, run_dir: Path, cfg, state: dict) -> str:
    """How a trial that raised ended, with what its run keeps: pruned, interrupted, or failed (with its error)."""
    if isinstance(exc, load_optuna().TrialPruned):
        trial.set_user_attr("saved_seconds", keep_pruned(run_dir, cfg, state))
        return "pruned"
    if isinstance(exc, TrainingInterrupted):
        drop(run_dir / runs.CHECKPOINT_FILE)  # the trial is retried from scratch under a new number
        return "interrupted"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    if isinstance(exc, LenetError):
        trial.set_user_attr("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        drop(run_dir / runs.CHECKPOINT_FILE)
    return "failed"


def _clear_keras() -> None:
    """Each trial builds a new network: drop the previous one's graphs so memory stays flat over a long search."""
    import gc

    with contextlib.suppress(Exception):
        import keras

        keras.utils.clear_session()
    gc.collect()


def _keep_best_model(study, number: int, accuracy: float, run_dir: Path) -> None:
    """Only the best complete trial keeps its ``model.keras``; the others keep their TensorFlow-free ``model.tflite``.

    A study of 20 trials kept 20 Keras models and their LiteRT copies: most of its
    size, for models nobody will load again. The trial that is best now keeps both
    (ties go to the lower number, as the study's best does); the one it displaces
    loses its ``model.keras`` if that is on this machine. A trial whose copy failed
    its check keeps ``model.keras``, its only usable model.
    """
    best_value, best_number = best_of(study)
    record = runs.fast_model_record(run_dir)
    usable_copy = bool(record and record.get("ok")) and (run_dir / runs.FAST_MODEL_FILE).is_file()
    new_best = (
        best_value is None
        or accuracy > best_value
        or (accuracy == best_value and best_number is not None and number < best_number)
    )
    if not new_best:
        if usable_copy:
            drop(run_dir / runs.MODEL_FILE)
        return
    if best_number is None:
        return
    previous = next((t for t in study.get_trials(deepcopy=False) if t.number == best_number), None)
    folder = previous.user_attrs.get("run_dir") if previous is not None else None
    if folder:
        old = Path(folder)
        old_record = runs.fast_model_record(old)
        if old_record and old_record.get("ok") and (old / runs.FAST_MODEL_FILE).is_file():
            drop(old / runs.MODEL_FILE)
