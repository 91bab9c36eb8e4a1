"""Attribution maps: which input pixels pushed a class's score up, and which pushed it down.

Two methods from the literature, each built from small functions that are
tested one by one:

* **Integrated Gradients** (Sundararajan, Taly and Yan, "Axiomatic
  Attribution for Deep Networks", ICML 2017). The attribution of pixel i is
  ``(x_i - x'_i) * mean over the straight path from the baseline x' to x of
  d logit_target / d x_i``; the mean is a trapezoid rule over ``steps``
  intervals. Its *completeness* axiom, ``sum(attributions) = logit(x) -
  logit(x')``, is what proves the whole: :func:`completeness_gap` measures it.
  It needs gradients, so only Keras models (TensorFlow) can use it;
  :func:`keras_logit_gradients` is the one TensorFlow piece, and it imports
  TensorFlow only when called.
* **Occlusion sensitivity** (Zeiler and Fergus, "Visualizing and
  Understanding Convolutional Networks", ECCV 2014). Slide a patch of
  ``fill`` over the input and record how much the target's log-odds fall; a
  pixel's attribution is the mean fall over the patches that cover it. It
  only calls a ``predict`` function (probabilities in, numpy out), so it runs
  on ``.onnx`` and ``.tflite`` models without TensorFlow.

No maintained library fits: tf-explain targets Keras 2 (its Keras 3 port is
an unmerged pull request), alibi pins old TensorFlow releases, and Captum is
PyTorch. The keras-io example "Integrated gradients" is the model for the
structure here.

Everything but :func:`keras_logit_gradients` is numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lenet_cli.core.errors import BadValue, DataError, ModelError

IG_STEPS = 50
"""Trapezoid intervals along the path; the paper suggests 20-300, keras-io uses 50."""

IG_GAP_LIMIT = 0.05
"""A completeness gap above 5 % (the paper's own check) says the trapezoid rule has not converged: the steps are doubled."""

IG_MAX_STEPS = 800
"""Doubling stops here (50, 100, 200, 400, 800); a gap still above :data:`IG_GAP_LIMIT` marks the map unreliable."""

OCCLUSION_PATCH = 4
OCCLUSION_STRIDE = 1
OCCLUSION_FILL = 0.0
"""Black, the background of both datasets' inputs: occluding with it removes ink."""

GradientFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
"""``(inputs (k, 28, 28, 1) float32, targets (k,) int) -> (target logits (k,), gradients (k, 28, 28, 1))``."""

PredictFn = Callable[[np.ndarray], np.ndarray]
"""``inputs (k, 28, 28, 1) float32 -> class probabilities (k, classes)``."""


def black_baseline(image: np.ndarray) -> np.ndarray:
    """The all-zero input: no ink at all, which both datasets' backgrounds are."""
    return np.zeros_like(np.asarray(image, dtype=np.float32))


def path_alphas(steps: int = IG_STEPS) -> np.ndarray:
    """``steps + 1`` evenly spaced points from 0 (the baseline) to 1 (the image), both ends included."""
    if steps < 1:
        raise BadValue("steps", f"integrated gradients needs at least 1 step. Received: {steps}")
    return np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)


