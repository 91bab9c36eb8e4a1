"""The check every export passes before it lands: loaded in its own runtime, it must answer as the Keras model does.

Apart from writing (:mod:`lenet_cli.engine.export_write`) because the bounds
and the reference answers are their own contract: the same check guards
``lenet export`` and each run's TensorFlow-free copy
(:mod:`lenet_cli.engine.fast_model`). A float export must match the Keras
model's probabilities within :data:`MAX_ABS_DIFF` and pick the same class on
:data:`MIN_ARGMAX_AGREEMENT` of the images; a quantized one may lose at most
:data:`MAX_ACCURACY_DROP` of accuracy.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core.errors import ExportError
from lenet_cli.runtimes.loading import open_model
from lenet_cli.store import runs

VERIFY_COUNT = 1000  # test images every export is checked on
MAX_ABS_DIFF = 1e-4  # float exports: largest |probability difference| allowed
MIN_ARGMAX_AGREEMENT = 0.999  # float exports: share of images with the same predicted class
MAX_ACCURACY_DROP = 0.005  # quantized exports: accuracy may fall by at most 0.5 points


@dataclass
class Reference:
    """The Keras model's answers on the verification images."""

    images: np.ndarray  # float32 (n, 28, 28, 1)
    labels: np.ndarray
    probabilities: np.ndarray
    split: str = "test"  # which split the images come from, for messages

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.probabilities.argmax(1) == self.labels))


def verify_export(path: Path, fmt: str, quantize: str, reference: Reference, metadata: dict) -> dict[str, float]:
    """Load ``path`` in its own runtime and compare it with the Keras model, each answering as its recipe says.

    ``metadata`` is what the export will carry: the file is checked before its sidecar exists, and wherever it
    is written (a run's folder holds a config.json that would say it; another folder does not).

    Raises:
        LenetError: the export disagrees with the Keras model beyond the bounds.
    """
    started = time.perf_counter()
    loaded = open_model(runs.ModelRef(path, None), metadata=metadata)
    loaded.predict(reference.images[:1])
    load_seconds = time.perf_counter() - started
    probabilities = loaded.predict(reference.images)
    max_abs_diff = float(np.max(np.abs(probabilities - reference.probabilities)))
    agreement = float(np.mean(probabilities.argmax(1) == reference.probabilities.argmax(1)))
    accuracy = float(np.mean(probabilities.argmax(1) == reference.labels))
    n = len(reference.labels)
    if quantize == "none":
        if max_abs_diff > MAX_ABS_DIFF or agreement < MIN_ARGMAX_AGREEMENT:
            raise ExportError(
                f"{fmt} export failed verification on {n:,} {reference.split} images: max |Δprob| {max_abs_diff:.2e} (allowed {MAX_ABS_DIFF:g}), "
                f"same class on {agreement:.2%} (needed {MIN_ARGMAX_AGREEMENT:.1%}); nothing was written"
            )
    elif reference.accuracy - accuracy > MAX_ACCURACY_DROP:
        raise ExportError(
            f"{quantize}-quantized {fmt} export failed verification on {n:,} {reference.split} images: accuracy {accuracy:.4f} vs Keras "
            f"{reference.accuracy:.4f}, a drop over {MAX_ACCURACY_DROP * 100:g} points; nothing was written (try quantize 'dynamic' or 'none')"
        )
    return {
        "max_abs_diff": max_abs_diff,
        "argmax_agreement": agreement,
        "accuracy": accuracy,
        "load_seconds": load_seconds,
    }
