"""Train the seed LeNet: a compiled step over in-memory batches, logged per objective term.

The loop is written out (not ``model.fit``) so that every term of the seed's
objective is measured on the step that minimizes it, frozen layers stay out of
both the gradient and the penalty, and no ``tf.data`` iterator is torn down at
the end of each epoch (a teardown that stalls TensorFlow 2.21 for 15-30 s in
some ``fit()`` calls). Callbacks are ordinary Keras callbacks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core import config as C
from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import DataError, LenetError
from lenet_cli.core.tensorflow_env import import_tensorflow
from lenet_cli.core.units import plural
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.engine.interrupted import TrainingInterrupted
from lenet_cli.model.checkpoint import (
    TrainingState,
    load_checkpoint,
    restore,
    save_checkpoint,
)
from lenet_cli.model.train_step import PENALTY_KEYS, TrainStep, load_initial_weights, make_optimizer, penalty_means
from lenet_cli.store import runs
from lenet_cli.store.atomic import atomic_path, write_json_atomic


@dataclass
class TrainResult:
    """What a finished run left behind."""

    run_dir: Path
    config: TrainConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    weights_sha256: str | None = None  # digest of the final weights (equal on every worker of a distributed run)


def score(predictor, split: Split) -> dict[str, float]:
    """Mean cross-entropy and accuracy of the current weights on a split (dropout off)."""
    from lenet_cli.core.metrics import mean_cross_entropy

    if len(split) == 0:
        return {"cross_entropy": float("nan"), "accuracy": float("nan")}
    logits = predictor.logits(split.images)
    return {
        "cross_entropy": mean_cross_entropy(split.labels, logits),
        "accuracy": float((logits.argmax(axis=1) == split.labels).mean()),
    }


@dataclass
class _Session:
    """Everything one run trains with."""

    cfg: TrainConfig
    model: Any
    optimizer: Any
    step: TrainStep
    predictor: Any  # scores ``shipped`` as it answers: averaged with the mirror image when the recipe says so
    steps_per_epoch: int
    shipped: Any  # the float32 network that ships and is scored: ``model`` itself unless it trains in bfloat16
    one_view: Any  # scores ``shipped`` on the pictures alone: what calibration fits (a temperature per view)

    def sync_shipped(self) -> None:
        """Copy the training network's weights into the float32 network that ships (nothing to do in float32)."""
        if self.shipped is not self.model:
            for name in C.WEIGHT_LAYERS:
                self.shipped.get_layer(name).set_weights(self.model.get_layer(name).get_weights())

    def predict_shipped_classes(self, images):
        """Classes from the weights that would ship (the moving average, with EMA): what ``val_accuracy`` scores.

        The epoch's confusion matrix uses it, so ``confusion_matrix.json`` and
        TensorBoard's image agree with the validation accuracy beside them.
        """
        with self.step.shipped_weights():
            self.sync_shipped()
            return self.predictor.predict_classes(images)


def _build(cfg: TrainConfig, data: Dataset, runs_dir, resume: bool, deterministic: bool, distribution) -> _Session:
    """The model (with any warm start and frozen layers), its optimizer, objective, step and predictor."""
    tf = import_tensorflow()
    import keras

    from lenet_cli.core.mirror import MirrorAveraged
    from lenet_cli.model.inference import KerasPredictor
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.precision import resolve_precision

    train = data.split("train")
    if len(train) == 0:
        raise DataError("the training split is empty; lower validation_size or raise train_limit")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.seed)
    cfg = dataclasses.replace(cfg, precision=resolve_precision(cfg.precision))  # config.json records what ran
    scope = distribution.strategy.scope() if distribution is not None else contextlib.nullcontext()
    with scope:  # variables made here are mirrored across replicas (and workers)
        model = build_lenet(
            dense_units=cfg.dense_units,
            dropout=cfg.dropout,
            seed=cfg.seed,
            num_classes=len(data.class_names),
            precision=cfg.precision,
        )
        if cfg.init_from and not resume:
            source = load_initial_weights(model, cfg.init_from, runs_dir)
            cfg = dataclasses.replace(cfg, init_from=str(source.resolve()))
        for name in cfg.freeze:
            model.get_layer(name).trainable = False
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        optimizer = make_optimizer(cfg, steps_per_epoch)
        step = TrainStep.for_config(cfg, model, optimizer, distribution)
    model.optimizer = optimizer  # read by Keras's TensorBoard callback (learning rate, steps)
    shipped = model
    if cfg.precision != "float32":
        shipped = build_lenet(dense_units=cfg.dense_units, dropout=cfg.dropout, num_classes=len(data.class_names))
    one_view = KerasPredictor(shipped)
    predictor = MirrorAveraged(one_view) if cfg.test_time_flip else one_view
    return _Session(cfg, model, optimizer, step, predictor, steps_per_epoch, shipped, one_view)