def interpolate(baseline: np.ndarray, image: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Points on the straight line from ``baseline`` to ``image``: one per alpha, stacked on a new first axis."""
    baseline = np.asarray(baseline, dtype=np.float32)
    image = np.asarray(image, dtype=np.float32)
    alphas = np.asarray(alphas, dtype=np.float32).reshape((-1,) + (1,) * image.ndim)
    return baseline[None] + alphas * (image - baseline)[None]


def integral_approximation(gradients: np.ndarray) -> np.ndarray:
    """The path average of the gradients by the trapezoid rule over their first axis (the alphas, evenly spaced)."""
    gradients = np.asarray(gradients, dtype=np.float64)
    if gradients.shape[0] < 2:
        raise BadValue("gradients", f"the trapezoid rule needs at least 2 points. Received: {gradients.shape[0]}")
    return ((gradients[:-1] + gradients[1:]) / 2.0).mean(axis=0)


def completeness_gap(attributions: np.ndarray, logit_image: float, logit_baseline: float) -> float:
    """How far ``sum(attributions)`` is from ``logit(x) - logit(x')``, relative to that difference.

    0.0 is exact; 0.05 is 5 %. A difference near zero (the image scores like
    the baseline) is measured against 1e-6 instead, so the gap stays finite.
    """
    difference = float(logit_image) - float(logit_baseline)
    return abs(float(np.sum(attributions, dtype=np.float64)) - difference) / max(abs(difference), 1e-6)


def _images_and_targets(images, targets) -> tuple[np.ndarray, np.ndarray]:
    """``(n, h, w)`` float32 images (a channel axis dropped) and one int target each.

    Raises:
        DataError: the shapes do not pair up.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4:
        images = images[..., 0]
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    if images.ndim != 3 or len(images) != len(targets):
        raise DataError(
            f"need (n, h, w) images and one target each. Received: images {images.shape}, targets {targets.shape}"
        )
    return images, targets


def integrated_gradients_batch(
    gradient_fn: GradientFn,
    images: np.ndarray,
    targets: np.ndarray,
    baseline: np.ndarray | None = None,
    steps: int = IG_STEPS,
    max_batch: int = 1024,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integrated Gradients for many images at once, their paths sent through the network in large batches.

    Args:
        gradient_fn: Target logits and their input gradients for a batch (see :data:`GradientFn`).
        images: ``(n, 28, 28)`` or ``(n, 28, 28, 1)`` floats in [0, 1].
        targets: ``(n,)`` class index per image.
        baseline: One ``(28, 28[, 1])`` baseline for all images; default black.
        steps: Trapezoid intervals along each path.
        max_batch: Most path points per ``gradient_fn`` call (memory bound).

    Returns:
        ``(attributions (n, 28, 28), logit at the image (n,), logit at the baseline (n,))``;
        the logits are the path's end points, so completeness costs nothing extra.
    """
    images, targets = _images_and_targets(images, targets)
    base = (
        black_baseline(images[0] if len(images) else np.zeros((28, 28)))
        if baseline is None
        else np.asarray(baseline, np.float32)
    )
    if base.ndim == 3:
        base = base[..., 0]
    alphas = path_alphas(steps)
    points = len(alphas)
    per_call = max(1, max_batch // points)
    attributions = np.zeros(images.shape, dtype=np.float32)
    logit_image = np.zeros(len(images), dtype=np.float64)
    logit_baseline = np.zeros(len(images), dtype=np.float64)
    for start in range(0, len(images), per_call):
        chunk = images[start : start + per_call]
        paths = np.concatenate([interpolate(base, image, alphas) for image in chunk])[..., None]
        logits, gradients = gradient_fn(paths, np.repeat(targets[start : start + per_call], points))
        logits = np.asarray(logits).reshape(len(chunk), points)
        gradients = np.asarray(gradients).reshape(len(chunk), points, *images.shape[1:])
        for offset, image in enumerate(chunk):
            average = integral_approximation(gradients[offset])
            attributions[start + offset] = (image - base) * average
        logit_image[start : start + len(chunk)] = logits[:, -1]
        logit_baseline[start : start + len(chunk)] = logits[:, 0]
    return attributions, logit_image, logit_baseline


def integrated_gradients(
    gradient_fn: GradientFn, image: np.ndarray, target: int, baseline: np.ndarray | None = None, steps: int = IG_STEPS
) -> tuple[np.ndarray, float, float]:
    """Integrated Gradients for one image: ``(attributions (28, 28), logit(x), logit(baseline))``."""
    attributions, logit_image, logit_baseline = integrated_gradients_batch(
        gradient_fn, np.asarray(image)[None], np.array([target]), baseline, steps
    )
    return attributions[0], float(logit_image[0]), float(logit_baseline[0])


def escalation_steps(steps: int = IG_STEPS, max_steps: int = IG_MAX_STEPS) -> list[int]:
    """The step counts tried in turn: ``steps``, then doubled while under ``max_steps``, ending at ``max_steps``.

    ``escalation_steps(50, 800) == [50, 100, 200, 400, 800]``; asked for more
    than ``max_steps`` at the start, that is the only count.
    """
    counts = [int(steps)]
    while counts[-1] < max_steps:
        counts.append(min(counts[-1] * 2, int(max_steps)))
    return counts


@dataclass
class CheckedAttributions:
    """Integrated Gradients checked for completeness, per image.

    Attributes:
        attributions: ``(n, 28, 28)``.
        logit_image: The target's logit at each image, ``(n,)``.
        logit_baseline: And at the baseline.
        gaps: :func:`completeness_gap` of each map.
        steps_used: The trapezoid intervals each map was computed with.
        reliable: Whether each gap is within the limit.
    """

    attributions: np.ndarray
    logit_image: np.ndarray
    logit_baseline: np.ndarray
    gaps: np.ndarray
    steps_used: np.ndarray
    reliable: np.ndarray


def integrated_gradients_checked(
    gradient_fn: GradientFn,
    images: np.ndarray,
    targets: np.ndarray,
    baseline: np.ndarray | None = None,
    steps: int = IG_STEPS,
    gap_limit: float = IG_GAP_LIMIT,
    max_steps: int = IG_MAX_STEPS,
    max_batch: int = 1024,
) -> CheckedAttributions:
    """Integrated Gradients whose completeness gap is kept under ``gap_limit`` where more steps can do it.

    The images whose gap is above the limit are computed again with the steps
    doubled (:func:`escalation_steps`), the others are left as they are; a
    map still above the limit at ``max_steps`` is returned flagged
    unreliable. A gap that large means the trapezoid rule has not followed the
    logit along the path (a sharp rise in it that a few steps jump over), so
    the map is not the integral it claims to be.
    """
    images, targets = _images_and_targets(images, targets)
    maps, logit_image, logit_baseline = integrated_gradients_batch(
        gradient_fn, images, targets, baseline, steps, max_batch
    )
    gaps = np.array([completeness_gap(*row) for row in zip(maps, logit_image, logit_baseline)], dtype=np.float64)
    used = np.full(len(images), int(steps))
    for more in escalation_steps(steps, max_steps)[1:]:
        redo = np.nonzero(~(gaps <= gap_limit))[0]  # NaN counts as above
        if not len(redo):
            break
        again = integrated_gradients_batch(gradient_fn, images[redo], targets[redo], baseline, more, max_batch)
        maps[redo], logit_image[redo], logit_baseline[redo] = again
        gaps[redo] = [completeness_gap(*row) for row in zip(*again)]
        used[redo] = more
    return CheckedAttributions(maps, logit_image, logit_baseline, gaps, used, gaps <= gap_limit)


def target_log_odds(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``log p_t - log(sum of the other classes' p)`` per row.

    The other classes are summed, not taken as ``1 - p_t``, so a confident
    prediction (``p_t`` rounds to 1.0 in float32) keeps its resolution and
    occluding a stroke still registers.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64).reshape(-1)
    rows = np.arange(len(probabilities))
    tiny = np.finfo(np.float32).tiny
    target_p = probabilities[rows, targets]
    others = np.where(np.arange(probabilities.shape[1])[None, :] == targets[:, None], 0.0, probabilities).sum(axis=1)
    return np.log(np.maximum(target_p, tiny)) - np.log(np.maximum(others, tiny))


def occlusion_patches(
    size: int = 28, patch: int = OCCLUSION_PATCH, stride: int = OCCLUSION_STRIDE
) -> list[tuple[int, int]]:
    """Top-left corners of every patch position; the last row and column always reach the far edge."""
    if patch < 1 or patch > size:
        raise BadValue("patch", f"the occlusion patch must be 1 to {size} pixels. Received: {patch}")
    if stride < 1:
        raise BadValue("stride", f"the occlusion stride must be at least 1. Received: {stride}")
    starts = list(range(0, size - patch + 1, stride))
    if starts[-1] != size - patch:
        starts.append(size - patch)
    return [(y, x) for y in starts for x in starts]


def occlude(image: np.ndarray, corners: list[tuple[int, int]], patch: int, fill: float = OCCLUSION_FILL) -> np.ndarray:
    """One copy of ``image`` (28x28) per corner, with that patch set to ``fill``."""
    image = np.asarray(image, dtype=np.float32)
    copies = np.repeat(image[None], len(corners), axis=0)
    for index, (y, x) in enumerate(corners):
        copies[index, y : y + patch, x : x + patch] = fill
    return copies


def occlusion_sensitivity_batch(
    predict_fn: PredictFn,
    images: np.ndarray,
    targets: np.ndarray,
    patch: int = OCCLUSION_PATCH,
    stride: int = OCCLUSION_STRIDE,
    fill: float = OCCLUSION_FILL,
    max_batch: int = 2048,
) -> np.ndarray:
    """Occlusion maps for many images: ``(n, 28, 28)``, the mean fall in the target's log-odds per pixel.

    Positive: covering the pixel lowers the target's score (evidence for it);
    negative: covering it raises the score (evidence against).
    """
    images, targets = _images_and_targets(images, targets)
    size = images.shape[1]
    corners = occlusion_patches(size, patch, stride)
    coverage = np.zeros((size, size), dtype=np.float64)
    for y, x in corners:
        coverage[y : y + patch, x : x + patch] += 1.0
    per_image = len(corners) + 1  # the unoccluded image first
    per_call = max(1, max_batch // per_image)
    maps = np.zeros(images.shape, dtype=np.float32)
    for start in range(0, len(images), per_call):
        chunk = images[start : start + per_call]
        chunk_targets = targets[start : start + per_call]
        batch = np.concatenate([np.concatenate([image[None], occlude(image, corners, patch, fill)]) for image in chunk])
        scores = target_log_odds(predict_fn(batch[..., None]), np.repeat(chunk_targets, per_image)).reshape(
            len(chunk), per_image
        )
        for offset in range(len(chunk)):
            drops = scores[offset, 0] - scores[offset, 1:]
            total = np.zeros((size, size), dtype=np.float64)
            for drop, (y, x) in zip(drops, corners):
                total[y : y + patch, x : x + patch] += drop
            maps[start + offset] = total / coverage
    return maps


def occlusion_sensitivity(
    predict_fn: PredictFn,
    image: np.ndarray,
    target: int,
    patch: int = OCCLUSION_PATCH,
    stride: int = OCCLUSION_STRIDE,
    fill: float = OCCLUSION_FILL,
) -> np.ndarray:
    """The occlusion map of one image, ``(28, 28)``; see :func:`occlusion_sensitivity_batch`."""
    return occlusion_sensitivity_batch(predict_fn, np.asarray(image)[None], np.array([target]), patch, stride, fill)[0]


def keras_logit_gradients(model) -> GradientFn:
    """A :data:`GradientFn` over a lenet Keras model's ``logits_layer`` (before the softmax), compiled once.

    Logits, not probabilities: the softmax saturates for a confident answer,
    and completeness is stated for the score whose gradient is integrated.

    Raises:
        ModelError: the model has no ``logits_layer`` (not a lenet network).
    """
    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    from lenet_cli.model.network import logits_and_probabilities

    try:
        view = logits_and_probabilities(model)
    except ValueError:
        raise ModelError(
            "the model has no 'logits_layer', so integrated gradients cannot reach its logits; use method 'occlusion'"
        ) from None

    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32), tf.TensorSpec([None], tf.int32)],
        reduce_retracing=True,
    )
    def _gradients(inputs, targets):
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            logits, _ = view(inputs, training=False)
            picked = tf.gather(logits, targets, axis=1, batch_dims=1)
        # each row's logit depends on its own input only, so the gradient of the sum is every row's gradient
        return picked, tape.gradient(picked, inputs)

    def gradient_fn(inputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        picked, gradients = _gradients(tf.constant(inputs, tf.float32), tf.constant(np.asarray(targets, np.int32)))
        return picked.numpy(), gradients.numpy()

    return gradient_fn


def ink_mask(image: np.ndarray, dilate: int = 1) -> np.ndarray:
    """The input's non-zero pixels, grown by ``dilate`` pixels (4-neighbourhood): where the strokes are."""
    from lenet_cli.data.preprocess.image_ops import dilate as grow

    mask = np.asarray(image) > 0
    if mask.ndim == 3:
        mask = mask[..., 0]
    return grow(mask, dilate)


def mass_on_ink(attributions: np.ndarray, image: np.ndarray, dilate: int = 1) -> float:
    """The share of ``sum |attribution|`` that lies on :func:`ink_mask` (1.0 for an all-zero map)."""
    magnitude = np.abs(np.asarray(attributions, dtype=np.float64))
    total = magnitude.sum()
    if total == 0:
        return 1.0
    return float(magnitude[ink_mask(image, dilate)].sum() / total)


def rank_average(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank (as scipy.stats.rankdata(...) - 1)."""
    values = np.asarray(values).ravel()
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two equally long samples (0.0 when either is constant)."""
    ra, rb = rank_average(a), rank_average(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denominator = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / denominator) if denominator > 0 else 0.0


def randomized_copy(model, seed: int = 0):
    """The same network with every weight re-drawn (Glorot-uniform kernels, zero biases): Adebayo et al.'s control.

    "Sanity Checks for Saliency Maps" (NeurIPS 2018): an attribution method
    that explains the *trained* model must give clearly different maps for
    this copy, which has the architecture but none of the learning.
    """
    import keras

    copy = keras.models.clone_model(model)
    rng = np.random.default_rng(seed)
    weights = []
    for weight in copy.weights:
        shape = tuple(weight.shape)
        if len(shape) >= 2:
            receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            weights.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
        else:
            weights.append(np.zeros(shape, dtype=np.float32))
    copy.set_weights(weights)
    return copy
