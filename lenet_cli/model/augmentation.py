"""Training-time augmentation: named policies of Keras's own ``Random*`` preprocessing layers and a few of lenet's.

A policy is a ``keras.Sequential`` applied inside the compiled training step
with ``training=True``, on float inputs in ``[0, 1]`` (black background), so
it costs no Python per batch and never reaches the saved model: the shipped
network stays the seed's. Each layer takes its own ``seed``, so a run is
reproducible, and its random state is checkpointed with the model's. Where
Keras has no layer for a transform (elastic distortion, stroke thickness,
low resolution, tone curves), :mod:`lenet_cli.model.augmentation_layers` has one.

Policies (``--augment``):

* ``none``: the images as they are.
* ``shift``: random translations of up to 2 pixels (MNIST's digits are
  centred by mass, so the network sees the small offsets real pictures have).
* ``flip``: random horizontal flips; right for clothing, never for digits.
* ``flip-shift``: both.
* ``digits``: shift plus rotations up to 8 degrees and zooms up to 8 %: the
  slant and size of real handwriting, without flips.
* ``clothing``: flips, shifts and random erasing of a small patch
  (DeVries & Taylor's cutout, Zhong et al.'s random erasing).
* ``writers``: how other people write: elastic distortion (Simard et al.,
  2003), a thicker or thinner pen, rotation, now and then a low-resolution
  scan (the digit 8-12 px tall, blown up again), and shifts. No slant:
  shearing by up to 0.3 turns a 2 whose diagonal becomes upright into a
  continental 1 with its flag and foot, and short runs trained with it
  read every continental 1 as a 2.
* ``writers-tones``: ``writers``, then another scanner's or camera's tone
  curve on the ink (a faint pencil, a heavy marker, a grey scan).
* ``shift-lowres``: shifts, and for 30 % of the images a low-resolution
  scan (the digit 8-12 px tall, area-averaged, enlarged back bilinear): the
  8x8 scans of other scanners and old forms, without ``writers``'
  distortions of the hand.
* ``tones``: flips, and another camera's tone curve on the article's
  darkness (gamma 0.4-2.5, contrast 0.6-1.2 against the black background).
"""

from __future__ import annotations

from typing import Any

from lenet_cli.core.config import AUGMENTATIONS, IMAGE_SIZE
from lenet_cli.data.preprocess.settings import MNIST_BOX

SHIFT_PIXELS = 2
ROTATION_DEGREES = 8.0
ZOOM = 0.08
ERASING_SCALE = (0.02, 0.12)  # share of the image a random-erasing patch covers
ELASTIC_ALPHA, ELASTIC_SIGMA = 34.0, 4.0  # Simard et al.'s MNIST values: ~1.4 px rms displacement, smooth over ~4 px
THICKNESS = (-0.5, 1.0)  # share of the way to a 3x3 grey erosion (< 0) or dilation (> 0), per image
LOW_RESOLUTION_DIGIT = (8, 12)  # the digit's height in a low-resolution scan, pixels
LOW_RESOLUTION_RATE = 0.3  # share of images scanned at low resolution
TONE_GAMMA = (0.4, 2.5)  # darkness ** gamma, log-uniform
TONE_GAIN = (0.6, 1.2)  # contrast of the content against the black background

_LAYERS: dict[str, tuple[str, ...]] = {
    "none": (),
    "shift": ("translation",),
    "flip": ("flip",),
    "flip-shift": ("flip", "translation"),
    "digits": ("rotation", "zoom", "translation"),
    "clothing": ("flip", "translation", "erasing"),
    "writers": ("elastic", "thickness", "rotation", "lowres", "translation"),
    "writers-tones": ("elastic", "thickness", "rotation", "lowres", "translation", "tones"),
    "shift-lowres": ("lowres", "translation"),
    "tones": ("flip", "tones"),
}


def policy_layers(policy: str) -> tuple[str, ...]:
    """The named transforms of ``policy``, in the order they are applied.

    Raises:
        ValueError: an unknown policy name.
    """
    if policy not in _LAYERS:
        raise ValueError(f"unknown augmentation policy {policy!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    return _LAYERS[policy]


def _layer(kind: str, index: int, seed: int | None):
    from keras import layers

    from lenet_cli.model import augmentation_layers as own

    name = f"augment_{index}_{kind}"
    shift = SHIFT_PIXELS / IMAGE_SIZE
    if kind == "translation":
        return layers.RandomTranslation(shift, shift, fill_mode="constant", fill_value=0.0, seed=seed, name=name)
    if kind == "flip":
        return layers.RandomFlip("horizontal", seed=seed, name=name)
    if kind == "rotation":
        return layers.RandomRotation(
            ROTATION_DEGREES / 360.0, fill_mode="constant", fill_value=0.0, seed=seed, name=name
        )
    if kind == "zoom":
        return layers.RandomZoom(ZOOM, ZOOM, fill_mode="constant", fill_value=0.0, seed=seed, name=name)
    if kind == "erasing":
        return layers.RandomErasing(
            factor=0.5, scale=ERASING_SCALE, fill_value=0.0, value_range=(0.0, 1.0), seed=seed, name=name
        )
    if kind == "elastic":
        return own.ElasticDistortion(ELASTIC_ALPHA, ELASTIC_SIGMA, seed=seed, name=name)
    if kind == "thickness":
        return own.StrokeThickness(THICKNESS, seed=seed, name=name)
    if kind == "lowres":
        sides = tuple(
            round(IMAGE_SIZE * pixels / MNIST_BOX) for pixels in LOW_RESOLUTION_DIGIT
        )  # the whole 28 px frame
        return own.LowResolution(sides, LOW_RESOLUTION_RATE, seed=seed, name=name)
    if kind == "tones":
        return own.ToneCurve(TONE_GAMMA, TONE_GAIN, seed=seed, name=name)
    raise ValueError(f"unknown transform {kind!r}")


def build_augmentation(policy: str, seed: int | None = None):
    """The policy as a ``keras.Sequential`` (``None`` for ``none``), each layer seeded from ``seed``."""
    kinds = policy_layers(policy)
    if not kinds:
        return None
    import keras

    return keras.Sequential(
        [_layer(kind, i, None if seed is None else seed + 101 + i) for i, kind in enumerate(kinds)],
        name=f"augment_{policy.replace('-', '_')}",
    )


def describe(policy: str, seed: int | None = None) -> list[dict[str, Any]]:
    """Exactly what ``policy`` applies: each layer's class and Keras config (saved in the run's config.json)."""
    augmentation = build_augmentation(policy, seed)
    if augmentation is None:
        return []
    return [
        {
            "layer": type(layer).__name__,
            "config": {k: v for k, v in layer.get_config().items() if k not in ("dtype", "trainable")},
        }
        for layer in augmentation.layers
    ]
