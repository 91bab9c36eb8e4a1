"""Train the seed LeNet: a compiled step over in-memory batches, logged per objective term.

The loop is written out (not ``model.fit``) so that every term of the seed's
objective is measured on the step that minimizes it, frozen layers stay out of
both the gradient and the penalty, and no ``tf.data`` iterator is torn down at
the end of each epoch (a teardown that stalls TensorFlow 2.21 for 15-30 s in
some ``fit()`` calls). Callbacks are ordinary Keras callbacks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import LenetError
from lenet_cli.core.units import plural
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.engine.interrupted import TrainingInterrupted
from lenet_cli.engine.train_finish import finish
from lenet_cli.engine.train_session import Session, TrainResult, build_session, score
from lenet_cli.model.checkpoint import TrainingState, load_checkpoint, restore, save_checkpoint
from lenet_cli.model.train_step import PENALTY_KEYS, penalty_means
from lenet_cli.store import runs
from lenet_cli.store.atomic import write_json_atomic

__all__ = ["LoopPlan", "TrainResult", "TrainingInterrupted", "score", "train"]


def _start_or_resume(session: Session, run_dir: Path, resume: bool) -> tuple[TrainingState, np.random.Generator]:
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


def _callbacks(session: Session, data: Dataset, run_dir: Path, callbacks, tensorboard: bool, histograms: bool):
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
    session: Session, data: Dataset, rng, epoch: int, callback_list, should_stop, run_dir: Path
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


def _epoch_logs(session: Session, train_logs: dict[str, float], validation: Split) -> dict[str, float]:
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
    session: Session, state: TrainingState, rng, epoch: int, logs: dict, epoch_seconds: float, run_dir: Path
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


def train(plan: LoopPlan) -> TrainResult:
    """Train one run in ``plan.run_dir`` and score the final model on the whole test split.

    Build (:func:`~lenet_cli.engine.train_session.build_session`), start (or resume), run the epochs, finish
    (:func:`~lenet_cli.engine.train_finish.finish`).

    Returns:
        The run's history and final metrics (``test_accuracy`` on all test images).

    Raises:
        LenetError: a bad configuration, an unusable checkpoint or a non-finite loss.
        TrainingInterrupted: ``should_stop`` returned a signal number. Before any epoch completed, the
            checkpoint and what else the run wrote are removed first, and ``run_dir`` with them when nothing else is in it.
    """
    session = build_session(plan.cfg, plan.data, plan.runs_dir, plan.resume, plan.deterministic, plan.distribution)
    state, rng = _start_or_resume(session, plan.run_dir, plan.resume)
    callback_list = _callbacks(session, plan.data, plan.run_dir, plan.callbacks, plan.tensorboard, plan.histograms)
    try:
        _run_epochs(session, plan.data, state, rng, callback_list, plan.should_stop, plan.run_dir)
    except TrainingInterrupted as exc:
        if exc.completed_epochs == 0:  # the checkpoint holds only the initial weights: nothing worth resuming
            exc.checkpoint_kept = False
            exc.run_dir_removed = runs.discard_unstarted_run(plan.run_dir)
        raise
    return finish(session, plan.data, state, plan.run_dir, plan.runs_dir, plan.distribution, plan.keep_checkpoint)


def _run_epochs(
    session: Session, data: Dataset, state: TrainingState, rng, callback_list, should_stop, run_dir: Path
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