def _start_or_resume(session: _Session, run_dir: Path, resume: bool) -> tuple[TrainingState, np.random.Generator]:
    """A fresh run writes its config and a checkpoint at epoch 0; a resumed one restores its checkpoint."""
    rng = np.random.default_rng(session.cfg.seed)
    if resume:
        state, arrays = load_checkpoint(run_dir)
        restore(session.model, session.optimizer, arrays, session.step.augmentation)
        rng.bit_generator.state = state.rng_state
        _record_new_end(run_dir, session.cfg.epochs)
        return state, rng
    from lenet_cli.model.augmentation import describe

    config = {
        **session.cfg.to_json_dict(),
        "augmentation": describe(session.cfg.augment, session.cfg.seed),
    }  # exactly what is applied
    state = TrainingState(config=config, rng_state=dict(rng.bit_generator.state))
    write_json_atomic(run_dir / runs.CONFIG_FILE, config)
    save_checkpoint(run_dir, session.model, session.optimizer, state, session.step.augmentation)
    return state, rng


def _record_new_end(run_dir: Path, epochs: int) -> None:
    """A resume that moved the run's end says so in ``config.json``: ``epochs`` is the new end, ``planned_epochs`` the first plan.

    Every later reader (``lenet runs``, ``metrics.json``, a further resume) then counts against the end the run
    really has, not the total it started with.
    """
    saved = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
    if not isinstance(saved, dict) or saved.get("epochs") == epochs:
        return
    write_json_atomic(
        run_dir / runs.CONFIG_FILE,
        {**saved, "epochs": epochs, "planned_epochs": saved.get("planned_epochs", saved.get("epochs"))},
    )


def _callbacks(session: _Session, data: Dataset, run_dir: Path, callbacks, tensorboard: bool, histograms: bool):
    import keras

    from lenet_cli.model.tensorboard_logging import run_callbacks

    all_callbacks = list(callbacks or []) + run_callbacks(
        run_dir, data, tensorboard, histograms, session.predict_shipped_classes
    )
    return keras.callbacks.CallbackList(
        all_callbacks,
        model=session.model,
        add_history=False,
        add_progbar=False,
        epochs=session.cfg.epochs,
        steps=session.steps_per_epoch,
        verbose=0,
    )


def _train_epoch(
    session: _Session, data: Dataset, rng, epoch: int, callback_list, should_stop, run_dir: Path
) -> dict[str, float]:
    """One pass over the shuffled (and augmented) training split; returns the mean of each log and the throughput."""
    cfg = session.cfg
    started = time.perf_counter()
    train = data.split("train")
    order = rng.permutation(len(train))
    images = train.images[order]
    labels = train.labels[order].astype(np.int32)
    full_batches = len(images) // cfg.batch_size
    sums = dict.fromkeys(session.step.keys, 0.0)
    seen = step = 0
    while step < session.steps_per_epoch:
        signum = should_stop() if should_stop is not None else None
        out, batches, count, agreed = session.step.run_chunk(images, labels, seen, cfg.batch_size, full_batches, signum)
        if agreed and not batches:
            raise TrainingInterrupted(agreed, epoch, run_dir)
        step += batches
        seen += count
        for key, value in out.items():
            sums[key] += value
        if not all(math.isfinite(out[k]) for k in ("cross_entropy", *PENALTY_KEYS)):
            raise LenetError(
                f"the loss became non-finite (cross-entropy {out['cross_entropy'] / count}) at epoch {epoch + 1}, step {step}; "
                f"training stopped and the last good checkpoint ({plural(epoch, 'completed epoch')}) is kept in {run_dir} "
                f"(lower learning_rate or add warmup_epochs)"
            )
        if agreed:  # a distributed run: every worker took this step, and every one stops after it
            raise TrainingInterrupted(agreed, epoch, run_dir, by_peer=agreed != signum)
        means = {"cross_entropy": sums["cross_entropy"] / seen, **penalty_means(sums, PENALTY_KEYS)}
        callback_list.on_train_batch_end(
            step - 1,
            {
                "objective": means["cross_entropy"] + means["l1"] + means["l2"],
                "cross_entropy": means["cross_entropy"],
                "accuracy": sums["correct"] / seen,
                "images": seen,
                "elapsed": time.perf_counter() - started,
            },
        )
    logs = {
        "cross_entropy": sums["cross_entropy"] / seen,
        **penalty_means(sums, PENALTY_KEYS + tuple(session.step.objective.term_names)),
    }
    logs["accuracy"] = sums["correct"] / seen
    logs["images_per_second"] = seen / (time.perf_counter() - started)
    return logs


