"""A finished run's TensorFlow-free copy, ``model.tflite``: written, checked against ``model.keras``, recorded.

Commands answer with this copy when its record in ``metrics.json`` says
``ok`` (README, "Fast answers"). It is an export like any other, through
:func:`lenet_cli.engine.export_write.write_one` and the check of
:mod:`lenet_cli.engine.export_verify`, but it must never fail a run: a
conversion or a check that fails becomes a record that says why. Exporting
LiteRT to that path of a run (an older run's missing copy) records its check
in the run's ``metrics.json`` as training does (:func:`record_in_run`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.errors import ExportError, LenetError
from lenet_cli.core.inputs import as_model_input
from lenet_cli.engine.export_verify import Reference
from lenet_cli.engine.export_write import ExportResult, ExportTarget, write_one
from lenet_cli.store import runs

FAST_MODEL_FORMAT = "litert"
"""The format of a run's TensorFlow-free copy: LiteRT started faster than ONNX Runtime, and needs no converter beyond TensorFlow (README, "Fast answers")."""


def fast_model_record(
    result: ExportResult | None,
    started: float,
    *,
    split: str | None = None,
    penalty: dict | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """``metrics.json``'s ``fast_model`` record: which file, whether commands may answer with it, and its check against Keras.

    ``ok`` is true only for a float copy checked within the export bounds
    (:data:`~lenet_cli.engine.export_verify.MAX_ABS_DIFF`,
    :data:`~lenet_cli.engine.export_verify.MIN_ARGMAX_AGREEMENT`); ``penalty``
    is the run's L1 and L2 terms of these weights, which ``lenet evaluate``
    reports beside the copy's cross-entropy (the copy itself cannot compute
    them).
    """
    verified = result is not None and result.verified_on > 0 and result.quantize == "none"
    checked = result if verified else None
    if error is None and result is not None and not verified:
        error = f"not checked against model.keras ({'quantized' if result.quantize != 'none' else 'written with verify off'})"
    return {
        "file": runs.FAST_MODEL_FILE if result is not None else None,
        "format": FAST_MODEL_FORMAT,
        "ok": error is None and verified,
        "compared_on": split if verified else None,
        "images": checked.verified_on if checked is not None else None,
        "max_abs_diff": checked.max_abs_diff if checked is not None else None,
        "argmax_agreement": checked.argmax_agreement if checked is not None else None,
        "penalty": penalty,
        "seconds": time.perf_counter() - started,
        "error": error,
    }


def write_fast_model(
    model,
    run_dir: Path,
    metadata: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    split: str,
    penalty: dict | None = None,
) -> dict[str, Any]:
    """Give a run its TensorFlow-free copy: write ``model.tflite`` and its sidecar, check it against ``probabilities``.

    The check is :func:`~lenet_cli.engine.export_verify.verify_export`'s, on
    ``images`` of ``split`` (the validation split at the end of training),
    with ``probabilities`` the Keras model's answers. A conversion or a check that fails leaves nothing
    under the copy's name and never raises: the record says ``ok: false``
    and why, and the commands answer with ``model.keras``.

    Returns:
        ``metrics.json``'s ``fast_model`` record (:func:`fast_model_record`).
    """
    started = time.perf_counter()
    final = Path(run_dir) / runs.FAST_MODEL_FILE
    reference = Reference(as_model_input(images), np.asarray(labels).astype(np.int64), probabilities, split)
    try:
        if len(images) == 0:
            raise ExportError(f"no {split} images to check it on")
        result = write_one(model, ExportTarget(FAST_MODEL_FORMAT, final, metadata), None, reference, None)
    except Exception as exc:  # any converter or runtime failure: the run still finishes, with model.keras
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return fast_model_record(
            None,
            started,
            split=split,
            penalty=penalty,
            error=text if isinstance(exc, LenetError) else f"{type(exc).__name__}: {text}",
        )
    return fast_model_record(result, started, split=split, penalty=penalty)


def record_in_run(
    result: ExportResult, source: runs.ModelRef, keras_model, run_config: dict | None, started: float
) -> None:
    """An export written as a run's ``model.tflite`` becomes its fast copy: its check goes into the run's ``metrics.json``."""
    run_dir = source.run_dir or source.model_path.parent  # a run directory, or its model.keras named directly
    if (
        result.format != FAST_MODEL_FORMAT
        or source.model_path.name != runs.MODEL_FILE
        or not (run_dir / runs.METRICS_FILE).is_file()
        or result.path.resolve() != (run_dir / runs.FAST_MODEL_FILE).resolve()
    ):
        return
    from lenet_cli.engine.evaluate import penalty_from_weights

    runs.record_fast_model(
        run_dir, fast_model_record(result, started, split="test", penalty=penalty_from_weights(keras_model, run_config))
    )
