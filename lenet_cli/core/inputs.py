"""The network's input, defined once: uint8 pixels scaled to ``[0, 1]``, shape ``(n, 28, 28, 1)``.

Datasets store uint8 ``(n, 28, 28)`` images; the network sees
``pixel / PIXEL_MAX`` as float32 with a channel axis. Numpy callers (exports,
TensorFlow-free runtimes) use :func:`as_model_input`; compiled TensorFlow code
(the training step, the predictor) scales inside the graph with
:func:`scale_pixels`, so only a quarter of the bytes cross into TensorFlow.
"""

from __future__ import annotations

import numpy as np

from lenet_cli.core.config import INPUT_SHAPE, PIXEL_MAX


def as_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 ``(n, 28, 28)`` or float ``(n, 28, 28[, 1])`` -> contiguous float32 ``(n, 28, 28, 1)`` in [0, 1]."""
    images = np.asarray(images)
    if images.ndim == len(INPUT_SHAPE):
        images = images[..., None]
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(PIXEL_MAX)
    return np.ascontiguousarray(images, dtype=np.float32)


def scale_pixels(images):
    """The graph version of :func:`as_model_input` for a uint8 ``(n, 28, 28)`` tensor (any Keras backend)."""
    from keras import ops

    return ops.expand_dims(ops.cast(images, "float32"), -1) / PIXEL_MAX
