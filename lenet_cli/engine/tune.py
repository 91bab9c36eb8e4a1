"""``lenet tune``'s work: an Optuna study whose trials are calls to the training engine.

A trial draws a recipe from the space (:mod:`lenet_cli.core.tune_space`),
trains it with :func:`lenet_cli.engine.train.train` into an ordinary run
directory, ``<runs>/tune/<study>/trial-<n>/``, and scores it by its final
*validation* accuracy; the trials never read the test split. Every epoch
reports validation accuracy to the pruner, which may stop the trial before
its next epoch (its run keeps config, history and metrics, no model). The
study lives in an Optuna storage: a SQLite file by default, or a PostgreSQL
or MySQL database that any number of processes on any machines share. Each
running trial sends heartbeats; a trial whose worker died is failed by the
next worker that looks, and put back in the queue for another to retry.

When the search stops, the best trial's model is scored on the test split
(once per best trial: the result is kept in the study), and its recipe, the
optimisation history and the parameter importances are written beside the
study. Nothing here prints: people's lines go to ``log``, live progress to
``progress``. Optuna is imported only when a study is opened.
"""

from __future__ import annotations

import contextlib
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.config import resolve_config
from lenet_cli.core.errors import BadValue, LenetError
from lenet_cli.core.units import human_duration, plural
from lenet_cli.engine import tracking, tune_tracking
from lenet_cli.engine.tune_study import (
    DEFAULT_TRIALS,
    MAX_RETRIES,
    OpenStudy,
    TrialRecord,
    TuneRequest,
    check_url,
    dataset_label,
    default_storage,
    load_optuna,
    open_study,
    show,
    storage_lost,
    study_name,
    trial_record,
    trial_records,
    tune_root,
)
from lenet_cli.store import runs

__all__ = [
    "DEFAULT_TRIALS",
    "TrialRecord",
    "TuneInterrupted",
    "TuneOutcome",
    "TuneProgress",
    "TuneRequest",
    "show",
    "tune",
]

MAX_FAILURES_IN_A_ROW = 3  # then the search stops: something is wrong beyond one recipe
BEST_SUFFIX = "-best.json"
PLOT_SUFFIXES = {"history": "-history.png", "importances": "-importances.png"}
TEST_ATTR = "lenet_test"  # the study's user attribute: the best trial's test accuracy, read once


@dataclass(frozen=True)
class TuneProgress:
    """Where the search is, for a live line: the trial, its epoch and step, the best so far, and the time left."""

    trial: int
    epoch: int  # 1-based: the epoch in progress
    epochs: int
    step: int
    steps: int
    finished: int  # finished trials in the study when this one started
    target: int | None
    best: float | None
    best_trial: int | None
    eta_seconds: float | None


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


class TuneInterrupted(Exception):
    """A signal stopped the search; the trial it stopped (if any) is failed in the study and queued to be retried."""

    def __init__(self, signum: int, trial: int | None, study: str):
        super().__init__(f"interrupted by signal {signum}" + (f" during trial {trial}" if trial is not None else ""))
        self.signum = signum
        self.trial = trial
        self.study = study


# --- One trial --------------------------------------------------------------------------------


