"""Classification metrics in plain numpy: the single source of truth.

``lenet evaluate`` and the TensorBoard confusion-matrix callback both compute
their numbers here, so a report and a training log never disagree. Nothing in
this module imports TensorFlow or Keras: it must stay cheap to import and easy
to test by hand. Malformed arguments are caller bugs and raise ``ValueError``.

Conventions:
    * ``y_true`` is a 1-D array of integer class indices, shape ``(n,)``.
    * ``probs`` is a 2-D array of class probabilities, shape ``(n, num_classes)``;
      ``logits`` the unnormalised scores they are the softmax of.
    * The predicted class is ``argmax(probs)``; ties go to the lowest index
      (numpy's rule), and top-k uses the same rule so top-1 equals accuracy.
    * Every returned number is a plain Python ``int`` or ``float`` so the
      report can go straight to ``json.dumps``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lenet_cli.core.config import DEFAULT_TOP_K

SMALLEST_PROBABILITY = float(np.finfo(np.float32).tiny)
"""A probability of exactly 0 (float32 underflow) is read as this, so its log stays finite."""


def _check_labels(y_true: np.ndarray, num_classes: int) -> np.ndarray:
    """Return ``y_true`` as int64, refusing labels the model cannot predict."""
    labels = np.asarray(y_true)
    if labels.ndim != 1:
        raise ValueError(f"labels must be a 1-D array of class indices. Received: shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integer class indices. Received: dtype {labels.dtype}")
    labels = labels.astype(np.int64, copy=False)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in [0, {num_classes - 1}] for {num_classes} classes. "
            f"Received: min {labels.min()}, max {labels.max()}; "
            "check that the model and the dataset have the same number of classes."
        )
    return labels


def _check_labels_and_probs(y_true: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate the pair once so every metric can assume clean shapes."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] < 1:
        raise ValueError(f"probabilities must have shape (examples, classes). Received: shape {probs.shape}")
    labels = _check_labels(y_true, probs.shape[1])
    if labels.shape[0] != probs.shape[0]:
        raise ValueError(
            f"labels and probabilities disagree on the number of examples. "
            f"Received: {labels.shape[0]} labels, {probs.shape[0]} rows of probabilities"
        )
    return labels, probs


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Elementwise ``numerator / denominator`` with 0.0 wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs in one vectorised ``np.bincount``.

    Args:
        y_true: True class indices, shape ``(n,)``.
        y_pred: Predicted class indices, shape ``(n,)``.
        num_classes: Size of the square matrix; fixed by the model, not by
            which classes happen to appear, so matrices from different epochs
            line up.

    Returns:
        ``int64`` array of shape ``(num_classes, num_classes)``; rows are true
        classes, columns are predicted classes.

    Raises:
        ValueError: If the shapes differ or a label is outside ``[0, num_classes)``.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1. Received: {num_classes}")
    labels = _check_labels(y_true, num_classes)
    predicted = _check_labels(y_pred, num_classes)
    if labels.shape != predicted.shape:
        raise ValueError(
            f"true and predicted labels must have the same length. Received: {labels.shape[0]} and {predicted.shape[0]}"
        )
    flat = np.bincount(labels * num_classes + predicted, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64, copy=False)


def top_k_accuracy(y_true: np.ndarray, probs: np.ndarray, k: int) -> float:
    """Fraction of examples whose true class is among the ``k`` highest probabilities.

    Ties are broken by a stable sort, so among equal probabilities the lower
    class index ranks first and every example gets exactly ``k`` guesses.
    This is deliberately stricter than ``tf.math.in_top_k`` (which Keras's
    top-k metric uses and which counts *every* class tied at the boundary as
    a hit): a uniform output must not score 100 %. With ``k=1`` the result
    always equals plain accuracy.

    Args:
        y_true: True class indices, shape ``(n,)``.
        probs: Class probabilities (or any scores), shape ``(n, num_classes)``.
        k: How many guesses count; values above ``num_classes`` are clipped,
            which makes the result 1.0.

    Returns:
        The accuracy as a float in ``[0, 1]``; 0.0 for no examples.

    Raises:
        ValueError: If ``k < 1`` or the inputs are malformed.
    """
    labels, probs = _check_labels_and_probs(y_true, probs)
    if k < 1:
        raise ValueError(f"k must be at least 1. Received: {k}")
    if labels.size == 0:
        return 0.0
    k = min(int(k), probs.shape[1])
    ranked = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    hits = (ranked == labels[:, None]).any(axis=1)
    return float(hits.mean())


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """``log(softmax(logits))`` row by row, in float64, without overflow."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of ``logits`` (float64 rows that sum to 1)."""
    return np.exp(log_softmax(logits))


def logits_from_probabilities(probs: np.ndarray) -> np.ndarray:
    """Logits whose softmax is ``probs``: for models that only output probabilities (exports).

    ``softmax(log p) = p`` for a row that sums to 1; a probability that
    underflowed to 0 is read as :data:`SMALLEST_PROBABILITY`, so a confident
    mistake costs about 87 nats instead of infinity.
    """
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), SMALLEST_PROBABILITY))


