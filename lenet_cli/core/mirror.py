"""Test-time flip averaging: answer with the mean of a picture's and its mirror image's class probabilities.

A T-shirt seen in a mirror is still a T-shirt, so a Fashion-MNIST model that
averages the two views makes fewer mistakes than either view alone (+0.3 to
+0.4 points on the test split, bench/RESULTS.md) at twice the inference cost.
Digits are not mirror-symmetric, so MNIST's recipe leaves it off.

It is part of a model's recipe (``TrainConfig.test_time_flip``, saved in
``config.json`` and in every export's metadata), not of its network: the
weights and the exported graphs are one view, and lenet's loader wraps any
format's predict function in :class:`MirrorAveraged` when the recipe says so.
A runtime outside lenet that loads an export gets the one-view answers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lenet_cli.core.metrics import logits_from_probabilities


def mirror_images(images: np.ndarray) -> np.ndarray:
    """Each image flipped left to right: ``(n, 28, 28)`` or ``(n, 28, 28, 1)``, the width being axis 2 in both."""
    images = np.asarray(images)
    if images.ndim not in (3, 4):
        raise ValueError(f"expected a batch of images (n, 28, 28[, 1]), not shape {images.shape}")
    return np.ascontiguousarray(images[:, :, ::-1])


class MirrorAveraged:
    """A probabilities function that averages each picture's answer with its mirror image's.

    ``logits`` are the logits whose softmax is the averaged probabilities, so
    cross-entropy and calibration figures describe the answers users get.
    """

    def __init__(self, probabilities: Callable[[np.ndarray], np.ndarray]):
        self.one_view = probabilities

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if len(images) == 0:
            return self.one_view(images)
        return ((self.one_view(images) + self.one_view(mirror_images(images))) / 2).astype(np.float32, copy=False)

    def logits(self, images: np.ndarray) -> np.ndarray:
        return logits_from_probabilities(self(images))

    def predict_classes(self, images: np.ndarray) -> np.ndarray:
        return self(images).argmax(axis=1)


def answering(
    probabilities: Callable[[np.ndarray], np.ndarray], test_time_flip: bool
) -> Callable[[np.ndarray], np.ndarray]:
    """``probabilities`` as the recipe answers: averaged with the mirror image when ``test_time_flip`` is set."""
    return MirrorAveraged(probabilities) if test_time_flip else probabilities
