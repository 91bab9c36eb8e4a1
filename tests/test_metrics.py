"""Metrics checked against numbers worked out by hand on tiny examples."""

import json
import math

import numpy as np
import pytest

from lenet_cli.core.metrics import (
    classification_report,
    confusion_matrix,
    logits_from_probabilities,
    low_confidence_report,
    macro_average,
    mean_cross_entropy,
    most_confident_mistakes,
    per_class_metrics,
    top_k_accuracy,
    weighted_average,
)

# Six examples, three classes. Predictions (argmax) are 0, 0, 1, 1, 2, 2:
# example 2 (true 0) is predicted 1 with 0.7, example 4 (true 1) is predicted 2 with 0.6.
Y_TRUE = np.array([0, 0, 0, 1, 1, 2])
PROBS = np.array(
    [
        [0.7, 0.2, 0.1],
        [0.5, 0.4, 0.1],
        [0.1, 0.7, 0.2],
        [0.1, 0.8, 0.1],
        [0.1, 0.3, 0.6],
        [0.1, 0.1, 0.8],
    ]
)
LOGITS = np.log(PROBS)  # each row sums to 1, so softmax(LOGITS) == PROBS
NAMES = ["zero", "one", "two"]


def test_confusion_matrix_rows_true_columns_predicted():
    matrix = confusion_matrix(Y_TRUE, PROBS.argmax(axis=1), 3)
    assert matrix.dtype == np.int64
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_confusion_matrix_size_comes_from_num_classes_not_the_data():
    matrix = confusion_matrix(np.array([1, 1]), np.array([1, 0]), 4)
    assert matrix.shape == (4, 4)
    assert matrix[1].tolist() == [1, 1, 0, 0]
    assert matrix.sum() == 2


def test_confusion_matrix_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="same length"):
        confusion_matrix(np.array([0, 1]), np.array([0]), 3)


def test_top_k_accuracy_hand_computed():
    # Top-2 misses only example 2 (true 0, top two are classes 1 and 2).
    assert top_k_accuracy(Y_TRUE, PROBS, 1) == pytest.approx(4 / 6)
    assert top_k_accuracy(Y_TRUE, PROBS, 2) == pytest.approx(5 / 6)
    assert top_k_accuracy(Y_TRUE, PROBS, 3) == 1.0


def test_top_k_accuracy_k_at_least_classes_is_one():
    assert top_k_accuracy(Y_TRUE, PROBS, 10) == 1.0


def test_top_k_accuracy_ties_go_to_lower_index():
    uniform = np.full((2, 4), 0.25)
    # Exactly k guesses each: classes 0 and 1 win the tie, so label 3 misses.
    assert top_k_accuracy(np.array([0, 3]), uniform, 2) == 0.5
    assert top_k_accuracy(np.array([1, 1]), uniform, 2) == 1.0
    assert top_k_accuracy(np.array([0, 1]), uniform, 1) == 0.5


def test_top_k_accuracy_rejects_k_below_one():
    with pytest.raises(ValueError, match="Received: 0"):
        top_k_accuracy(Y_TRUE, PROBS, 0)


def test_mean_cross_entropy_hand_computed():
    # -mean(log(0.7, 0.5, 0.1, 0.8, 0.3, 0.8)) = -log(0.00672) / 6
    assert mean_cross_entropy(Y_TRUE, LOGITS) == pytest.approx(5.0026672 / 6, abs=1e-6)


def test_mean_cross_entropy_is_shift_invariant_and_unclipped():
    # logits are defined up to a constant per row; a confident mistake counts in full (no clipping at 16.1)
    assert mean_cross_entropy(Y_TRUE, LOGITS + 50.0) == pytest.approx(5.0026672 / 6, abs=1e-6)
    assert mean_cross_entropy(np.array([1]), np.array([[100.0, 0.0, 0.0]])) == pytest.approx(100.0, abs=1e-9)


def test_logits_from_probabilities_keeps_a_zero_probability_finite():
    logits = logits_from_probabilities(np.array([[1.0, 0.0, 0.0]]))
    loss = mean_cross_entropy(np.array([1]), logits)
    assert math.isfinite(loss) and loss == pytest.approx(-math.log(np.finfo(np.float32).tiny), rel=1e-9)


def test_per_class_metrics_hand_computed():
    rows = per_class_metrics(np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]]), NAMES)
    assert [row["label"] for row in rows] == NAMES
    assert [row["index"] for row in rows] == [0, 1, 2]
    assert [row["support"] for row in rows] == [3, 2, 1]
    assert [row["precision"] for row in rows] == pytest.approx([1.0, 0.5, 0.5])
    assert [row["recall"] for row in rows] == pytest.approx([2 / 3, 0.5, 1.0])
    assert [row["f1"] for row in rows] == pytest.approx([0.8, 0.5, 2 / 3])


def test_averages_hand_computed():
    rows = per_class_metrics(np.array([[2, 1, 0], [0, 1, 1], [0, 0, 1]]), NAMES)
    macro = macro_average(rows)
    assert macro == pytest.approx({"precision": 2 / 3, "recall": 13 / 18, "f1": 0.6555556, "support": 6})
    weighted = weighted_average(rows)
    assert weighted == pytest.approx({"precision": 0.75, "recall": 4 / 6, "f1": 0.6777778, "support": 6})