def _epoch_logs(session: _Session, train_logs: dict[str, float], validation: Split) -> dict[str, float]:
    """The epoch's logs: the objective's terms, accuracy and rate for train, the same after the epoch for validation."""
    import keras

    logs = {key: train_logs[key] for key in ("cross_entropy", *PENALTY_KEYS, *session.step.objective.term_names)}
    logs["objective"] = logs["cross_entropy"] + logs["l1"] + logs["l2"]
    logs["accuracy"] = train_logs["accuracy"]
    logs["learning_rate"] = float(keras.ops.convert_to_numpy(session.optimizer.learning_rate))
    logs["images_per_second"] = train_logs["images_per_second"]
    with session.step.shipped_weights():  # validation scores what would ship (the EMA weights, with EMA; float32)
        session.sync_shipped()
        val = score(session.predictor, validation)
        penalties = {k: float(v) for k, v in session.step.objective.penalties().items()}
    logs["val_cross_entropy"] = val["cross_entropy"]
    for name in (*PENALTY_KEYS, *session.step.objective.term_names):
        logs[f"val_{name}"] = penalties[name]
    logs["val_objective"] = val["cross_entropy"] + penalties["l1"] + penalties["l2"]
    logs["val_accuracy"] = val["accuracy"]
    logs["val_learning_rate"] = logs["learning_rate"]
    return logs


def _end_epoch(
    session: _Session, state: TrainingState, rng, epoch: int, logs: dict, epoch_seconds: float, run_dir: Path
) -> None:
    """Record the epoch in the history and the checkpoint (both atomic)."""
    state.history.append({"epoch": epoch + 1, **logs, "epoch_seconds": epoch_seconds})
    state.completed_epochs = epoch + 1
    accuracy = logs["val_accuracy"]
    if math.isfinite(accuracy) and (state.best_val_accuracy is None or accuracy > state.best_val_accuracy):
        state.best_val_accuracy = accuracy
    state.rng_state = rng.bit_generator.state
    write_json_atomic(run_dir / runs.HISTORY_FILE, state.history)
    save_checkpoint(run_dir, session.model, session.optimizer, state, session.step.augmentation)


def _calibrate(session: _Session, validation: Split) -> dict | None:
    """Fit a temperature on the validation split and fold it into the shipped model (:mod:`lenet_cli.model.calibration`).

    Returns ``metrics.json``'s ``calibration`` block: the temperature, whether
    it was kept and why, and the validation cross-entropy and ECE before and
    after (after: of the model that ships); None when switched off. A fitted
    temperature that makes either validation figure worse is not folded in.
    """
    from lenet_cli.model.calibration import choose_temperature, fold_temperature

    if not session.cfg.calibrate:
        return None
    if len(validation) == 0:
        return _not_calibrated("no validation split to fit it on")
    if len(validation) < C.CALIBRATION_MIN_IMAGES:
        return _not_calibrated(
            f"the validation split has {plural(len(validation), 'image')}; "
            f"calibration needs at least {C.CALIBRATION_MIN_IMAGES}"
        )
    if "logits_layer" in session.cfg.freeze:
        return _not_calibrated("logits_layer is frozen")
    block = choose_temperature(session.one_view.logits(validation.images), validation.labels)
    if block["kept"]:
        fold_temperature(session.shipped, block["temperature"])
    if session.predictor is not session.one_view:  # the temperature is fitted per view; report the answers users get
        block["as_answered"] = _answer_figures(session.predictor, validation)
    return block


def _answer_figures(predictor, split: Split) -> dict:
    """Validation cross-entropy and ECE of the answers as given (averaged with the mirror image)."""
    from lenet_cli.core.metrics import calibration, logits_from_probabilities, mean_cross_entropy

    probabilities = predictor(split.images)
    return {
        "views": "the picture and its mirror image, averaged",
        "val_cross_entropy": mean_cross_entropy(split.labels, logits_from_probabilities(probabilities)),
        "val_ece": calibration(split.labels, probabilities)["ece"],
    }


