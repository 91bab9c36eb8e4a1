"""Training throughput: lenet's loop vs a plain ``model.fit`` of the same network, same batch size.

Each side trains ``epochs`` epochs on the same in-memory training split; the
figure is images/s over the epochs after the first (tracing and warm-up
excluded for both). The baseline is what a person would write with Keras for
the same objective: ``compile`` + ``fit`` on numpy arrays, with the seed's
L1 and weight-decay terms as kernel regularizers (``L1L2(l1, weight_decay / 2)``).

The baseline runs twice: in a fresh process under TensorFlow's own defaults
(what ``pip install tensorflow`` gives a person), and in lenet's process with
lenet's TensorFlow settings (oneDNN on), so the gain from settings and the gain
from the loop are reported apart. A third side is the fit a person would write
by hand: the same, but with TensorFlow's own ``tf.nn.local_response_normalization``
op where lenet's model computes LRN as a band matmul (lenet's settings too).
"""

from __future__ import annotations

import time

import numpy as np


def measure_lenet(data, epochs: int, batch_size: int, learning_rate: float = 1e-3) -> list[float]:
    import tempfile
    from pathlib import Path

    from lenet_cli.core.config import resolve_config
    from lenet_cli.engine.trainer import LoopPlan, train

    cfg = resolve_config(data.name, epochs=epochs, batch_size=batch_size, augment="none", learning_rate=learning_rate)
    with tempfile.TemporaryDirectory() as tmp:
        result = train(LoopPlan(cfg, data, Path(tmp), tensorboard=False))
    return [h["images_per_second"] for h in result.history]


def _tensorflow_lrn_layer():
    """A layer that calls TensorFlow's own LRN op with the network's constants: what a person writes by hand."""
    import keras
    import tensorflow as tf

    from lenet_cli.core import config as C

    class TensorFlowLRN(keras.layers.Layer):
        def call(self, inputs):
            return tf.nn.local_response_normalization(
                inputs, depth_radius=C.LRN_DEPTH_RADIUS, bias=C.LRN_BIAS, alpha=C.LRN_ALPHA, beta=C.LRN_BETA
            )

    return TensorFlowLRN


def measure_plain_fit(
    data, epochs: int, batch_size: int, learning_rate: float = 1e-3, tensorflow_lrn: bool = False
) -> list[float]:
    """images/s per epoch of ``compile`` + ``fit``; ``tensorflow_lrn`` swaps lenet's LRN layers for TensorFlow's op."""
    import keras

    from lenet_cli.core.config import WEIGHT_LAYERS, TrainConfig
    from lenet_cli.core.inputs import as_model_input
    from lenet_cli.model.network import build_lenet

    keras.utils.set_random_seed(0)
    model = build_lenet(seed=0)
    defaults = TrainConfig()
    for name in WEIGHT_LAYERS:
        model.get_layer(name).kernel_regularizer = keras.regularizers.L1L2(l1=defaults.l1, l2=defaults.weight_decay / 2)
    config = model.get_config()
    custom = {}
    if tensorflow_lrn:
        for layer in config["layers"]:
            if layer["class_name"] == "LocalResponseNormalization":
                layer.update(class_name="TensorFlowLRN", module=None, registered_name="TensorFlowLRN")
                layer["config"] = {"name": layer["config"]["name"], "dtype": layer["config"].get("dtype")}
        custom = {"TensorFlowLRN": _tensorflow_lrn_layer()}
    model = keras.Model.from_config(config, custom_objects=custom)  # rebuild so the regularizers are attached
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    x = as_model_input(data.train.images)
    y = data.train.labels.astype(np.int32)
    rates = []

    class Rate(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            rates.append(len(x) / (time.perf_counter() - self.t))

    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=[Rate()])
    return rates


def run(data, epochs: int = 4, batch_size: int = 128, baseline_source: dict | None = None, rounds: int = 2) -> dict:
    """lenet and three baselines, in ``rounds`` interleaved rounds: plain fit under TensorFlow's defaults, plain fit in
    this process, and the by-hand fit with TensorFlow's LRN op in this process.

    Each run trains ``epochs`` epochs; its first epoch (tracing, warm-up) is
    dropped and the figure is the median of the remaining epochs over all
    rounds. ``model.fit`` is bimodal on this machine (an epoch runs at one of
    two speeds), and the shared VM drifts, so single epochs mislead.

    ``baseline_source`` (``data_dir``, ``train_limit``, ``validation_size``) lets a fresh process
    load the same split for the TensorFlow-defaults baseline; without it that baseline is skipped.
    """
    from bench.baseline import run_with_tensorflow_defaults

    lenet, plain, by_hand, defaults, onednn = [], [], [], [], None
    for _ in range(rounds):
        lenet.append(measure_lenet(data, epochs, batch_size))
        by_hand.append(measure_plain_fit(data, epochs, batch_size, tensorflow_lrn=True))
        if baseline_source is not None:
            src = baseline_source
            limit = ["--train-limit", src["train_limit"]] if src.get("train_limit") else []
            out = run_with_tensorflow_defaults(
                "fit",
                "--dataset",
                data.name,
                "--data-dir",
                src["data_dir"],
                *limit,
                "--validation-size",
                src["validation_size"],
                "--epochs",
                epochs,
                "--batch-size",
                batch_size,
            )
            defaults.append(out["rates"])
            onednn = out["onednn"]
        plain.append(measure_plain_fit(data, epochs, batch_size))

    def steady(runs):
        rates = [rate for run in runs for rate in (run[1:] if len(run) > 1 else run)]
        return float(np.median(rates))

    result = {
        "batch_size": batch_size,
        "epochs_per_run": epochs,
        "rounds": rounds,
        "lenet_images_per_second": steady(lenet),
        "plain_fit_same_settings_images_per_second": steady(plain),
        "ratio_same_settings": steady(lenet) / steady(plain),
        "by_hand_tensorflow_lrn_images_per_second": steady(by_hand),
        "ratio_by_hand": steady(lenet) / steady(by_hand),
        "lenet_per_epoch": lenet,
        "plain_same_settings_per_epoch": plain,
        "by_hand_per_epoch": by_hand,
    }
    if defaults:
        result.update(
            plain_fit_tf_defaults_images_per_second=steady(defaults),
            ratio_tf_defaults=steady(lenet) / steady(defaults),
            plain_tf_defaults_per_epoch=defaults,
            tf_defaults_onednn=onednn,
        )
    return result


if __name__ == "__main__":
    import json
    import sys

    from bench.common import data_dir
    from lenet_cli.core.tensorflow_env import import_tensorflow
    from lenet_cli.data.loader import load_dataset

    import_tensorflow()
    limit = int(sys.argv[1]) if len(sys.argv) > 1 else None
    data = load_dataset("mnist", data_dir(), train_limit=limit)
    print(json.dumps(run(data), indent=2))
