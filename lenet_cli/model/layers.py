"""The one layer Keras does not ship, registered with Keras so any ``model.keras`` lenet saved loads anywhere.

Importing this module is all plain Keras needs to open a run's model::

    import keras
    import lenet_cli.model.layers  # registers "lenet>LocalResponseNormalization"

    model = keras.models.load_model("runs/mnist-20261127-101500/model.keras")

It imports Keras and numpy only (no other lenet module), and the layer has a
plain config, so the model loads with ``safe_mode=True`` and no code from the
file runs. Without the import, pass it instead:
``custom_objects={"lenet>LocalResponseNormalization": LocalResponseNormalization}``.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from lenet_cli.core import config as C

__all__ = ["LocalResponseNormalization"]


@keras.saving.register_keras_serializable(package="lenet")
class LocalResponseNormalization(layers.Layer):
    """Cross-channel local response normalization, as ``tf.nn.local_response_normalization``.

    ``out = x / (bias + alpha * sum_{|j-c| <= depth_radius} x_j^2) ** beta``
    (channels last). A registered layer with a plain config, so a saved model
    reloads with ``safe_mode=True`` and no code runs from the file.
    """

    def __init__(self, depth_radius=C.LRN_DEPTH_RADIUS, bias=C.LRN_BIAS, alpha=C.LRN_ALPHA, beta=C.LRN_BETA, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        # The windowed sum of squares over channels is one matmul with a 0/1 band
        # matrix: the same arithmetic as TensorFlow's LRN op, but its gradient is
        # a matmul too, where the native LRNGrad kernel is slow and single-threaded
        # on a CPU (bench/RESULTS.md). A constant, not a weight: saved files are unchanged.
        channels = inputs.shape[-1]
        index = np.arange(channels)
        band = (np.abs(index[:, None] - index[None, :]) <= self.depth_radius).astype(np.float32)
        squared = ops.reshape(ops.square(inputs), (-1, channels))
        sums = ops.reshape(ops.matmul(squared, ops.convert_to_tensor(band, dtype=inputs.dtype)), ops.shape(inputs))
        scale = self.bias + self.alpha * sums
        if self.beta == 0.5:
            return inputs * ops.rsqrt(scale)
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta)
        return config