def _shipped_val_cross_entropy(calibrated: dict | None, last_epoch: dict) -> float | None:
    """The validation cross-entropy of the model that ships, as it answers (after any temperature, with any mirror)."""
    block = calibrated or {}
    if "as_answered" in block:
        return block["as_answered"]["val_cross_entropy"]
    return block.get("val_cross_entropy_after", last_epoch.get("val_cross_entropy"))


def _not_calibrated(reason: str) -> dict:
    """The block of a run that ships no temperature because none could be fitted (``skipped`` is what the train table prints)."""
    return {"temperature": None, "skipped": reason, "kept": False, "reason": reason}


def _write_fast_model(model, predictor, data: Dataset, run_dir: Path, cfg: TrainConfig) -> dict:
    """The run's TensorFlow-free ``model.tflite``, checked on the validation split (the test split without one).

    Written now, while TensorFlow is loaded anyway, with the metadata every
    export carries; returns ``metrics.json``'s ``fast_model`` record
    (:func:`lenet_cli.engine.export.write_fast_model`), which says ``ok: false``
    and why when the conversion or the check failed.
    """
    from lenet_cli.engine.evaluate import penalty_from_weights
    from lenet_cli.engine.export import FAST_MODEL_FORMAT, export_metadata, write_fast_model

    validation = data.split("validation")
    split, name = (validation, "validation") if len(validation) else (data.split("test"), "test")
    run_config = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
    metadata = export_metadata(
        cfg.dataset, run_config, FAST_MODEL_FORMAT, "none", run_dir / runs.MODEL_FILE, data.class_names, cfg.preprocess
    )
    return write_fast_model(
        model,
        run_dir,
        metadata,
        split.images,
        split.labels,
        predictor(split.images),
        name,
        penalty_from_weights(model, run_config),
    )


def _finish(
    session: _Session, data: Dataset, state: TrainingState, run_dir: Path, runs_dir, distribution, keep_checkpoint: bool
) -> TrainResult:
    """Calibrate and save the model (no training state) and its TensorFlow-free copy, score it on the whole test split,
    write metrics, mark it latest.

    The checkpoint then goes (unless kept): like Keras's ``BackupAndRestore``, it
    exists to resume an unfinished run, and it is three times the model's size.
    """
    from lenet_cli.model.distributed import weights_digest
    from lenet_cli.runtimes.loading import SIDECAR_SUFFIX

    cfg = session.cfg
    chief = distribution is None or distribution.is_chief
    for stale in (
        runs.FAST_MODEL_FILE,
        runs.FAST_MODEL_FILE + SIDECAR_SUFFIX,
    ):  # never a copy of other weights beside the new model
        (run_dir / stale).unlink(missing_ok=True)
    session.optimizer.finalize_variable_values(session.step.trainable)  # with EMA: the averaged weights ship
    session.model.optimizer = None  # the shipped model carries no training state
    session.sync_shipped()
    model = session.shipped  # float32, whatever precision trained it
    calibrated = _calibrate(session, data.split("validation"))
    for name in cfg.freeze:
        model.get_layer(name).trainable = True
    with atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        model.save(tmp)
    test = (
        score(session.predictor, data.test) if data.test is not None else {"accuracy": None}
    )  # None: not loaded, never read
    fast_model = (
        _write_fast_model(model, session.predictor, data, run_dir, cfg) if chief else None
    )  # as lenet answers with it
    # without a validation split its scores are NaN in the history (null in history.json); here they are null too, for strict readers
    last = {
        k: v
        for k, v in (state.history[-1] if state.history else {}).items()
        if not (isinstance(v, float) and math.isnan(v))
    }
    metrics = {
        "dataset": cfg.dataset,
        "test_accuracy": test["accuracy"],
        "test_count": len(data.test) if data.test is not None else None,
        "val_accuracy": last.get("val_accuracy"),
        "val_cross_entropy": _shipped_val_cross_entropy(calibrated, last),
        "calibration": calibrated,
        "best_val_accuracy": state.best_val_accuracy,
        "train_accuracy": last.get("accuracy"),
        "epochs": cfg.epochs,
        "train_seconds": float(sum(h["epoch_seconds"] for h in state.history)),  # every epoch, across resumes
        "images_per_second": float(np.mean([h["images_per_second"] for h in state.history])) if state.history else None,
        "data_source": str(data.source),
        runs.FAST_MODEL_KEY: fast_model,
    }
    write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    if chief:
        runs.mark_latest(run_dir, runs_dir)
    if not keep_checkpoint:
        (run_dir / runs.CHECKPOINT_FILE).unlink(missing_ok=True)
    return TrainResult(run_dir, cfg, state.history, metrics, weights_digest(model, C.WEIGHT_LAYERS))


