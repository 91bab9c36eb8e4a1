"""Temperature scaling: confidence that matches accuracy, with the network's shape unchanged.

A network trained with little dropout (or long) answers right more often but
too confidently: its softmax says 99 % where it is right 95 % of the time.
Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks",
2017) divides the logits by one number ``T`` fitted to minimise the
cross-entropy on held-out data. Dividing never reorders the logits, so every
predicted class, and so every accuracy, stays exactly as it was.

``logits = x @ W + b``, so ``logits / T = x @ (W / T) + b / T``: the scaling is
folded into ``logits_layer``'s kernel and bias, and the shipped ``.keras``
file, every export and every runtime that loads it answer with calibrated
probabilities and no extra layer. Fitted on the validation split only: the
test split stays untouched until it reports.

The temperature that minimises the cross-entropy need not lower the
calibration error (ECE) too: a few confident mistakes can pull ``T`` up and
leave the many right answers under-confident. :func:`choose_temperature`
ships ``T`` only when validation gets worse on neither count.
"""

from __future__ import annotations

import numpy as np

from lenet_cli.core import config as C
from lenet_cli.core.metrics import calibration, mean_cross_entropy, softmax

_BISECTION_STEPS = 60  # halves log(T)'s bracket each step: far below float32's resolution


def _slope(inverse_temperature: float, logits: np.ndarray, labels: np.ndarray) -> float:
    """d/dβ of the mean cross-entropy of softmax(β·logits): E_p[z] − z_true, averaged (increasing in β)."""
    probs = softmax(inverse_temperature * logits)
    return float(((probs * logits).sum(axis=1) - logits[np.arange(len(labels)), labels]).mean())


def fit_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = C.TEMPERATURE_BOUNDS
) -> float:
    """The temperature ``T`` within ``bounds`` that minimises the mean cross-entropy of ``softmax(logits / T)``.

    The cross-entropy is convex in ``β = 1 / T`` (a log-sum-exp of lines in β
    minus a line), so its slope only rises and a bisection on the slope finds
    the one minimum. ``bounds`` keep a split that is too small or too easy (no
    mistakes: the loss falls forever as T shrinks) from pushing every answer to
    certainty; the bound is then the answer.

    Raises:
        ValueError: no examples, or logits and labels that do not match.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64)
    if logits.ndim != 2 or len(logits) == 0 or len(labels) != len(logits):
        raise ValueError(f"need (n, classes) logits and n labels with n > 0; got {logits.shape} and {labels.shape}")
    low, high = np.log(1.0 / bounds[1]), np.log(1.0 / bounds[0])  # log β
    if _slope(np.exp(low), logits, labels) >= 0:
        return float(bounds[1])  # the loss rises from the hottest allowed temperature on: that is the minimum
    if _slope(np.exp(high), logits, labels) <= 0:
        return float(bounds[0])
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        if _slope(np.exp(middle), logits, labels) < 0:
            low = middle
        else:
            high = middle
    return float(1.0 / np.exp((low + high) / 2))


def fold_temperature(model, temperature: float) -> None:
    """Divide ``logits_layer``'s kernel and bias by ``temperature``: the model's logits become ``logits / T``."""
    layer = model.get_layer("logits_layer")
    layer.set_weights([weight / np.float32(temperature) for weight in layer.get_weights()])


def calibration_summary(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """Validation cross-entropy and ECE (15 bins) before and after dividing the logits by ``temperature``."""
    logits = np.asarray(logits, dtype=np.float64)
    return {
        "temperature": float(temperature),
        "fitted_on": "validation",
        "images": len(labels),
        "val_cross_entropy_before": mean_cross_entropy(labels, logits),
        "val_cross_entropy_after": mean_cross_entropy(labels, logits / temperature),
        "val_ece_before": calibration(labels, softmax(logits))["ece"],
        "val_ece_after": calibration(labels, softmax(logits / temperature))["ece"],
    }


def choose_temperature(
    logits: np.ndarray, labels: np.ndarray, bounds: tuple[float, float] = C.TEMPERATURE_BOUNDS
) -> dict:
    """Fit a temperature and keep it only if it makes validation worse on neither the cross-entropy nor the ECE.

    Returns:
        ``metrics.json``'s ``calibration`` block: :func:`calibration_summary`'s
        keys, whose ``*_after`` values are the model that ships, with
        ``kept`` and ``reason``. A temperature that is not kept leaves
        ``temperature`` None (nothing is folded, as when calibration is
        skipped, and ``skipped`` says why) and is recorded as
        ``fitted_temperature`` with the ``fitted_val_cross_entropy`` and
        ``fitted_val_ece`` it would have given.
    """
    fitted = fit_temperature(logits, labels, bounds)
    summary = calibration_summary(logits, labels, fitted)
    ce_before, ce_after = summary["val_cross_entropy_before"], summary["val_cross_entropy_after"]
    ece_before, ece_after = summary["val_ece_before"], summary["val_ece_after"]
    worse = []
    if ce_after > ce_before:
        worse.append(f"cross-entropy {ce_before:.4f} -> {ce_after:.4f}")
    if ece_after > ece_before:
        worse.append(f"ECE {ece_before:.2%} -> {ece_after:.2%}")
    if not worse:
        return {
            **summary,
            "kept": True,
            "reason": f"neither validation figure is worse with it: cross-entropy {ce_before:.4f} -> {ce_after:.4f}, "
            f"ECE {ece_before:.2%} -> {ece_after:.2%}",
        }
    reason = f"the fitted temperature {fitted:.3f} would raise validation {' and '.join(worse)}, so the model ships without one"
    return {
        **summary,
        "temperature": None,
        "kept": False,
        "reason": reason,
        "skipped": reason,
        "fitted_temperature": fitted,
        "val_cross_entropy_after": ce_before,
        "val_ece_after": ece_before,
        "fitted_val_cross_entropy": ce_after,
        "fitted_val_ece": ece_after,
    }
