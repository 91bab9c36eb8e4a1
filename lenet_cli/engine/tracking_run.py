"""What a tracked training run sends to MLflow besides its curves: its results, figures and model, and the Keras callback.

The connection, the guard and the primitives are :mod:`lenet_cli.engine.tracking`'s;
this module decides what a finished run is worth logging. Everything here runs
after TensorFlow has started (it trains the run), and MLflow's Keras flavour is
imported only to log the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.engine.tracking import METRICS_KEY, NOT_RESULTS, RUN_FILE, RunTracker
from lenet_cli.store import runs
from lenet_cli.store.atomic import write_json_atomic

# --- A finished training run: results, figures, model ------------------------------------------------------


def finish_training(
    tracker: RunTracker, run_dir: Path, metrics: dict[str, Any], data, epochs: int
) -> dict[str, Any] | None:
    """Log a finished run's results: ``metrics.json``'s numbers, its files, figures and model; register the model if asked.

    ``metrics.json`` records the MLflow run (its ``mlflow`` block) before it is uploaded. A nested run (a
    tune trial) logs its numbers only. Returns the record written, or None when the run is not tracked.
    """
    if tracker.settings is None or tracker.run_id is None:
        return None
    results = {k: v for k, v in metrics.items() if k not in NOT_RESULTS}
    tracker.log_metrics(results, epochs, "logging the results")
    _write_record(run_dir, tracker)
    if tracker.parent is None:
        tracker.log_files(
            [
                run_dir / name
                for name in (
                    runs.CONFIG_FILE,
                    runs.METRICS_FILE,
                    runs.HISTORY_FILE,
                    runs.FAST_MODEL_FILE,
                    runs.FAST_MODEL_FILE + ".lenet.json",
                )
            ]
        )
        if tracker.active:
            tracker.log_pictures(_figures(run_dir, data))
        _log_model(tracker, run_dir)
    return _write_record(run_dir, tracker)


def _write_record(run_dir: Path, tracker: RunTracker) -> dict[str, Any]:
    record = tracker.record()
    path = Path(run_dir) / runs.METRICS_FILE
    saved = runs.read_json_or_none(path)
    if isinstance(saved, dict):
        write_json_atomic(path, {**saved, METRICS_KEY: record})
    write_json_atomic(Path(run_dir) / RUN_FILE, record)
    return record


def _figures(run_dir: Path, data) -> dict[str, bytes]:
    """The shipped model's confusion matrix and reliability diagram on the test split (validation when test was not read)."""
    import numpy as np

    from lenet_cli.core.metrics import classification_report
    from lenet_cli.model.inference import KerasPredictor
    from lenet_cli.model.network import load_model_file
    from lenet_cli.viz.confusion import render_confusion_matrix_png
    from lenet_cli.viz.reliability import render_reliability_png

    split_name = "test" if data.test is not None and len(data.test) else "validation"
    split = data.split(split_name)
    if len(split) == 0:
        return {}
    model = load_model_file(Path(run_dir) / runs.MODEL_FILE)
    report = classification_report(
        split.labels, KerasPredictor(model).logits(split.images), list(data.class_names), top_k=1
    )
    title = f"{Path(run_dir).name} {split_name}"
    return {
        "confusion_matrix.png": render_confusion_matrix_png(
            np.array(report["confusion_matrix"]), list(data.class_names), f"{title}: accuracy {report['accuracy']:.4f}"
        ),
        "reliability.png": render_reliability_png(
            report["calibration"]["bins"], report["calibration"]["ece"], f"{title}: reliability"
        ),
    }


def _log_model(tracker: RunTracker, run_dir: Path) -> None:
    """``model.keras`` through MLflow's Keras flavour (loadable with ``safe_mode`` on), registered under ``register`` if given."""
    if not tracker.active or tracker.run_id is None:
        return
    assert tracker.settings is not None
    register = tracker.settings.register
    with tracker._guard("logging the model"):
        import keras
        import mlflow.keras
        import numpy as np
        from mlflow.models import Model
        from mlflow.models.signature import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec

        from lenet_cli import __version__
        from lenet_cli.core.tensorflow_env import import_tensorflow
        from lenet_cli.model.network import load_model_file

        tf = import_tensorflow()
        model = load_model_file(Path(run_dir) / runs.MODEL_FILE)
        shape = tuple(-1 if d is None else int(d) for d in model.input_shape)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype("float32"), shape)]),
            outputs=Schema([TensorSpec(np.dtype("float32"), (-1, int(model.output_shape[-1])))]),
        )
        requirements = [f"lenet-cli=={__version__}", f"keras=={keras.__version__}", f"tensorflow-cpu=={tf.__version__}"]
        info = Model.log(
            None,
            flavor=mlflow.keras,
            name="model",
            run_id=tracker.run_id,
            model=model,
            signature=signature,
            pip_requirements=requirements,
            registered_model_name=register,
            await_registration_for=0,
            metadata={
                "lenet_custom_objects": "import lenet_cli.model.layers before loading (LocalResponseNormalization)"
            },
        )
        if register is not None and info.registered_model_version is not None:
            tracker.registered = {"name": register, "version": int(info.registered_model_version)}


# --- The Keras callback ------------------------------------------------------------------------------------


def tracking_callback(tracker: RunTracker, run_dir: Path, resume: bool):
    """A Keras callback that starts the MLflow run when training begins and logs every epoch's logs at ``step`` = its number."""
    import keras

    class MlflowLogger(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()

        def on_train_begin(self, logs=None):
            tracker.begin_run(run_dir, resume)

        def on_epoch_end(self, epoch, logs=None):
            tracker.log_epoch(epoch + 1, dict(logs or {}))

    return MlflowLogger()
