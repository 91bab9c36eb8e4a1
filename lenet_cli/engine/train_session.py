"""What one run trains with: the model, its optimizer and step, and the predictors that score what ships.

Built once per run by :func:`build_session` and read by both the epoch loop
(:mod:`lenet_cli.engine.trainer`) and the finishing step
(:mod:`lenet_cli.engine.train_finish`), so it lives below both of them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import config as C
from lenet_cli.core.config import TrainConfig
from lenet_cli.core.errors import DataError
from lenet_cli.core.tensorflow_env import import_tensorflow
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.model.train_step import TrainStep, load_initial_weights, make_optimizer


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
class Session:
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


def build_session(
    cfg: TrainConfig, data: Dataset, runs_dir, resume: bool, deterministic: bool, distribution
) -> Session:
    """The model (with any warm start and frozen layers), its optimizer, objective, step and predictor."""
    tf = import_tensorflow()
    import keras

    from lenet_cli.core.mirror import answering
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
    predictor = answering(one_view, cfg.test_time_flip)
    return Session(cfg, model, optimizer, step, predictor, steps_per_epoch, shipped, one_view)
