"""The training-time augmentations Keras does not ship, as small seeded layers.

Each works on a batch of float images in ``[0, 1]`` with a black background
(channels last), draws its randomness per image from its own
``keras.random.SeedGenerator`` (so a run is reproducible and the state is
checkpointed), changes nothing when called with ``training=False``, and has
a plain config (``config.json`` records it). They are applied inside the
compiled training step by :mod:`lenet_cli.model.augmentation` and never reach
the saved model.

* :class:`ElasticDistortion`: Simard et al. (2003), the classic MNIST
  augmentation. Keras 3's ``RandomElasticTransform`` draws one strength per
  batch, ties the field's smoothness to its strength and, on TensorFlow,
  draws the same field for x and y and needs a static batch size, so it is
  not used.
* :class:`StrokeThickness`: a pen's width: grey dilation or erosion.
* :class:`LowResolution`: a scan at a few pixels per digit, upscaled again.
* :class:`ToneCurve`: another camera's tone curve on the darkness of an
  article. Keras's ``RandomContrast`` pivots on the image's mean and
  ``RandomBrightness`` shifts every pixel, so both would lift the black
  background, which lenet's preprocessing never delivers; here black stays black.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

__all__ = ["ElasticDistortion", "LowResolution", "StrokeThickness", "ToneCurve"]


def _range(value, name: str, low: float | None = None) -> tuple[float, float]:
    """A ``(low, high)`` pair from a pair, refusing a reversed or out-of-bounds one."""
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high). Received: {name}={value!r}") from None
    if lo > hi or (low is not None and lo < low):
        raise ValueError(
            f"{name} must be (low, high) with {low if low is not None else '-inf'} <= low <= high. Received: {name}={value!r}"
        )
    return lo, hi


def _per_image(images, shape_tail=(1, 1, 1)):
    return (ops.shape(images)[0], *shape_tail)


class _ImageAugmentation(layers.Layer):
    """Shared plumbing: a seed generator, identity at inference, float32 arithmetic."""

    def __init__(self, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_masking = False

    def call(self, inputs, training=True):
        if not training:
            return inputs
        images = ops.cast(inputs, "float32")
        return ops.cast(self.augment(images), inputs.dtype)

    def augment(self, images):  # pragma: no cover - each subclass defines it
        raise NotImplementedError

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["seed"] = self.seed
        return config


@keras.saving.register_keras_serializable(package="lenet")
class ElasticDistortion(_ImageAugmentation):
    """Simard, Steinkraus and Platt (2003): every pixel moves along a smooth random field.

    Per image, ``dx`` and ``dy`` are drawn uniform in ``[-1, 1]`` at every
    pixel, smoothed by a Gaussian of ``sigma`` pixels and scaled by
    ``alpha``; the image is resampled bilinearly at ``(y + dy, x + dx)``,
    black outside. The paper's MNIST values (``alpha`` 34, ``sigma`` 4) move
    pixels by about 1.4 px (rms), bending strokes the way different writers do.
    """

    def __init__(self, alpha: float = 34.0, sigma: float = 4.0, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if alpha < 0 or sigma <= 0:
            raise ValueError(
                f"ElasticDistortion needs alpha >= 0 and sigma > 0. Received: alpha={alpha}, sigma={sigma}"
            )
        self.alpha = float(alpha)
        self.sigma = float(sigma)

    def augment(self, images):
        height, width = images.shape[1], images.shape[2]
        field = keras.random.uniform((ops.shape(images)[0], 2, height, width), -1.0, 1.0, seed=self.seed_generator)
        # the Gaussian (zero outside the image) as two small matrix products: far cheaper than a 25-tap convolution
        down = ops.convert_to_tensor(gaussian_matrix(height, self.sigma) * self.alpha)
        across = ops.convert_to_tensor(gaussian_matrix(width, self.sigma).T)
        field = ops.matmul(ops.matmul(down, field), across)
        rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
        cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
        return sample_bilinear(images, rows + field[:, 0], cols + field[:, 1])

    def get_config(self):
        config = super().get_config()
        config.update(alpha=self.alpha, sigma=self.sigma)
        return config


def gaussian_matrix(size: int, sigma: float) -> np.ndarray:
    """The ``size x size`` matrix that smooths a vector with a Gaussian of ``sigma`` (3 sigma wide, zero outside)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = np.arange(size)[None, :] - np.arange(size)[:, None]
    taps = np.exp(-0.5 * (offsets / sigma) ** 2) * (np.abs(offsets) <= radius)
    full = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).sum()
    return (taps / full).astype(np.float32)