def mean_cross_entropy(y_true: np.ndarray, logits: np.ndarray) -> float:
    """Mean softmax cross-entropy of the true class: the one definition every report uses.

    ``mean(logsumexp(logits) - logits[true])``, exactly what Keras's
    ``SparseCategoricalCrossentropy(from_logits=True)`` minimises in training,
    computed here in float64 so a validation split or a test set of any size
    sums without drift. Nothing is clipped: a confident mistake counts in full.

    Args:
        y_true: True class indices, shape ``(n,)``.
        logits: Scores, shape ``(n, num_classes)``; see :func:`logits_from_probabilities`.

    Returns:
        The mean loss as a float; 0.0 for no examples.

    Raises:
        ValueError: If the inputs are malformed.
    """
    labels, logits = _check_labels_and_probs(y_true, logits)
    if labels.size == 0:
        return 0.0
    return float(-log_softmax(logits)[np.arange(labels.size), labels].mean())


def per_class_metrics(matrix: np.ndarray, class_names: Sequence[str]) -> list[dict]:
    """Precision, recall, F1 and support for each class of a confusion matrix.

    Zero division gives 0.0, as scikit-learn's ``zero_division=0`` does: a
    class never predicted has precision 0.0, a class absent from the data has
    recall 0.0, and F1 is 0.0 whenever precision + recall is 0. Reports then
    stay numeric (JSON has no NaN) and such classes visibly drag down the
    macro average instead of vanishing from it.

    Args:
        matrix: Square confusion matrix, rows true and columns predicted.
        class_names: One name per row, in index order.

    Returns:
        One dict per class, in index order, with keys ``label`` (str),
        ``index``, ``precision``, ``recall``, ``f1``, ``support`` (true count).

    Raises:
        ValueError: If the matrix is not square or the names do not match it.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square. Received: shape {matrix.shape}")
    if len(class_names) != matrix.shape[0]:
        raise ValueError(
            f"need one class name per confusion-matrix row. "
            f"Received: {len(class_names)} names for {matrix.shape[0]} classes"
        )
    true_positives = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    precision = _safe_divide(true_positives, predicted)
    recall = _safe_divide(true_positives, support)
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return [
        {
            "label": str(name),
            "index": index,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, name in enumerate(class_names)
    ]


def macro_average(per_class: Sequence[dict]) -> dict:
    """Unweighted mean over classes, each class counting once whatever its size.

    F1 is the mean of the per-class F1 scores (scikit-learn's definition), not
    the F1 of the mean precision and recall.

    Args:
        per_class: Output of :func:`per_class_metrics`.

    Returns:
        Dict with ``precision``, ``recall``, ``f1`` (floats) and ``support``
        (total true count); zeros for an empty list.
    """
    return _average(per_class, weights=np.ones(len(per_class)))


def weighted_average(per_class: Sequence[dict]) -> dict:
    """Mean over classes weighted by support, so big classes count more.

    Args:
        per_class: Output of :func:`per_class_metrics`.

    Returns:
        Dict with ``precision``, ``recall``, ``f1`` (floats) and ``support``
        (total true count); the averages are 0.0 when total support is 0.
    """
    return _average(per_class, weights=np.array([row["support"] for row in per_class], dtype=np.float64))


def _average(per_class: Sequence[dict], weights: np.ndarray) -> dict:
    """Weighted mean of precision, recall and F1, with 0.0 for zero total weight."""
    total_weight = float(weights.sum())
    averaged = {}
    for key in ("precision", "recall", "f1"):
        values = np.array([row[key] for row in per_class], dtype=np.float64)
        averaged[key] = float((values * weights).sum() / total_weight) if total_weight else 0.0
    averaged["support"] = int(sum(row["support"] for row in per_class))
    return averaged


def classification_report(
    y_true: np.ndarray, logits: np.ndarray, class_names: Sequence[str], top_k: int = DEFAULT_TOP_K
) -> dict:
    """Everything ``lenet evaluate`` reports, as JSON-ready plain data.

    Args:
        y_true: True class indices, shape ``(n,)``.
        logits: The model's scores, shape ``(n, num_classes)`` (see
            :func:`logits_from_probabilities` for models that output probabilities).
        class_names: One name per class, in index order.
        top_k: The ``k`` of top-k accuracy; clipped to the number of classes,
            and the clipped value is what the report records.

    Returns:
        Dict with keys ``accuracy`` (float), ``top_k`` (int),
        ``top_k_accuracy`` (float), ``cross_entropy`` (mean, float),
        ``count`` (int), ``per_class`` (list of dicts with ``label``,
        ``index``, ``precision``, ``recall``, ``f1``, ``support``),
        ``macro_avg`` and ``weighted_avg`` (dicts with ``precision``,
        ``recall``, ``f1``, ``support``) and ``confusion_matrix`` (list of
        lists of int, rows true, columns predicted).

    Raises:
        ValueError: If there are no examples, the names do not match the
            number of classes, ``top_k < 1``, or the inputs are malformed.
    """
    labels, logits = _check_labels_and_probs(y_true, logits)
    probs = softmax(logits)
    num_classes = probs.shape[1]
    if len(class_names) != num_classes:
        raise ValueError(
            f"need one class name per model output. Received: {len(class_names)} names for {num_classes} outputs"
        )
    if labels.size == 0:
        raise ValueError("there are no examples to evaluate; check the dataset split and any limit.")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1. Received: {top_k}")
    k = min(int(top_k), num_classes)
    predicted = probs.argmax(axis=1)
    matrix = confusion_matrix(labels, predicted, num_classes)
    per_class = per_class_metrics(matrix, class_names)
    return {
        "accuracy": float((predicted == labels).mean()),
        "top_k": k,
        "top_k_accuracy": top_k_accuracy(labels, probs, k),
        "cross_entropy": mean_cross_entropy(labels, logits),
        "count": int(labels.size),
        "per_class": per_class,
        "macro_avg": macro_average(per_class),
        "weighted_avg": weighted_average(per_class),
        "confusion_matrix": matrix.tolist(),
        "calibration": calibration(labels, probs),
    }


CALIBRATION_BINS = 15


def calibration(y_true: np.ndarray, probs: np.ndarray, bins: int = CALIBRATION_BINS) -> dict:
    """Expected calibration error and the reliability diagram's bins (Guo et al., 2017).

    Predictions are grouped by confidence (the top probability) into ``bins``
    equal-width bins over ``[0, 1]``; ECE is the example-weighted mean gap
    between each bin's accuracy and its mean confidence. A model whose "90 %"
    is right nine times in ten has an ECE near 0.

    Returns:
        ``{"ece": float, "bins": [{"lower", "upper", "count", "accuracy", "confidence"}, ...]}``;
        empty bins have count 0 and accuracy/confidence None.

    Raises:
        ValueError: malformed inputs, or ``bins < 1``.
    """
    labels, probs = _check_labels_and_probs(y_true, probs)
    if bins < 1:
        raise ValueError(f"bins must be at least 1. Received: {bins}")
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)  # (lower, upper] bins
    rows, gap = [], 0.0
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        accuracy = float(correct[members].mean()) if count else None
        mean_confidence = float(confidence[members].mean()) if count else None
        if accuracy is not None and mean_confidence is not None:
            gap += count * abs(accuracy - mean_confidence)
        rows.append(
            {
                "lower": float(edges[b]),
                "upper": float(edges[b + 1]),
                "count": count,
                "accuracy": accuracy,
                "confidence": mean_confidence,
            }
        )
    return {"ece": gap / labels.size if labels.size else 0.0, "bins": rows}


def low_confidence_report(y_true: np.ndarray, probs: np.ndarray, threshold: float) -> dict:
    """How the ``--min-confidence`` flag behaves on labelled data: how often it fires and what it catches.

    An answer is flagged when its top probability is below ``threshold``.
    Flagging trades coverage for accuracy (selective classification): the
    useful threshold fires rarely yet holds a large share of the mistakes.

    Returns:
        ``{"threshold", "flagged", "flagged_share", "mistakes", "mistakes_flagged",
        "mistakes_flagged_share", "accuracy_flagged", "accuracy_unflagged"}``; a
        share or accuracy over an empty group is None.

    Raises:
        ValueError: malformed inputs, or a threshold outside [0, 1].
    """
    labels, probs = _check_labels_and_probs(y_true, probs)
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must lie in [0, 1]. Received: {threshold}")
    flagged = probs.max(axis=1) < threshold
    correct = probs.argmax(axis=1) == labels
    mistakes = int((~correct).sum())
    caught = int((flagged & ~correct).sum())

    def share(part: int, whole: int) -> float | None:
        return part / whole if whole else None

    return {
        "threshold": float(threshold),
        "flagged": int(flagged.sum()),
        "flagged_share": share(int(flagged.sum()), labels.size),
        "mistakes": mistakes,
        "mistakes_flagged": caught,
        "mistakes_flagged_share": share(caught, mistakes),
        "accuracy_flagged": float(correct[flagged].mean()) if flagged.any() else None,
        "accuracy_unflagged": float(correct[~flagged].mean()) if (~flagged).any() else None,
    }


def most_confident_mistakes(y_true: np.ndarray, probs: np.ndarray, n: int) -> list[int]:
    """Indices of the wrong predictions the model was surest about, worst first.

    These are the examples worth looking at (``lenet evaluate
    --misclassified``): mislabelled data and systematic confusions show up
    here rather than among the near-misses.

    Args:
        y_true: True class indices, shape ``(n_examples,)``.
        probs: Class probabilities, shape ``(n_examples, num_classes)``.
        n: How many to return at most.

    Returns:
        Up to ``n`` example indices (plain ints) where ``argmax(probs)`` differs
        from the label, ordered by descending probability of the predicted
        class; equal confidences keep dataset order.

    Raises:
        ValueError: If ``n < 0`` or the inputs are malformed.
    """
    labels, probs = _check_labels_and_probs(y_true, probs)
    if n < 0:
        raise ValueError(f"n must be zero or more. Received: {n}")
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probs[wrong, predicted[wrong]]
    order = np.argsort(-confidence, kind="stable")
    return [int(i) for i in wrong[order][:n]]
