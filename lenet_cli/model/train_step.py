"""One compiled training step for the seed LeNet, and the optimizer and starting weights it needs.

Several optimizer steps run per compiled call (:data:`STEPS_PER_CALL`), each
adding the penalty's exact gradient to the cross-entropy's and measuring every
objective term on the step that minimizes it; under a distribution strategy
the step runs on every replica and the stop signal rides its all-reduce.
:mod:`lenet_cli.engine.trainer` drives it epoch by epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core import config as C
from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import ModelError
from lenet_cli.core.tensorflow_env import import_tensorflow
from lenet_cli.store import runs


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int):
    """The optimizer with its learning-rate schedule (cosine decay with optional linear warm-up).

    With ``cfg.ema_momentum`` it also keeps Keras's exponential moving average
    of the weights (``use_ema``, with a momentum warm-up, :mod:`lenet_cli.model.ema`):
    validation scores it, and it is what ships.
    """
    import keras

    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    if cfg.schedule == "cosine":
        if warmup > 0:
            lr = keras.optimizers.schedules.CosineDecay(
                0.0, max(1, total - warmup), warmup_target=cfg.learning_rate, warmup_steps=warmup
            )
        else:
            lr = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, total)
    else:
        lr = cfg.learning_rate
    ema = {"use_ema": True, "ema_momentum": cfg.ema_momentum} if cfg.ema_momentum > 0 else {}
    if cfg.optimizer == "adam":
        from lenet_cli.model.fused_adam import FusedAdam

        return FusedAdam(learning_rate=lr, **ema)
    from lenet_cli.model.ema import SGD, RMSprop

    if cfg.optimizer == "rmsprop":
        return RMSprop(learning_rate=lr, **ema)
    if cfg.optimizer == "sgd":
        return SGD(learning_rate=lr, momentum=C.SGD_MOMENTUM, **ema)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of: {', '.join(C.OPTIMIZERS)}")


def load_initial_weights(model, source: str | Path, runs_dir=None) -> Path:
    """Copy weights from another model into ``model``, layer by layer.

    Raises:
        ModelError: the source is missing, unloadable, or differs in shape; the
            message names the first layer that differs.
    """
    from lenet_cli.model.network import load_model_file

    ref = runs.resolve_model(source, runs_dir, field="init_from")
    donor = load_model_file(ref.model_path)
    for name in C.WEIGHT_LAYERS:
        try:
            donor_layer = donor.get_layer(name)
        except ValueError:
            raise ModelError(
                f"init_from model {str(ref.model_path)!r} has no layer {name!r}; it is not a lenet model"
            ) from None
        ours = model.get_layer(name).get_weights()
        theirs = donor_layer.get_weights()
        shapes_ours = [w.shape for w in ours]
        shapes_theirs = [w.shape for w in theirs]
        if shapes_ours != shapes_theirs:
            hint = (
                f"it was trained on {shapes_theirs[-1][0]} classes and this dataset has {shapes_ours[-1][0]}: "
                f"init_from needs a model of the same classes"
                if name == "logits_layer" and shapes_ours[0][0] == shapes_theirs[0][0]
                else "check dense_units"
            )
            raise ModelError(
                f"init_from model {str(ref.model_path)!r}: layer {name} has weight shapes {shapes_theirs}, this network needs {shapes_ours} "
                f"({hint})"
            )
        model.get_layer(name).set_weights(theirs)
    return ref.model_path


STEPS_PER_CALL = 8  # optimizer steps per compiled call: less Python and dispatch per step
PENALTY_KEYS = ("l1", "l2")


class TrainStep:
    """The compiled optimizer step(s) of one run: minimise the :class:`~lenet_cli.model.objective.Objective`.

    :meth:`run_chunk` trains on ordered batches in as few compiled calls as
    possible and returns per-example sums of each log: ``cross_entropy`` and
    ``correct`` over every image, and the penalty terms (``l1``, ``l2``,
    per-layer) over the steps where they were measured, whose images are
    counted in ``penalty_images``. The penalty's value is measured on the first
    step of each compiled call (every ``STEPS_PER_CALL``-th step, and every
    step of a distributed run): its gradient is applied on every step, its
    value is only logged, so the logged mean is exact for the steps it covers.
    """

    def __init__(self, model, optimizer, objective, trainable, distribution=None, augmentation=None):
        tf = import_tensorflow()
        from lenet_cli.core.inputs import scale_pixels
        from lenet_cli.model.network import logits_and_probabilities

        view = logits_and_probabilities(model)
        optimizer.build(trainable)
        self.objective = objective
        self.optimizer = optimizer
        self.trainable = trainable
        self.augmentation = augmentation

        def inputs(x):
            """Scaled pixels, augmented (training only) inside the compiled step."""
            x = scale_pixels(x)
            return augmentation(x, training=True) if augmentation is not None else x

        self.keys = ["cross_entropy", "correct", "penalty_images", *PENALTY_KEYS, *objective.term_names]
        self.distributed = distribution is not None
        if self.distributed:
            from lenet_cli.model.distributed import distributed_train_step

            self.step = distributed_train_step(distribution, view, objective, trainable, optimizer, inputs)
            # several steps per call: single device only
            self.steps: Callable[[np.ndarray, np.ndarray], dict[str, Any]] | None = None
            return
        size = C.IMAGE_SIZE
        penalty_names = [*PENALTY_KEYS, *objective.term_names]

        def train_on(x, y, measure):
            """One optimizer step; where ``measure`` holds, also the penalty's value on the weights the step starts from."""
            n = tf.cast(tf.shape(y)[0], tf.float32)
            terms = tf.cond(
                measure,
                lambda: {k: v * n for k, v in objective.penalties().items()},  # per-example sums
                lambda: {k: tf.constant(0.0) for k in penalty_names},
            )
            with tf.GradientTape() as tape:
                logits, _ = view(inputs(x), training=True)
                loss, cross_entropy_sum = objective.data_loss(y, logits, tf.shape(y)[0])
            grads = objective.add_penalty_gradients(tape.gradient(loss, trainable), trainable)
            optimizer.apply_gradients(zip(grads, trainable))
            correct = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), y), tf.float32))
            return {
                "cross_entropy": cross_entropy_sum,
                "correct": correct,
                "penalty_images": tf.where(measure, n, 0.0),
                **terms,
            }

        @tf.function(input_signature=[tf.TensorSpec([None, size, size], tf.uint8), tf.TensorSpec([None], tf.int32)])
        def step(x, y):
            return train_on(x, y, tf.constant(True))

        @tf.function(
            input_signature=[tf.TensorSpec([None, None, size, size], tf.uint8), tf.TensorSpec([None, None], tf.int32)]
        )
        def steps(xs, ys):
            """Several steps in one call (like Keras's ``steps_per_execution``); the penalty is measured on the first."""
            sums = {k: tf.constant(0.0) for k in self.keys}
            for i in tf.range(tf.shape(xs)[0]):
                out = train_on(xs[i], ys[i], tf.equal(i, 0))
                sums = {k: sums[k] + out[k] for k in self.keys}
            return sums

        self.step = step
        self.steps = steps

    @classmethod
    def for_config(cls, cfg: TrainConfig, model, optimizer, distribution=None) -> TrainStep:
        """The step of ``cfg``'s objective over the layers that train (all but ``cfg.freeze``), with its augmentation."""
        from lenet_cli.model.augmentation import build_augmentation
        from lenet_cli.model.objective import Objective

        trainable = [
            w for name in C.WEIGHT_LAYERS if name not in cfg.freeze for w in model.get_layer(name).trainable_weights
        ]
        objective = Objective(model, cfg.l1, cfg.weight_decay, cfg.freeze, label_smoothing=cfg.label_smoothing)
        augmentation = build_augmentation(cfg.augment, cfg.seed)
        if augmentation is not None:
            augmentation.build((None, *C.INPUT_SHAPE))
        return cls(model, optimizer, objective, trainable, distribution, augmentation)

    @contextlib.contextmanager
    def shipped_weights(self):
        """Within the block the model holds the weights that ship: the moving average with EMA, else the last ones."""
        if not self.optimizer.use_ema:
            yield
            return
        saved = [variable.numpy() for variable in self.trainable]
        self.optimizer.finalize_variable_values(self.trainable)
        try:
            yield
        finally:
            for variable, value in zip(self.trainable, saved):
                variable.assign(value)

    def run_chunk(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        lo: int,
        batch_size: int,
        full_batches: int,
        signum: int | None = None,
    ) -> tuple[dict, int, int, int | None]:
        """Train from batch ``lo // batch_size``: several full batches in one call where possible.

        ``signum`` is a stop signal this process received. A single device
        stops before the step; workers of a distributed run share theirs in the
        step's all-reduce, so every worker learns of any one's signal at the same
        step and all stop together.

        Returns:
            ``(per-example sums, batches done, images done, the signal every worker stops on, or None)``.
        """
        if self.distributed:
            hi = min(lo + batch_size, len(images))
            out = {k: float(v) for k, v in self.step(images[lo:hi], labels[lo:hi], signum or 0).items()}
            return out, 1, hi - lo, _agreed_signal(out.pop("stop_sigint"), out.pop("stop_sigterm"))
        if signum:
            return {}, 0, 0, signum
        first = lo // batch_size
        steps = self.steps
        chunk = min(STEPS_PER_CALL, full_batches - first) if steps is not None else 0
        if steps is not None and chunk >= 2:
            hi = lo + chunk * batch_size
            size = C.IMAGE_SIZE
            out = steps(images[lo:hi].reshape(chunk, batch_size, size, size), labels[lo:hi].reshape(chunk, batch_size))
            return {k: float(v) for k, v in out.items()}, chunk, hi - lo, None
        hi = min(lo + batch_size, len(images))
        return {k: float(v) for k, v in self.step(images[lo:hi], labels[lo:hi]).items()}, 1, hi - lo, None


def penalty_means(sums: dict[str, float], keys) -> dict[str, float]:
    """Each penalty term's mean over the steps where it was measured (per-example sums over ``penalty_images``)."""
    return {key: sums[key] / sums["penalty_images"] for key in keys}


def _agreed_signal(sigint: float, sigterm: float) -> int | None:
    """The signal all workers stop on: SIGTERM if any worker got one, else SIGINT if any did."""
    import signal

    return signal.SIGTERM if sigterm > 0 else signal.SIGINT if sigint > 0 else None