def sample_bilinear(images, y, x):
    """``images`` (B, H, W, C) read at float positions ``y``, ``x`` (B, H, W), black outside."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    padded = ops.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]])
    flat = ops.reshape(padded, (-1, channels))
    y0, x0 = ops.floor(y), ops.floor(x)
    wy, wx = (y - y0)[..., None], (x - x0)[..., None]
    y0, x0 = ops.cast(y0, "int32") + 1, ops.cast(x0, "int32") + 1  # indices into the padded image
    base = ops.reshape(ops.arange(ops.shape(images)[0], dtype="int32") * ((height + 2) * (width + 2)), (-1, 1, 1))

    def at(row, col):
        row = ops.clip(row, 0, height + 1)  # anything outside lands on the black padding
        col = ops.clip(col, 0, width + 1)
        return ops.take(flat, base + row * (width + 2) + col, axis=0)

    top = at(y0, x0) * (1 - wx) + at(y0, x0 + 1) * wx
    bottom = at(y0 + 1, x0) * (1 - wx) + at(y0 + 1, x0 + 1) * wx
    return top * (1 - wy) + bottom * wy


def grey_morphology(images, reduce):
    """3x3 grey dilation (``reduce=ops.maximum``) or erosion (``ops.minimum``), each pixel's neighbours within the image.

    Shifted slices, rows then columns: several times faster on a CPU than a
    one-channel ``max_pool``.
    """
    height, width = images.shape[1], images.shape[2]
    edge = [[0, 0], [1, 1], [0, 0], [0, 0]]
    padded = ops.pad(images, edge, mode="symmetric")  # the edge pixel repeated: neutral for max and min
    rows = reduce(reduce(padded[:, :height], padded[:, 1 : height + 1]), padded[:, 2:])
    padded = ops.pad(rows, [[0, 0], [0, 0], [1, 1], [0, 0]], mode="symmetric")
    return reduce(reduce(padded[:, :, :width], padded[:, :, 1 : width + 1]), padded[:, :, 2:])


@keras.saving.register_keras_serializable(package="lenet")
class StrokeThickness(_ImageAugmentation):
    """A thicker or thinner pen: grey dilation (3x3 max) or erosion (3x3 min), in part, per image.

    Each image draws ``t`` uniform in ``factor``: ``t > 0`` moves it ``t`` of
    the way to its dilation (full dilation widens a stroke by about 2 px),
    ``t < 0`` moves it ``-t`` of the way to its erosion, 0 leaves it.
    """

    def __init__(self, factor=(-0.5, 1.0), seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.factor = _range(factor, "factor")
        if self.factor[0] < -1.0 or self.factor[1] > 1.0:
            raise ValueError(f"StrokeThickness factor must lie in [-1, 1]. Received: factor={factor!r}")

    def augment(self, images):
        t = keras.random.uniform(_per_image(images), *self.factor, seed=self.seed_generator)
        thicker = grey_morphology(images, ops.maximum)
        thinner = grey_morphology(images, ops.minimum)
        return images + ops.relu(t) * (thicker - images) + ops.relu(-t) * (thinner - images)

    def get_config(self):
        config = super().get_config()
        config["factor"] = list(self.factor)
        return config


def scan_matrix(size: int, side: int) -> np.ndarray:
    """The ``size x size`` matrix that shrinks a line of ``size`` pixels to ``side`` (area average) and enlarges it back (bilinear)."""
    scale = size / side
    edges = np.arange(side + 1) * scale
    pixel = np.arange(size)
    shrink = (
        np.clip(np.minimum(edges[1:, None], pixel[None, :] + 1) - np.maximum(edges[:-1, None], pixel[None, :]), 0, None)
        / scale
    )
    centres = np.clip((np.arange(size) + 0.5) / scale - 0.5, 0, side - 1)
    below = np.floor(centres).astype(int)
    above = np.minimum(below + 1, side - 1)
    weight = centres - below
    enlarge = np.zeros((size, side))
    np.add.at(enlarge, (np.arange(size), below), 1 - weight)
    np.add.at(enlarge, (np.arange(size), above), weight)
    return (enlarge @ shrink).astype(np.float32)


@keras.saving.register_keras_serializable(package="lenet")
class LowResolution(_ImageAugmentation):
    """A low-resolution scan: with probability ``rate``, the image shrunk to a side in ``sizes`` and enlarged back.

    The side is drawn per image from ``sizes`` (inclusive); shrinking
    averages areas and enlarging is bilinear, so the strokes come back
    blurred, as a few-pixel scan blown up does.
    """

    def __init__(self, sizes=(11, 17), rate: float = 0.3, seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        lo, hi = _range(sizes, "sizes", low=2)
        if lo != int(lo) or hi != int(hi):
            raise ValueError(f"LowResolution sizes must be whole pixels. Received: sizes={sizes!r}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"LowResolution rate must lie in [0, 1]. Received: rate={rate!r}")
        self.sizes = (int(lo), int(hi))
        self.rate = float(rate)

    def augment(self, images):
        height, width = images.shape[1], images.shape[2]
        sides = range(self.sizes[0], self.sizes[1] + 1)
        # shrinking and enlarging are linear: one (H x H) and one (W x W) matrix per side, picked per image
        down = ops.convert_to_tensor(np.stack([scan_matrix(height, side) for side in sides]))
        across = ops.convert_to_tensor(np.stack([scan_matrix(width, side).T for side in sides]))
        pick = keras.random.randint((ops.shape(images)[0],), 0, len(sides), seed=self.seed_generator)
        channels_first = ops.transpose(images, (0, 3, 1, 2))
        low = ops.matmul(
            ops.matmul(ops.take(down, pick, axis=0)[:, None], channels_first), ops.take(across, pick, axis=0)[:, None]
        )
        low = ops.clip(ops.transpose(low, (0, 2, 3, 1)), 0.0, 1.0)
        apply = keras.random.uniform(_per_image(images), seed=self.seed_generator) < self.rate
        return ops.where(apply, low, images)

    def get_config(self):
        config = super().get_config()
        config.update(sizes=list(self.sizes), rate=self.rate)
        return config


@keras.saving.register_keras_serializable(package="lenet")
class ToneCurve(_ImageAugmentation):
    """Another camera's tone curve on an article's darkness: ``gain * x ** gamma``, black kept black.

    Per image, ``gamma`` is drawn log-uniform in ``gamma`` (below 1 lightens
    the mid-tones of the content, above 1 darkens them) and ``gain``
    uniform in ``gain`` (the contrast of the content against the black
    background: a lighter or darker exposure once preprocessing has removed
    the paper), and the result is clipped to ``[0, 1]``.
    """

    def __init__(self, gamma=(0.4, 2.5), gain=(0.6, 1.2), seed: int | None = None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        self.gamma = _range(gamma, "gamma")
        self.gain = _range(gain, "gain", low=0.0)
        if self.gamma[0] <= 0:
            raise ValueError(f"ToneCurve gamma must be positive. Received: gamma={gamma!r}")

    def augment(self, images):
        log_gamma = keras.random.uniform(
            _per_image(images), math.log(self.gamma[0]), math.log(self.gamma[1]), seed=self.seed_generator
        )
        gain = keras.random.uniform(_per_image(images), *self.gain, seed=self.seed_generator)
        return ops.clip(gain * ops.power(ops.clip(images, 0.0, 1.0), ops.exp(log_gamma)), 0.0, 1.0)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=list(self.gamma), gain=list(self.gain))
        return config
