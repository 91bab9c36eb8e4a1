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
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lenet_cli import config as C
from lenet_cli import runs
from lenet_cli.atomic import atomic_path, write_json_atomic
from lenet_cli.config import TrainConfig
from lenet_cli.data import Dataset
from lenet_cli.errors import LenetError
from lenet_cli.tf_setup import import_tensorflow


@dataclass
class TrainResult:
    """What a finished run left behind."""

    run_dir: Path
    config: TrainConfig
    history: list[dict[str, float]]
    metrics: dict[str, Any]
    weights_sha256: str | None = None  # digest of the final weights (equal on every worker of a distributed run)


def augment_images(images: np.ndarray, mode: str, rng: np.random.Generator, max_shift: int = 2) -> np.ndarray:
    """Randomly flip (horizontally) and/or shift uint8 images by up to ``max_shift`` pixels.

    Vectorised: one slice of a zero-padded copy per distinct shift.
    """
    if mode == "none":
        return images
    out = images.copy()
    n = len(out)
    if "flip" in mode:
        flip = rng.random(n) < 0.5
        out[flip] = out[flip][:, :, ::-1]
    if "shift" in mode:
        size = images.shape[1]
        padded = np.pad(out, ((0, 0), (max_shift, max_shift), (max_shift, max_shift)))
        dy = rng.integers(-max_shift, max_shift + 1, n)
        dx = rng.integers(-max_shift, max_shift + 1, n)
        for sy in range(-max_shift, max_shift + 1):
            for sx in range(-max_shift, max_shift + 1):
                idx = np.nonzero((dy == sy) & (dx == sx))[0]
                if idx.size:
                    y0, x0 = max_shift + sy, max_shift + sx
                    out[idx] = padded[idx, y0 : y0 + size, x0 : x0 + size]
    return out


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    """The optimizer with its learning-rate schedule (cosine decay with optional linear warm-up)."""
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "cosine":
        if warmup > 0:
            lr = keras.optimizers.schedules.CosineDecay(0.0, max(1, total - warmup), warmup_target=cfg.learning_rate, warmup_steps=warmup)
        else:
            lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, total)
    else:
        lr = cfg.learning_rate
    if cfg.optimizer == "adam":
        from lenet_cli.fused_adam import FusedAdam

        return FusedAdam(learning_rate=lr)
    if cfg.optimizer == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=C.SGD_MOMENTUM)
    raise LenetError(f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(C.OPTIMIZERS)}")


def load_initial_weights(model, source: str | Path, runs_dir=None) -> Path:
    """Copy weights from another model into ``model``, layer by layer.

    Raises:
        LenetError: the source is missing, unloadable, or differs in shape; the
            message names the first layer that differs.
    """
    from lenet_cli.model import load_model_file

    ref = runs.resolve_model(source, runs_dir)
    donor = load_model_file(ref.model_path)
    for name in C.WEIGHT_LAYERS:
        try:
            donor_layer = donor.get_layer(name)
        except ValueError:
            raise LenetError(f"--init-from {str(ref.model_path)!r} has no layer {name!r}; it is not a lenet model") from None
        ours = model.get_layer(name).get_weights()
        theirs = donor_layer.get_weights()
        shapes_ours = [w.shape for w in ours]
        shapes_theirs = [w.shape for w in theirs]
        if shapes_ours != shapes_theirs:
            raise LenetError(
                f"--init-from {str(ref.model_path)!r}: layer {name} has weight shapes {shapes_theirs}, this network needs {shapes_ours} "
                f"(check --dense-units)"
            )
        model.get_layer(name).set_weights(theirs)
    return ref.model_path


STEPS_PER_CALL = 8  # optimizer steps per compiled call: less Python and dispatch per step