def test_zero_division_gives_zero():
    # Class 1 is present but never predicted; class 2 is neither present nor predicted.
    rows = per_class_metrics(np.array([[3, 0, 0], [2, 0, 0], [0, 0, 0]]), NAMES)
    assert rows[0] == pytest.approx(
        {"label": "zero", "index": 0, "precision": 0.6, "recall": 1.0, "f1": 0.75, "support": 3}
    )
    for row in rows[1:]:
        assert (row["precision"], row["recall"], row["f1"]) == (0.0, 0.0, 0.0)
    assert macro_average(rows) == pytest.approx({"precision": 0.2, "recall": 1 / 3, "f1": 0.25, "support": 5})
    assert weighted_average(rows) == pytest.approx({"precision": 0.36, "recall": 0.6, "f1": 0.45, "support": 5})
    empty = per_class_metrics(np.zeros((2, 2), dtype=int), ["a", "b"])
    assert weighted_average(empty) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_per_class_metrics_rejects_mismatched_names():
    with pytest.raises(ValueError, match="2 names for 3 classes"):
        per_class_metrics(np.eye(3, dtype=int), ["a", "b"])


def test_classification_report_hand_computed_and_json_ready():
    report = classification_report(Y_TRUE, LOGITS, NAMES, top_k=2)
    assert set(report) == {
        "accuracy",
        "top_k",
        "top_k_accuracy",
        "cross_entropy",
        "count",
        "per_class",
        "macro_avg",
        "weighted_avg",
        "confusion_matrix",
        "calibration",
    }
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["top_k"] == 2
    assert report["top_k_accuracy"] == pytest.approx(5 / 6)
    assert report["cross_entropy"] == pytest.approx(5.0026672 / 6, abs=1e-6)
    assert report["count"] == 6
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["per_class"][2] == pytest.approx(
        {"label": "two", "index": 2, "precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1}
    )
    assert report["macro_avg"]["recall"] == pytest.approx(13 / 18)
    assert report["weighted_avg"]["precision"] == pytest.approx(0.75)
    assert json.loads(json.dumps(report)) == report
    for value in (
        report["accuracy"],
        report["cross_entropy"],
        report["macro_avg"]["f1"],
        report["per_class"][0]["recall"],
    ):
        assert type(value) is float
    for value in (
        report["top_k"],
        report["count"],
        report["per_class"][0]["support"],
        report["confusion_matrix"][0][0],
    ):
        assert type(value) is int


def test_classification_report_clips_top_k_to_classes():
    report = classification_report(Y_TRUE, LOGITS, NAMES, top_k=5)
    assert report["top_k"] == 3
    assert report["top_k_accuracy"] == 1.0


@pytest.mark.parametrize(
    ("y_true", "probs", "names", "message"),
    [
        (np.array([], dtype=int), np.zeros((0, 3)), NAMES, "no examples"),
        (Y_TRUE, LOGITS, ["a", "b"], "2 names for 3 outputs"),
        (Y_TRUE[:5], LOGITS, NAMES, "5 labels, 6 rows"),
        (np.array([0, 0, 0, 1, 1, 7]), LOGITS, NAMES, "same number of classes"),
        (Y_TRUE, LOGITS[:, 0], NAMES, "shape"),
    ],
)
def test_classification_report_rejects_bad_input(y_true, probs, names, message):
    with pytest.raises(ValueError, match=message):
        classification_report(y_true, probs, names)


def test_most_confident_mistakes_worst_first():
    assert most_confident_mistakes(Y_TRUE, PROBS, 5) == [2, 4]
    assert most_confident_mistakes(Y_TRUE, PROBS, 1) == [2]
    assert most_confident_mistakes(Y_TRUE, PROBS, 0) == []
    assert most_confident_mistakes(np.array([0, 1, 2]), np.eye(3), 3) == []


def test_most_confident_mistakes_equal_confidence_keeps_order():
    probs = np.array([[0.1, 0.9], [0.1, 0.9], [0.1, 0.9]])
    assert most_confident_mistakes(np.array([0, 1, 0]), probs, 3) == [0, 2]
    assert all(type(i) is int for i in most_confident_mistakes(np.array([0, 1, 0]), probs, 3))


def test_empty_input_gives_zero_not_nan():
    empty_labels, empty_probs = np.array([], dtype=int), np.zeros((0, 3))
    assert top_k_accuracy(empty_labels, empty_probs, 1) == 0.0
    assert mean_cross_entropy(empty_labels, empty_probs) == 0.0
    assert not math.isnan(mean_cross_entropy(empty_labels, empty_probs))


def test_low_confidence_report_hand_computed():
    # top probabilities 0.7, 0.5, 0.7, 0.8, 0.6, 0.8; mistakes are examples 2 (0.7) and 4 (0.6)
    report = low_confidence_report(Y_TRUE, PROBS, 0.65)
    assert report == {
        "threshold": 0.65,
        "flagged": 2,
        "flagged_share": 2 / 6,
        "mistakes": 2,
        "mistakes_flagged": 1,
        "mistakes_flagged_share": 0.5,
        "accuracy_flagged": 0.5,
        "accuracy_unflagged": 3 / 4,
    }
    never = low_confidence_report(Y_TRUE, PROBS, 0.0)
    assert (never["flagged"], never["accuracy_flagged"], never["accuracy_unflagged"]) == (0, None, 4 / 6)
    always = low_confidence_report(Y_TRUE, PROBS, 1.0)
    assert (always["flagged"], always["mistakes_flagged_share"], always["accuracy_unflagged"]) == (6, 1.0, None)
    perfect = low_confidence_report(np.array([0, 1, 2]), np.eye(3) * 0.9 + 0.1 / 3, 0.5)
    assert perfect["mistakes"] == 0 and perfect["mistakes_flagged_share"] is None
    with pytest.raises(ValueError, match="threshold"):
        low_confidence_report(Y_TRUE, PROBS, 1.5)