@dataclass(frozen=True)
class LoopPlan:
    """One run for the training loop: the recipe, the data, where it goes, and how it is watched.

    Attributes:
        cfg: the resolved recipe; saved as ``config.json`` before the first step.
        data: the loaded dataset; its test split is touched only after training.
        run_dir: an existing directory that receives every artifact (empty unless resuming).
        callbacks: Keras callbacks (e.g. a progress display) driven by the loop.
        tensorboard: attach Keras's TensorBoard callback and the image callbacks.
        histograms: also log weight histograms each epoch.
        runs_dir: the runs folder whose ``LATEST`` the finished run becomes (None: the default).
        resume: continue from ``run_dir``'s checkpoint (after its last completed epoch).
        should_stop: polled after every step; a signal number stops training.
        deterministic: enable TensorFlow's op determinism (bitwise-reproducible runs).
        distribution: a :class:`lenet_cli.model.distributed.Distribution`; ``cfg.batch_size`` is then the
            global batch, split across its replicas. Only the chief marks the run as the latest.
        keep_checkpoint: keep ``checkpoint.npz`` once the run has finished.
    """

    cfg: TrainConfig
    data: Dataset
    run_dir: Path
    callbacks: list | None = None
    tensorboard: bool = True
    histograms: bool = False
    runs_dir: Any = None
    resume: bool = False
    should_stop: Callable[[], int | None] | None = None
    deterministic: bool = False
    distribution: Any = None
    keep_checkpoint: bool = False


def train(
    plan: LoopPlan | TrainConfig, data: Dataset | None = None, run_dir: Path | None = None, **options
) -> TrainResult:
    """Train one run in ``plan.run_dir`` and score the final model on the whole test split.

    Build, start (or resume), run the epochs, finish: each part is a function above.

    ``train(cfg, data, run_dir, **options)`` is the same as ``train(LoopPlan(cfg, data, run_dir, **options))``: kept for
    the callers written before the plan (``bench/``); new code passes a :class:`LoopPlan`.

    Returns:
        The run's history and final metrics (``test_accuracy`` on all test images).

    Raises:
        LenetError: a bad configuration, an unusable checkpoint or a non-finite loss.
        TrainingInterrupted: ``should_stop`` returned a signal number. Before any epoch completed, the
            checkpoint and what else the run wrote are removed first, and ``run_dir`` with them when nothing else is in it.
    """
    if not isinstance(plan, LoopPlan):
        assert data is not None and run_dir is not None, "train(cfg, data, run_dir, ...) needs the data and the folder"
        plan = LoopPlan(plan, data, run_dir, **options)
    session = _build(plan.cfg, plan.data, plan.runs_dir, plan.resume, plan.deterministic, plan.distribution)
    state, rng = _start_or_resume(session, plan.run_dir, plan.resume)
    callback_list = _callbacks(session, plan.data, plan.run_dir, plan.callbacks, plan.tensorboard, plan.histograms)
    try:
        _run_epochs(session, plan.data, state, rng, callback_list, plan.should_stop, plan.run_dir)
    except TrainingInterrupted as exc:
        if exc.completed_epochs == 0:  # the checkpoint holds only the initial weights: nothing worth resuming
            exc.checkpoint_kept = False
            exc.run_dir_removed = runs.discard_unstarted_run(plan.run_dir)
        raise
    return _finish(session, plan.data, state, plan.run_dir, plan.runs_dir, plan.distribution, plan.keep_checkpoint)


def _run_epochs(
    session: _Session, data: Dataset, state: TrainingState, rng, callback_list, should_stop, run_dir: Path
) -> None:
    """Train from the first epoch not completed to the last, recording each; the callbacks' writers closed however it ends."""
    callback_list.on_train_begin()
    try:
        for epoch in range(state.completed_epochs, session.cfg.epochs):
            callback_list.on_epoch_begin(epoch)
            epoch_start = time.perf_counter()
            logs = _epoch_logs(
                session,
                _train_epoch(session, data, rng, epoch, callback_list, should_stop, run_dir),
                data.split("validation"),
            )
            callback_list.on_epoch_end(epoch, logs)
            _end_epoch(session, state, rng, epoch, logs, time.perf_counter() - epoch_start, run_dir)
    finally:
        callback_list.on_train_end()