class _Trainer:
    """One run's compiled functions and mutable state."""

    def __init__(self, cfg: TrainConfig, model, optimizer, tf, distribution=None):
        from lenet_cli.model import logits_and_probabilities, penalty_terms, regularized_kernels

        self.cfg = cfg
        self.model = model
        self.optimizer = optimizer
        self.tf = tf
        view = logits_and_probabilities(model)
        kernels = regularized_kernels(model, cfg.freeze)
        trainable = [w for name in C.WEIGHT_LAYERS if name not in cfg.freeze for w in model.get_layer(name).trainable_weights]
        self.trainable = trainable
        optimizer.build(trainable)
        l1, wd = float(cfg.l1), float(cfg.weight_decay)
        self.term_names = [f"{kind}_{name}" for name in kernels for kind in ("l1", "l2")]

        spec = [tf.TensorSpec([None, 28, 28], tf.uint8), tf.TensorSpec([None], tf.int32)]

        @tf.function(input_signature=spec)
        def train_step(x, y):
            x = tf.cast(x, tf.float32)[..., None] / 255.0
            with tf.GradientTape() as tape:
                logits, _ = view(x, training=True)
                cross_entropy = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
                terms = penalty_terms(kernels, l1, wd)
                objective = cross_entropy + terms["l1"] + terms["l2"]
            grads = tape.gradient(objective, trainable)
            optimizer.apply_gradients(zip(grads, trainable))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
            out = {"cross_entropy": cross_entropy, "l1": tf.cast(terms["l1"], tf.float32), "l2": tf.cast(terms["l2"], tf.float32), "correct": correct}
            for name in self.term_names:
                out[name] = tf.cast(terms[name], tf.float32)
            return out

        keys = ["cross_entropy", "l1", "l2", "correct", *self.term_names]

        @tf.function(input_signature=[tf.TensorSpec([None, None, 28, 28], tf.uint8), tf.TensorSpec([None, None], tf.int32)])
        def train_steps(xs, ys):
            """Several steps in one call (like Keras's ``steps_per_execution``): per-example sums of each output."""
            sums = {k: tf.constant(0.0) for k in keys}
            for i in tf.range(tf.shape(xs)[0]):
                out = train_step(xs[i], ys[i])
                n = tf.cast(tf.shape(ys[i])[0], tf.float32)
                sums = {k: sums[k] + (out[k] if k == "correct" else out[k] * n) for k in keys}
            return sums

        @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.uint8)])
        def logits_step(x):
            x = tf.cast(x, tf.float32)[..., None] / 255.0
            logits, _ = view(x, training=False)
            return logits

        @tf.function
        def penalties():
            terms = penalty_terms(kernels, l1, wd)
            return {k: tf.cast(v, tf.float32) for k, v in terms.items()}

        self.train_step = train_step
        self.train_steps = train_steps if distribution is None else None
        if distribution is not None:
            from lenet_cli.distributed import distributed_train_step

            self.train_step = distributed_train_step(distribution, view, kernels, trainable, optimizer, self.term_names, l1, wd)
        self.logits_step = logits_step
        self.penalties = penalties

    def score(self, images: np.ndarray, labels: np.ndarray, batch_size: int = 1000) -> dict[str, float]:
        """Mean cross-entropy and accuracy of the current weights on a split (dropout off)."""
        if len(images) == 0:
            return {"cross_entropy": float("nan"), "accuracy": float("nan")}
        total_ce = 0.0
        correct = 0
        for start in range(0, len(images), batch_size):
            logits = self.logits_step(images[start : start + batch_size]).numpy().astype(np.float64)
            y = labels[start : start + batch_size].astype(np.int64)
            shifted = logits - logits.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            total_ce += float(-log_probs[np.arange(len(y)), y].sum())
            correct += int((logits.argmax(axis=1) == y).sum())
        return {"cross_entropy": total_ce / len(images), "accuracy": correct / len(images)}


class TrainingInterrupted(Exception):
    """Training stopped on a signal; the last completed epoch's checkpoint is on disk."""

    def __init__(self, signum: int, completed_epochs: int, run_dir: Path):
        super().__init__(f"interrupted by signal {signum} after {completed_epochs} completed epoch(s)")
        self.signum = signum
        self.completed_epochs = completed_epochs
        self.run_dir = run_dir


