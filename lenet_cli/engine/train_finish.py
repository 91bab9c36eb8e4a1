"""The end of a run: calibrate, save the model that ships and its TensorFlow-free copy, score it, write metrics.

Apart from the epoch loop (:mod:`lenet_cli.engine.trainer`) because it runs
once, after the last epoch, and touches what the loop never does: the test
split, the calibration temperature, the fast model's export and ``LATEST``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from lenet_cli.core import config as C
from lenet_cli.core.config import TrainConfig
from lenet_cli.core.units import plural
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.engine.train_session import Session, TrainResult, score
from lenet_cli.model.checkpoint import TrainingState
from lenet_cli.store import runs
from lenet_cli.store.atomic import atomic_path, write_json_atomic


def calibrate(session: Session, validation: Split) -> dict | None:
    """Fit a temperature on the validation split and fold it into the shipped model (:mod:`lenet_cli.model.calibration`).

    Returns ``metrics.json``'s ``calibration`` block: the temperature, whether
    it was kept and why, and the validation cross-entropy and ECE before and
    after (after: of the model that ships); None when switched off. A fitted
    temperature that makes either validation figure worse is not folded in.
    """
    from lenet_cli.model.calibration import choose_temperature, fold_temperature

    if not session.cfg.calibrate:
        return None
    if len(validation) == 0:
        return _not_calibrated("no validation split to fit it on")
    if len(validation) < C.CALIBRATION_MIN_IMAGES:
        return _not_calibrated(
            f"the validation split has {plural(len(validation), 'image')}; "
            f"calibration needs at least {C.CALIBRATION_MIN_IMAGES}"
        )
    if "logits_layer" in session.cfg.freeze:
        return _not_calibrated("logits_layer is frozen")
    block = choose_temperature(session.one_view.logits(validation.images), validation.labels)
    if block["kept"]:
        fold_temperature(session.shipped, block["temperature"])
    if session.predictor is not session.one_view:  # the temperature is fitted per view; report the answers users get
        block["as_answered"] = _answer_figures(session.predictor, validation)
    return block


def _answer_figures(predictor, split: Split) -> dict:
    """Validation cross-entropy and ECE of the answers as given (averaged with the mirror image)."""
    from lenet_cli.core.metrics import calibration, logits_from_probabilities, mean_cross_entropy

    probabilities = predictor(split.images)
    return {
        "views": "the picture and its mirror image, averaged",
        "val_cross_entropy": mean_cross_entropy(split.labels, logits_from_probabilities(probabilities)),
        "val_ece": calibration(split.labels, probabilities)["ece"],
    }


def _shipped_val_cross_entropy(calibrated: dict | None, last_epoch: dict) -> float | None:
    """The validation cross-entropy of the model that ships, as it answers (after any temperature, with any mirror)."""
    block = calibrated or {}
    if "as_answered" in block:
        return block["as_answered"]["val_cross_entropy"]
    return block.get("val_cross_entropy_after", last_epoch.get("val_cross_entropy"))


def _not_calibrated(reason: str) -> dict:
    """The block of a run that ships no temperature because none could be fitted (``skipped`` is what the train table prints)."""
    return {"temperature": None, "skipped": reason, "kept": False, "reason": reason}


def _write_fast_model(model, predictor, data: Dataset, run_dir: Path, cfg: TrainConfig) -> dict:
    """The run's TensorFlow-free ``model.tflite``, checked on the validation split (the test split without one).

    Written now, while TensorFlow is loaded anyway, with the metadata every
    export carries; returns ``metrics.json``'s ``fast_model`` record
    (:func:`lenet_cli.engine.fast_model.write_fast_model`), which says ``ok: false``
    and why when the conversion or the check failed.
    """
    from lenet_cli.engine.evaluate import penalty_from_weights
    from lenet_cli.engine.export_write import export_metadata
    from lenet_cli.engine.fast_model import FAST_MODEL_FORMAT, write_fast_model

    validation = data.split("validation")
    split, name = (validation, "validation") if len(validation) else (data.split("test"), "test")
    run_config = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
    metadata = export_metadata(
        cfg.dataset, run_config, FAST_MODEL_FORMAT, "none", run_dir / runs.MODEL_FILE, data.class_names, cfg.preprocess
    )
    return write_fast_model(
        model,
        run_dir,
        metadata,
        split.images,
        split.labels,
        predictor(split.images),
        name,
        penalty_from_weights(model, run_config),
    )


def finish(
    session: Session, data: Dataset, state: TrainingState, run_dir: Path, runs_dir, distribution, keep_checkpoint: bool
) -> TrainResult:
    """Calibrate and save the model (no training state) and its TensorFlow-free copy, score it on the whole test split,
    write metrics, mark it latest.

    The checkpoint then goes (unless kept): like Keras's ``BackupAndRestore``, it
    exists to resume an unfinished run, and it is three times the model's size.
    """
    from lenet_cli.model.distributed import weights_digest
    from lenet_cli.runtimes.loading import SIDECAR_SUFFIX

    cfg = session.cfg
    chief = distribution is None or distribution.is_chief
    for stale in (
        runs.FAST_MODEL_FILE,
        runs.FAST_MODEL_FILE + SIDECAR_SUFFIX,
    ):  # never a copy of other weights beside the new model
        (run_dir / stale).unlink(missing_ok=True)
    session.optimizer.finalize_variable_values(session.step.trainable)  # with EMA: the averaged weights ship
    session.model.optimizer = None  # the shipped model carries no training state
    session.sync_shipped()
    model = session.shipped  # float32, whatever precision trained it
    calibrated = calibrate(session, data.split("validation"))
    for name in cfg.freeze:
        model.get_layer(name).trainable = True
    with atomic_path(run_dir / runs.MODEL_FILE) as tmp:
        model.save(tmp)
    test = (
        score(session.predictor, data.test) if data.test is not None else {"accuracy": None}
    )  # None: not loaded, never read
    fast_model = (
        _write_fast_model(model, session.predictor, data, run_dir, cfg) if chief else None
    )  # as lenet answers with it
    # without a validation split its scores are NaN in the history (null in history.json); here they are null too, for strict readers
    last = {
        k: v
        for k, v in (state.history[-1] if state.history else {}).items()
        if not (isinstance(v, float) and math.isnan(v))
    }
    metrics = {
        "dataset": cfg.dataset,
        "test_accuracy": test["accuracy"],
        "test_count": len(data.test) if data.test is not None else None,
        "val_accuracy": last.get("val_accuracy"),
        "val_cross_entropy": _shipped_val_cross_entropy(calibrated, last),
        "calibration": calibrated,
        "best_val_accuracy": state.best_val_accuracy,
        "train_accuracy": last.get("accuracy"),
        "epochs": cfg.epochs,
        "train_seconds": float(sum(h["epoch_seconds"] for h in state.history)),  # every epoch, across resumes
        "images_per_second": float(np.mean([h["images_per_second"] for h in state.history])) if state.history else None,
        "data_source": str(data.source),
        runs.FAST_MODEL_KEY: fast_model,
    }
    write_json_atomic(run_dir / runs.METRICS_FILE, metrics)
    if chief:
        runs.mark_latest(run_dir, runs_dir)
    if not keep_checkpoint:
        (run_dir / runs.CHECKPOINT_FILE).unlink(missing_ok=True)
    return TrainResult(run_dir, cfg, state.history, metrics, weights_digest(model, C.WEIGHT_LAYERS))
