"""Score a trained model on one split: the numbers behind ``lenet evaluate``.

Returns plain data (a JSON-ready report plus the arrays the image outputs
need); printing is the CLI's job.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core import checks
from lenet_cli.core.config import DEFAULT_TOP_K, ENGINES, MIN_CONFIDENCE, SPLITS, VALIDATION_SIZE
from lenet_cli.core.errors import DataError
from lenet_cli.core.metrics import (
    classification_report,
    low_confidence_report,
    most_confident_mistakes,
    softmax,
)
from lenet_cli.data.loader import load_dataset
from lenet_cli.runtimes.loading import answers_mirror_averaged


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


@dataclass(frozen=True)
class Scoring:
    """What :func:`evaluate_model` scores a loaded model on, and how.

    Attributes:
        dataset: The dataset's name or path.
        split: ``test``, ``validation`` or ``train``.
        data_dir: Where the data is (None: the usual look-up).
        top_k: The k of top-k accuracy.
        validation_size: Training images held out (None: the run's own, else the dataset's default).
        class_names: The model's classes, from its metadata (None: the dataset's).
        preprocess: How a picture folder's pictures are decoded (the model's).
        min_confidence: The threshold whose flag rate the report measures (the one ``lenet predict`` flags under).
        penalty: The L1 and L2 terms of a model that cannot compute them itself (a run's ``model.tflite``: recorded
            when it was written).
    """

    dataset: str
    split: str = "test"
    data_dir: str | os.PathLike | None = None
    top_k: int = DEFAULT_TOP_K
    validation_size: int | None = None
    class_names: Sequence[str] | None = None
    preprocess: str | None = None
    min_confidence: float = MIN_CONFIDENCE
    penalty: dict[str, float] | None = None


def evaluate_model(loaded, scoring: Scoring, log: Callable[[str], None] | None = None) -> Evaluation:
    """Predict every image of the split and build the report.

    Raises:
        LenetError: the data cannot be loaded or the split is empty.
    """
    dataset, split, validation_size = scoring.dataset, scoring.split, scoring.validation_size
    if validation_size is None:
        validation_size = (loaded.run_config or {}).get("validation_size")  # None: the dataset's default
    loaded_data = load_dataset(
        dataset,
        scoring.data_dir,
        validation_size=validation_size,
        log=log,
        splits=(split,),
        preprocess=scoring.preprocess,
    )
    data = loaded_data.split(split)
    class_names = list(scoring.class_names or loaded_data.class_names)
    if len(data) == 0:
        raise DataError(f"the {split} split of {dataset} is empty")
    started = time.perf_counter()
    logits = loaded.logits(data.images)
    seconds = time.perf_counter() - started
    report = classification_report(data.labels, logits, class_names, top_k=scoring.top_k)
    probabilities = softmax(logits)
    penalty = penalty_from_weights(loaded.keras_model, loaded.run_config) or scoring.penalty
    report["l1"] = penalty["l1"] if penalty else None
    report["l2"] = penalty["l2"] if penalty else None
    report["objective"] = report["cross_entropy"] + penalty["l1"] + penalty["l2"] if penalty else None
    ordered = {
        "model": str(loaded.path),
        "format": loaded.format,
        "test_time_flip": answers_mirror_averaged(loaded.metadata or {}),  # answers averaged with the mirror image's
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
        "low_confidence": low_confidence_report(data.labels, probabilities, scoring.min_confidence),
        "class_names": class_names,
        "seconds": seconds,
        "images_per_second": len(data) / seconds if seconds > 0 else None,
    }
    return Evaluation(
        ordered,
        data.images,
        data.labels,
        probabilities,
        split,
        VALIDATION_SIZE if validation_size is None else int(validation_size),
    )


@dataclass(frozen=True)
class EvaluateRequest:
    """What ``lenet evaluate`` (and :func:`lenet_cli.api.evaluate`) is asked to do.

    Attributes:
        model: A run directory or model file; None for the latest run.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        dataset: Score on this dataset instead of the model's own.
        split: ``test``, ``validation`` or ``train``.
        data_dir: Where the data is (None: the run's own folder, then the usual look-up).
        batch_size: Images per model call.
        top_k: The k of top-k accuracy.
        min_confidence: The threshold whose flag rate the report measures.
        confusion_png, reliability_png, misclassified_png: Image files to write (None: not written).
        misclassified_count: How many of the most confident mistakes the gallery shows.
        engine: Which of a run's models answers: ``auto`` (its TensorFlow-free ``model.tflite`` when checked OK) or ``keras``.
    """

    model: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    dataset: str | None = None
    split: str = "test"
    data_dir: str | os.PathLike | None = None
    batch_size: int = 1000
    top_k: int | None = None
    min_confidence: float = MIN_CONFIDENCE
    confusion_png: str | os.PathLike | None = None
    reliability_png: str | os.PathLike | None = None
    misclassified_png: str | os.PathLike | None = None
    misclassified_count: int = 32
    engine: str = "auto"

    def __post_init__(self) -> None:
        checks.one_of("split", self.split, SPLITS)
        checks.whole_at_least("batch_size", self.batch_size, 1)
        if self.top_k is not None:
            checks.whole_at_least("top_k", self.top_k, 1)
        checks.probability("min_confidence", self.min_confidence)
        checks.whole_at_least("misclassified_count", self.misclassified_count, 1)
        checks.one_of("engine", self.engine, ENGINES)


@dataclass
class EvaluateResult:
    """The report (``lenet evaluate --format json`` prints it) and the image files written."""

    report: dict[str, Any]
    evaluation: Evaluation
    written: dict[str, Path] = field(default_factory=dict)  # confusion | reliability | misclassified -> file

    @property
    def accuracy(self) -> float:
        return float(self.report["accuracy"])


def mistake_record(result: Evaluation, index: int, names) -> dict:
    """One shown mistake, with where to find the image again: its position in the split and in the dataset's file."""
    predicted = int(result.probabilities[index].argmax())
    return {
        "split_index": int(index),
        "file_index": result.file_index(int(index)),
        "label": names[int(result.labels[index])],
        "predicted": names[predicted],
        "confidence": float(result.probabilities[index, predicted]),
    }


def evaluate(request: EvaluateRequest, log: Callable[[str], None] | None = None) -> EvaluateResult:
    """Load the model, score it on the split, and write the image files asked for.

    Raises:
        LenetError: no such model, data that cannot be read, or a ``top_k`` above the class count (:class:`BadValue`).
    """
    from lenet_cli.engine.context import for_dataset
    from lenet_cli.store import runs
    from lenet_cli.store.atomic import write_bytes_atomic

    context = for_dataset(request.model, request.runs_dir, request.dataset, request.data_dir, engine=request.engine)
    top_k = context.resolve_top_k(request.top_k)
    if log:
        log(f"loading {context.ref.model_path}")
    context, loaded = context.load(batch_size=request.batch_size, log=log)
    recorded = None
    if (
        context.keras_ref is not None and context.ref.run_dir is not None
    ):  # the run's copy: its penalty was recorded with it
        recorded = (runs.fast_model_record(context.ref.run_dir) or {}).get("penalty")
    assert context.dataset is not None, "for_dataset always names the dataset: it raises when it cannot tell"
    if log:
        log(f"evaluating on the {context.dataset} {request.split} split")
    scoring = Scoring(
        context.dataset,
        request.split,
        context.data_dir,
        top_k=top_k,
        class_names=context.class_names,
        preprocess=context.preprocess,
        min_confidence=request.min_confidence,
        penalty=recorded,
    )
    result = evaluate_model(loaded, scoring, log)
    report = result.report
    written: dict[str, Path] = {}
    title = f"{context.dataset} {request.split}"
    if request.confusion_png is not None:
        from lenet_cli.viz.confusion import render_confusion_matrix_png

        png = render_confusion_matrix_png(
            np.array(report["confusion_matrix"]), report["class_names"], f"{title}: accuracy {report['accuracy']:.4f}"
        )
        written["confusion"] = write_bytes_atomic(request.confusion_png, png)
    if request.reliability_png is not None:
        from lenet_cli.viz.reliability import render_reliability_png

        png = render_reliability_png(
            report["calibration_bins"], report["expected_calibration_error"], f"{title}: reliability"
        )
        written["reliability"] = write_bytes_atomic(request.reliability_png, png)
    if request.misclassified_png is not None:
        from lenet_cli.viz.gallery import render_gallery_png

        idx = most_confident_mistakes(result.labels, result.probabilities, request.misclassified_count)
        names = report["class_names"]
        report["misclassified"] = [mistake_record(result, i, names) for i in idx]
        if idx:
            captions = [
                f"true: {names[result.labels[i]]}\npred: {names[int(result.probabilities[i].argmax())]} "
                f"{result.probabilities[i].max():.2f}"
                for i in idx
            ]
            written["misclassified"] = write_bytes_atomic(
                request.misclassified_png, render_gallery_png(result.images[idx], captions)
            )
    return EvaluateResult(report, result, written)