def save_checkpoint(run_dir: Path, model, optimizer, epoch: int, rng: np.random.Generator, history: list) -> Path:
    """Write ``checkpoint.npz`` atomically: every model and optimizer variable, the epoch and RNG state.

    Model variables include the dropout layers' seed-generator states, so a
    resumed run draws the same dropout masks an uninterrupted one would.
    """
    import keras

    arrays = {f"model/{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(model.variables)}
    arrays.update({f"optimizer/{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)})
    state = {"epoch": epoch, "rng": rng.bit_generator.state, "history": history}
    arrays["state"] = np.frombuffer(json.dumps(state).encode("utf-8"), dtype=np.uint8)
    with atomic_path(run_dir / runs.CHECKPOINT_FILE) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    return run_dir / runs.CHECKPOINT_FILE


def load_checkpoint(run_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """Read ``checkpoint.npz``: (state, arrays).

    Raises:
        LenetError: the run has no checkpoint, or it is unreadable.
    """
    path = run_dir / runs.CHECKPOINT_FILE
    if not path.is_file():
        raise LenetError(f"{str(run_dir)!r} holds no {runs.CHECKPOINT_FILE}; it is not a resumable run")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
        state = json.loads(arrays.pop("state").tobytes().decode("utf-8"))
    except (OSError, ValueError, KeyError) as exc:
        raise LenetError(f"checkpoint {str(path)!r} is unreadable ({type(exc).__name__}); the run cannot be resumed") from None
    return state, arrays


def _restore(model, optimizer, arrays: dict[str, np.ndarray]) -> None:
    model_vars, opt_vars = list(model.variables), list(optimizer.variables)
    if sum(k.startswith("model/") for k in arrays) != len(model_vars) or sum(k.startswith("optimizer/") for k in arrays) != len(opt_vars):
        raise LenetError("the checkpoint does not match this run's network or optimizer; it cannot be resumed")
    for i, var in enumerate(model_vars):
        var.assign(arrays[f"model/{i}"])
    for i, var in enumerate(opt_vars):
        var.assign(arrays[f"optimizer/{i}"])


def train(
    cfg: TrainConfig,
    data: Dataset,
    run_dir: Path,
    callbacks: list | None = None,
    tensorboard: bool = True,
    histograms: bool = False,
    runs_dir=None,
    resume: bool = False,
    should_stop: Callable[[], int | None] | None = None,
    deterministic: bool = False,
    distribution=None,
) -> TrainResult:
    """Train one run in ``run_dir`` and score the final model on the whole test split.

    Args:
        cfg: the resolved recipe; saved as ``config.json`` before the first step.
        data: the loaded dataset; its test split is touched only after training.
        run_dir: an existing directory that receives every artifact (empty unless resuming).
        callbacks: Keras callbacks (e.g. a progress display) driven by the loop.
        tensorboard: attach Keras's TensorBoard callback and the image callbacks.
        histograms: also log weight histograms each epoch.
        resume: continue from ``run_dir``'s checkpoint (after its last completed epoch).
        should_stop: polled after every step; a signal number stops training.
        deterministic: enable TensorFlow's op determinism (bitwise-reproducible runs).
        distribution: a :class:`lenet_cli.distributed.Distribution`; ``cfg.batch_size`` is then the
            global batch, split across its replicas. Only the chief marks the run as the latest.

    Returns:
        The run's history and final metrics (``test_accuracy`` on all test images).

    Raises:
        LenetError: a bad configuration, an unusable checkpoint or a non-finite loss.
        TrainingInterrupted: ``should_stop`` returned a signal number.
    """
    tf = import_tensorflow()
    import keras

    from lenet_cli.model import build_lenet

    if len(data.train) == 0:
        raise LenetError("the training split is empty; lower --validation-size or raise --train-limit")
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(cfg.seed)
    scope = distribution.strategy.scope() if distribution is not None else contextlib.nullcontext()
    with scope:  # variables made here are mirrored across replicas (and workers)
        model = build_lenet(dense_units=cfg.dense_units, dropout=cfg.dropout, seed=cfg.seed)
        if cfg.init_from and not resume:
            source = load_initial_weights(model, cfg.init_from, runs_dir)
            cfg = dataclasses.replace(cfg, init_from=str(source.resolve()))
        for name in cfg.freeze:
            model.get_layer(name).trainable = False

        steps_per_epoch = math.ceil(len(data.train) / cfg.batch_size)
        optimizer = make_optimizer(cfg, steps_per_epoch)
        trainer = _Trainer(cfg, model, optimizer, tf, distribution)
    model.optimizer = optimizer  # read by Keras's TensorBoard callback (learning rate, steps)

    rng = np.random.default_rng(cfg.seed)
    history: list[dict[str, float]] = []
    first_epoch = 0
    if resume:
        state, arrays = load_checkpoint(run_dir)
        _restore(model, optimizer, arrays)
        rng.bit_generator.state = state["rng"]
        history = state["history"]
        first_epoch = int(state["epoch"])
    else:
        write_json_atomic(run_dir / runs.CONFIG_FILE, cfg.to_json_dict())
        save_checkpoint(run_dir, model, optimizer, 0, rng, history)

    all_callbacks = list(callbacks or [])
    if tensorboard:
        from lenet_cli.tensorboard_logging import tensorboard_callbacks

        def predict_classes(images):
            return np.concatenate([trainer.logits_step(images[i : i + 1000]).numpy().argmax(axis=1) for i in range(0, len(images), 1000)])

        all_callbacks += tensorboard_callbacks(run_dir / runs.LOGS_DIR, data, histograms=histograms, predict_classes=predict_classes)
    callback_list = keras.callbacks.CallbackList(all_callbacks, model=model, add_history=False, add_progbar=False,
                                                 epochs=cfg.epochs, steps=steps_per_epoch, verbose=0)

    train_images, train_labels = data.train.images, data.train.labels.astype(np.int32)
    started = time.perf_counter()
    callback_list.on_train_begin()
    try:
        for epoch in range(first_epoch, cfg.epochs):
            callback_list.on_epoch_begin(epoch)
            epoch_start = time.perf_counter()
            order = rng.permutation(len(train_images))
            images = augment_images(train_images[order], cfg.augment, rng)
            labels = train_labels[order]
            sums: dict[str, float] = {}
            seen = 0
            full_batches = len(images) // cfg.batch_size
            step = 0
            while step < steps_per_epoch:
                if should_stop is not None:
                    signum = should_stop()
                    if signum:
                        raise TrainingInterrupted(signum, epoch, run_dir)
                lo = step * cfg.batch_size
                chunk = min(STEPS_PER_CALL, full_batches - step) if trainer.train_steps is not None else 0
                if chunk >= 2:  # several full batches in one compiled call
                    hi = lo + chunk * cfg.batch_size
                    out = trainer.train_steps(images[lo:hi].reshape(chunk, cfg.batch_size, 28, 28),
                                              labels[lo:hi].reshape(chunk, cfg.batch_size))
                    out = {k: float(v) for k, v in out.items()}
                else:
                    chunk = 1
                    hi = min(lo + cfg.batch_size, len(images))
                    out = {k: float(v) for k, v in trainer.train_step(images[lo:hi], labels[lo:hi]).items()}
                    out = {k: (v if k == "correct" else v * (hi - lo)) for k, v in out.items()}
                step += chunk
                seen += hi - lo
                for key, value in out.items():
                    sums[key] = sums.get(key, 0.0) + value
                if not all(math.isfinite(out[k]) for k in ("cross_entropy", "l1", "l2")):
                    raise LenetError(
                        f"the loss became non-finite (cross-entropy {out['cross_entropy'] / (hi - lo)}) at epoch {epoch + 1}, step {step}; "
                        f"training stopped and the last good checkpoint ({epoch} completed epochs) is kept in {run_dir} "
                        f"(lower --learning-rate or add --warmup-epochs)"
                    )
                batch_logs = {
                    "objective": sums["cross_entropy"] / seen + sums["l1"] / seen + sums["l2"] / seen,
                    "cross_entropy": sums["cross_entropy"] / seen,
                    "accuracy": sums["correct"] / seen,
                    "images": seen,
                    "elapsed": time.perf_counter() - epoch_start,
                }
                callback_list.on_train_batch_end(step - 1, batch_logs)
            train_seconds = time.perf_counter() - epoch_start
            logs = {key: sums[key] / seen for key in ["cross_entropy", "l1", "l2", *trainer.term_names]}
            logs["objective"] = logs["cross_entropy"] + logs["l1"] + logs["l2"]
            logs["accuracy"] = sums["correct"] / seen
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
            logs["images_per_second"] = seen / train_seconds
            val = trainer.score(data.validation.images, data.validation.labels)
            penalties = {k: float(v) for k, v in trainer.penalties().items()}
            logs["val_cross_entropy"] = val["cross_entropy"]
            logs["val_l1"] = penalties["l1"]
            logs["val_l2"] = penalties["l2"]
            for name in trainer.term_names:
                logs[f"val_{name}"] = penalties[name]
            logs["val_objective"] = val["cross_entropy"] + penalties["l1"] + penalties["l2"]
            logs["val_accuracy"] = val["accuracy"]
            logs["val_learning_rate"] = logs["learning_rate"]
            callback_list.on_epoch_end(epoch, logs)
            history.append({"epoch": epoch + 1, **logs, "epoch_seconds": time.perf_counter() - epoch_start})
            write_json_atomic(run_dir / runs.HISTORY_FILE, history)
            save_checkpoint(run_dir, model, optimizer, epoch + 1, rng, history)
    finally:
        callback_list.on_train_end()
    train_seconds_total = time.perf_counter() - started

    model.optimizer = None  # the shipped model carries no training state
    for name in cfg.freeze:
        model.get_layer(name).trainable = True
    with atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        model.save(tmp)

    from lenet_cli.inference import BatchPredictor

    test_probs = BatchPredictor(model)(data.test.images)
    test_pred = test_probs.argmax(axis=1)
    test_accuracy = float((test_pred == data.test.labels).mean()) if len(data.test) else float("nan")
    last = history[-1]
    metrics = {
        "dataset": cfg.dataset,
        "test_accuracy": test_accuracy,
        "test_count": len(data.test),
        "val_accuracy": last["val_accuracy"],
        "val_cross_entropy": last["val_cross_entropy"],
        "train_accuracy": last["accuracy"],
        "epochs": cfg.epochs,
        "train_seconds": train_seconds_total,
        "images_per_second": float(np.mean([h["images_per_second"] for h in history])),
        "data_source": str(data.source),
    }
    write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    if distribution is None or distribution.is_chief:
        runs.mark_latest(run_dir, runs_dir)
    from lenet_cli.distributed import weights_digest

    return TrainResult(run_dir, cfg, history, metrics, weights_digest(model, C.WEIGHT_LAYERS))
