"""Score a trained model on one split: the numbers behind ``lenet evaluate``.

Returns plain data (a JSON-ready report plus the arrays the image outputs
need); printing is the CLI's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from lenet_cli.data.idx import load_dataset
from lenet_cli.core.errors import LenetError
from lenet_cli.core.config import MIN_CONFIDENCE, VALIDATION_SIZE
from lenet_cli.core.metrics import classification_report, low_confidence_report, softmax


@dataclass
class Evaluation:
    report: dict[str, Any]
    images: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    split: str
    validation_size: int

    def file_index(self, index: int) -> int:
        """Where the split's ``index``-th image sits in the dataset's file (train and validation share one)."""
        return index + self.validation_size if self.split == "train" else index


def penalty_from_weights(keras_model, run_config: dict | None) -> dict[str, float] | None:
    """The run's L1 and weight-decay terms of the model's kernels, as training computed them (None without a run config)."""
    if keras_model is None or not run_config:
        return None
    from lenet_cli.model.objective import Objective

    terms = Objective.for_run(keras_model, run_config).penalties()
    return {"l1": float(terms["l1"]), "l2": float(terms["l2"])}


def evaluate_model(loaded, dataset: str, split: str, data_dir=None, top_k: int = 3, validation_size: int | None = None, log=None,
                   class_names=None, preprocess: str | None = None, min_confidence: float = MIN_CONFIDENCE) -> Evaluation:
    """Predict every image of ``split`` and build the report.

    ``class_names`` (the model's, from its metadata) default to the dataset's;
    ``preprocess`` is how a picture folder's pictures are decoded (the model's);
    ``min_confidence`` is the threshold whose flag rate the report measures
    (the one ``lenet predict`` flags answers under).

    Raises:
        LenetError: the data cannot be loaded or the split is empty.
    """
    if validation_size is None:
        validation_size = (loaded.run_config or {}).get("validation_size")  # None: the dataset's default
    loaded_data = load_dataset(dataset, data_dir, validation_size=validation_size, log=log, splits=(split,), preprocess=preprocess)
    data = loaded_data.split(split)
    class_names = list(class_names or loaded_data.class_names)
    if len(data) == 0:
        raise LenetError(f"the {split} split of {dataset} is empty")
    started = time.perf_counter()
    logits = loaded.logits(data.images)
    seconds = time.perf_counter() - started
    report = classification_report(data.labels, logits, class_names, top_k=top_k)
    probabilities = softmax(logits)
    penalty = penalty_from_weights(loaded.keras_model, loaded.run_config)
    report["l1"] = penalty["l1"] if penalty else None
    report["l2"] = penalty["l2"] if penalty else None
    report["objective"] = report["cross_entropy"] + penalty["l1"] + penalty["l2"] if penalty else None
    ordered = {
        "model": str(loaded.path),
        "format": loaded.format,
        "dataset": dataset,
        "split": split,
        "count": report["count"],
        "accuracy": report["accuracy"],
        "top_k": report["top_k"],
        "top_k_accuracy": report["top_k_accuracy"],
        "cross_entropy": report["cross_entropy"],
        "l1": report["l1"],
        "l2": report["l2"],
        "objective": report["objective"],
        "expected_calibration_error": report["calibration"]["ece"],
        "per_class": report["per_class"],
        "macro_avg": report["macro_avg"],
        "weighted_avg": report["weighted_avg"],
        "confusion_matrix": report["confusion_matrix"],
        "calibration_bins": report["calibration"]["bins"],
        "low_confidence": low_confidence_report(data.labels, probabilities, min_confidence),
        "class_names": class_names,
        "seconds": seconds,
        "images_per_second": len(data) / seconds if seconds > 0 else None,
    }
    return Evaluation(ordered, data.images, data.labels, probabilities, split, VALIDATION_SIZE if validation_size is None else int(validation_size))