def _trial_callbacks(
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
                trial.set_user_attr("train_seconds", _train_seconds(state["run_dir"]))

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


def _drop(path: Path) -> None:
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


def _train_seconds(run_dir: Path) -> float | None:
    """A trial's training time as ``lenet runs`` shows its run: the sum of its epochs' times (None before its first epoch)."""
    seconds = _epoch_seconds(run_dir)
    return float(sum(seconds)) if seconds else None


def _keep_pruned(run_dir: Path, cfg, state: dict) -> float:
    """A pruned trial keeps its config, history and a metrics.json that says it was pruned; no model, no checkpoint.

    Returns:
        The training time it saved: its unrun epochs at its own mean epoch time.
    """
    from lenet_cli.store.atomic import write_json_atomic

    _drop(run_dir / runs.CHECKPOINT_FILE)
    _drop(run_dir / runs.MODEL_FILE)
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


class _Objective:
    """Optuna's objective: draw a recipe, train it as one ordinary run, return its final validation accuracy."""

    def __init__(
        self,
        request: TuneRequest,
        opened: OpenStudy,
        space: tune_space.Space,
        common: dict[str, Any],
        progress,
        log,
        should_stop,
    ):
        self.request = request
        self.opened = opened
        self.space = space
        self.common = common
        self.progress = progress
        self.log = log
        self.should_stop = should_stop
        self.current: int | None = None

    def __call__(self, trial) -> float:
        from lenet_cli.engine.train import TrainRequest
        from lenet_cli.engine.train import train as train_run
        from lenet_cli.engine.trainer import TrainingInterrupted

        optuna = load_optuna()
        request = self.request
        self.current = trial.number
        values = tune_space.suggest(trial, self.space)
        study_dir = tune_root(request.runs_dir) / self.opened.name
        run_dir = study_dir / f"trial-{trial.number}"
        cfg = resolve_config(
            request.dataset,
            **tune_space.config_overrides(values),
            train_limit=request.train_limit,
            validation_size=request.validation_size,
            seed=request.seed,
            study=self.opened.name,
            trial=trial.number,
        )
        for key, value in (
            ("run_dir", str(run_dir.resolve())),
            ("host", socket.gethostname()),
            ("epochs", cfg.epochs),
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
        if self.log:
            again = f" (retrying trial {retry_of})" if retry_of is not None else ""
            self.log(f"trial {trial.number}{again}: " + ", ".join(f"{k} {_value_text(v)}" for k, v in values.items()))
        state: dict[str, Any] = {"number": trial.number, "started": time.monotonic(), "run_dir": run_dir}

        def callbacks_for(plan):
            steps = math.ceil(len(plan.data.train) / plan.config.batch_size)
            return _trial_callbacks(trial, state, self.progress, steps, plan.config.epochs, self.common)

        train_request = TrainRequest(
            cfg, data_dir=request.data_dir, output=run_dir, runs_dir=study_dir, tensorboard=False, score_test=False
        )
        tracker = tune_tracking.trial_tracker(self.opened.tracker, self.opened.name, trial.number)
        ended = "failed"
        try:
            outcome = train_run(
                train_request, callbacks_for=callbacks_for, should_stop=self.should_stop, tracker=tracker
            )
            ended = "complete"
        except optuna.TrialPruned:
            ended = "pruned"
            saved = _keep_pruned(run_dir, cfg, state)
            trial.set_user_attr("saved_seconds", saved)
            raise
        except TrainingInterrupted:
            ended = "interrupted"
            _drop(run_dir / runs.CHECKPOINT_FILE)  # the trial is retried from scratch under a new number
            raise
        except KeyboardInterrupt:
            ended = "interrupted"
            raise
        except LenetError as exc:
            trial.set_user_attr("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            _drop(run_dir / runs.CHECKPOINT_FILE)
            raise
        finally:
            tune_tracking.end_trial(tracker, ended)
            self._clear_keras()
            trial.set_user_attr(
                "train_seconds", _train_seconds(run_dir)
            )  # whatever the end: what lenet runs shows as its time
        accuracy = outcome.metrics.get("val_accuracy")
        if accuracy is None or not math.isfinite(accuracy):
            raise LenetError("the trial has no validation accuracy to be scored by: the validation split is empty")
        if not request.keep_models:
            _keep_best_model(self.opened.study, trial.number, float(accuracy), run_dir)
        return float(accuracy)

    @staticmethod
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
    best_value, best_number = _best(study)
    record = runs.fast_model_record(run_dir)
    usable_copy = bool(record and record.get("ok")) and (run_dir / runs.FAST_MODEL_FILE).is_file()
    new_best = (
        best_value is None
        or accuracy > best_value
        or (accuracy == best_value and best_number is not None and number < best_number)
    )
    if not new_best:
        if usable_copy:
            _drop(run_dir / runs.MODEL_FILE)
        return
    if best_number is None:
        return
    previous = next((t for t in study.get_trials(deepcopy=False) if t.number == best_number), None)
    folder = previous.user_attrs.get("run_dir") if previous is not None else None
    if folder:
        old = Path(folder)
        old_record = runs.fast_model_record(old)
        if old_record and old_record.get("ok") and (old / runs.FAST_MODEL_FILE).is_file():
            _drop(old / runs.MODEL_FILE)


def _value_text(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- The search ---------------------------------------------------------------------------------


def _counts(study) -> tuple[int, int, int]:
    """(finished: complete or pruned, running, waiting) trials of the study."""
    finished = running = waiting = 0
    for trial in study.get_trials(deepcopy=False):
        name = trial.state.name
        finished += name in ("COMPLETE", "PRUNED")
        running += name == "RUNNING"
        waiting += name == "WAITING"
    return finished, running, waiting


def _best(study) -> tuple[float | None, int | None]:
    try:
        best = study.best_trial
    except ValueError:
        return None, None
    return best.value, best.number


def _fail_stale(study) -> None:
    """Fail the running trials whose worker stopped sending heartbeats; each goes back in the queue (Optuna's retry callback)."""
    import optuna

    optuna.storages.fail_stale_trials(study)


def _sleep(seconds: float, should_stop) -> int | None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        signum = should_stop() if should_stop is not None else None
        if signum:
            return signum
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
    return None


def _describe_trial(trial, best: tuple[float | None, int | None]) -> str:
    record = trial_record(trial)
    best_text = f"; best {best[0]:.4f} (trial {best[1]})" if best[0] is not None else ""
    took = human_duration(record.seconds)
    if record.state == "complete":
        return f"trial {trial.number} complete: val_accuracy {record.val_accuracy:.4f} after {plural(record.epochs_run, 'epoch')} ({took}){best_text}"
    if record.state == "pruned":
        at = f"val_accuracy {record.val_accuracy:.4f}" if record.val_accuracy is not None else "no score"
        saved = trial.user_attrs.get("saved_seconds") or 0.0
        return (
            f"trial {trial.number} pruned after epoch {record.epochs_run}/{record.epochs}: {at} ({took}, "
            f"saved ~{human_duration(saved)}){best_text}"
        )
    error = trial.user_attrs.get("error") or "stopped"
    return f"trial {trial.number} failed: {error}{best_text}"


@contextlib.contextmanager
def _storage_guard(opened: OpenStudy):
    """The study's database going away mid-study, said in one line (:class:`~lenet_cli.core.errors.StorageLost`), not in Optuna's traces."""
    try:
        yield
    except (LenetError, TuneInterrupted):
        raise
    except Exception as exc:
        lost = storage_lost(exc, opened)
        if lost is None:
            raise
        raise lost from None


def search(
    request: TuneRequest, opened: OpenStudy, space: tune_space.Space, *, progress=None, log=None, should_stop=None
) -> tuple[int, str]:
    """Run trials until the study holds ``request.target`` finished ones, or the timeout passes.

    With other workers on the same study, a worker that finds the last
    trials running elsewhere waits for them (or for their heartbeats to lapse,
    and then retries them), so every worker ends with the same count.

    Returns:
        ``(trials this process ran, why it stopped)``.

    Raises:
        TuneInterrupted: ``should_stop`` returned a signal; the trial it stopped is failed and queued again.
        StorageLost: the study's database went away; the running trial is left for its heartbeats to lapse.
        LenetError: :data:`MAX_FAILURES_IN_A_ROW` trials failed in a row.
    """
    try:
        with _storage_guard(opened):
            return _search(request, opened, space, progress, log, should_stop)
    except BaseException as exc:
        interrupted = isinstance(exc, (TuneInterrupted, KeyboardInterrupt))
        tune_tracking.end_study(opened.tracker, tracking.STATUS_KILLED if interrupted else tracking.STATUS_FAILED)
        raise


def _search(
    request: TuneRequest, opened: OpenStudy, space: tune_space.Space, progress, log, should_stop
) -> tuple[int, str]:
    from lenet_cli.engine.trainer import TrainingInterrupted

    optuna = load_optuna()
    study = opened.study
    target = request.target
    started = time.monotonic()
    deadline = started + request.timeout if request.timeout is not None else None
    common: dict[str, Any] = {
        "durations": [],
        "target": target,
        "finished": 0,
        "best": None,
        "best_trial": None,
        "deadline": deadline,
    }
    objective = _Objective(request, opened, space, common, progress, log, should_stop)
    ran = failures = 0
    waited = False
    while True:
        signum = should_stop() if should_stop is not None else None
        if signum:
            raise TuneInterrupted(signum, None, opened.name)
        if deadline is not None and time.monotonic() >= deadline:
            return ran, "timeout"
        _fail_stale(study)
        finished, running, waiting = _counts(study)
        if target is not None and finished >= target:
            return ran, "trials"
        if target is not None and not waiting and finished + running >= target:
            if log and not waited:
                log(
                    f"waiting for {plural(running, 'trial')} running elsewhere (a stopped worker's trial is retried "
                    f"{2 * request.heartbeat} s after its last heartbeat)"
                )
            waited = True
            signum = _sleep(min(5.0, request.heartbeat), should_stop)
            if signum:
                raise TuneInterrupted(signum, None, opened.name)
            continue
        waited = False
        common["finished"] = finished
        common["best"], common["best_trial"] = _best(study)
        objective.current = None
        trial_started = time.monotonic()
        try:
            study.optimize(objective, n_trials=1, catch=(LenetError,))
        except (TrainingInterrupted, KeyboardInterrupt) as exc:
            number = objective.current
            _requeue(study, number)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TuneInterrupted(exc.signum, number, opened.name) from None
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker found this trial's heartbeats late (a stalled machine) and failed it; it is retried there
            if log:
                log(
                    f"trial {objective.current} was failed by another worker (no heartbeat for {2 * request.heartbeat} s) and is "
                    f"queued again; its result here is dropped"
                )
        ran += 1
        common["durations"].append(time.monotonic() - trial_started)
        if objective.current is None:
            continue
        frozen = study.get_trials(deepcopy=False)
        trial = next(t for t in frozen if t.number == objective.current)
        if log:
            log(_describe_trial(trial, _best(study)))
        failures = failures + 1 if trial.state == optuna.trial.TrialState.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise LenetError(
                f"{plural(failures, 'trial')} failed in a row (the last: {trial.user_attrs.get('error') or 'see its run'}); "
                f"the search stopped"
            )


def _requeue(study, number: int | None) -> None:
    """The interrupted trial is failed (Optuna did it); queue its parameters again so that continuing the study retries it."""
    if number is None:
        return
    import optuna

    with contextlib.suppress(Exception):
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == optuna.trial.TrialState.FAIL:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)


# --- Results --------------------------------------------------------------------------------------


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
        recipe = tune_space.recipe_of(TrainConfig.load(config_file))
    else:  # the trial ran on another machine: its parameters over the defaults give the same recipe
        fixed = {
            o: p.value
            for o, p in tune_space.build_space(request.dataset, request.space_file, request.epochs).items()
            if isinstance(p, tune_space.Fixed)
        }
        cfg = resolve_config(
            request.dataset, **tune_space.config_overrides({**fixed, **best.params}), seed=request.seed
        )
        recipe = tune_space.recipe_of(cfg)
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
        with _storage_guard(opened):
            outcome = _finish(request, opened, ran, stop_reason, log)
    except BaseException:
        tune_tracking.end_study(opened.tracker, tracking.STATUS_FAILED)
        raise
    tune_tracking.finish_study(opened.tracker, outcome)
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
        _drop(tune_root(request.runs_dir) / f"{opened.name}{PLOT_SUFFIXES[name]}")
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


def prepare(request: TuneRequest, log=None) -> tuple[OpenStudy, tune_space.Space]:
    """Check everything a search needs before anything is made: the space, the data, the storage and the study.

    Raises:
        BadValue: a bad space file, storage URL or study (exit 2 on the command line).
        LenetError: the data cannot be found or read.
    """
    load_optuna()  # a missing extra is the first thing said
    if request.mlflow is not None and not tracking.mlflow_installed():
        raise tracking.missing_mlflow()
    name = study_name(request)
    space = tune_space.build_space(request.dataset, request.space_file, request.epochs)
    url = request.storage or default_storage(request)
    check_url(url, default=request.storage is None)
    from lenet_cli.engine.train import TrainRequest, load_training_data

    if request.validation_size == 0:
        raise BadValue(
            "validation_size", "--validation-size 0 leaves nothing to score the trials on; hold out some images"
        )
    cfg = resolve_config(
        request.dataset, train_limit=request.train_limit, validation_size=request.validation_size, seed=request.seed
    )
    _, data, _ = load_training_data(TrainRequest(cfg, data_dir=request.data_dir, score_test=False), log)
    if len(data.split("validation")) == 0:
        raise BadValue("dataset", f"{request.dataset} has no validation split to score trials on")
    opened = open_study(request, space)
    if log:
        finished, running, _ = _counts(opened.study)
        target = request.target
        goal = f"{target} finished trials" if target is not None else "no trial limit"
        until = f", starting none after {human_duration(request.timeout)}" if request.timeout is not None else ""
        searched = [f"{o} {tune_space.describe(p, o)}" for o, p in space.items() if not isinstance(p, tune_space.Fixed)]
        fixed = [f"{o} {p.value}" for o, p in space.items() if isinstance(p, tune_space.Fixed)]
        log(
            f"study {name} in {opened.shown}: {'new' if opened.created else plural(finished, 'finished trial')}"
            f"{f', {running} running' if running else ''}; aiming at {goal}{until}; {len(data.split('train')):,} train / "
            f"{len(data.split('validation')):,} validation images; pruner {request.pruner}"
        )
        log("searching " + "; ".join(searched) + (f"; fixed {', '.join(fixed)}" if fixed else ""))
    opened.tracker = tune_tracking.start_study(request, opened, space, log)
    return opened, space


def tune(
    request: TuneRequest,
    *,
    progress: Callable[[TuneProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
    should_stop: Callable[[], int | None] | None = None,
) -> TuneOutcome:
    """Search for the best recipe: open (or continue) the study, run trials, then score and write the best.

    Args:
        request: What to tune, where the study is kept, and for how long.
        progress: Receives the live line's facts a few times a second while a trial trains.
        log: Receives one line per notable step (the study opened, each trial's end, waiting for other workers).
        should_stop: Polled between trials and after every training step; a signal number stops the search.

    Raises:
        BadValue: bad input, found before anything is created.
        TuneInterrupted: ``should_stop`` returned a signal (the trial it stopped is failed and queued again).
        StorageLost: the study's database went away mid-study (exit 5 on the command line).
        LenetError: the data cannot be read, or trials keep failing.
    """
    opened, space = prepare(request, log)
    ran, reason = search(request, opened, space, progress=progress, log=log, should_stop=should_stop)
    return finish(request, opened, ran, reason, log)
