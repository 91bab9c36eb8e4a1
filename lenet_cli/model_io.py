"""Open a trained model for inference, whatever its format, with what it knows about itself.

Every loaded model answers the same two questions: which dataset (and so
which class names and preprocessing) it belongs to, and what class
probabilities it gives for a batch of 28x28 inputs in [0, 1].

``.keras`` files load through Keras with ``safe_mode=True``. A model's dataset
comes from its run's ``config.json`` (beside the model file), or from the
export metadata sidecar ``<model>.lenet.json`` that ``lenet export`` writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lenet_cli.errors import LenetError
from lenet_cli.runs import ModelRef

SIDECAR_SUFFIX = ".lenet.json"


@dataclass
class LoadedModel:
    """A model ready to predict, plus the facts about it later commands need."""

    path: Path
    format: str  # keras | onnx | litert | savedmodel
    dataset: str | None
    predict_fn: Callable[[np.ndarray], np.ndarray]
    run_config: dict[str, Any] | None = None
    keras_model: Any = None

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, 10)`` for uint8 ``(n, 28, 28)`` or float ``(n, 28, 28[, 1])`` inputs in [0, 1]."""
        return self.predict_fn(inputs)


def read_metadata(ref: ModelRef) -> dict[str, Any]:
    """The model's metadata: its run config, else its export sidecar, else empty."""
    config = ref.run_config()
    if config is not None:
        return {"dataset": config.get("dataset"), "run_config": config}
    sidecar = Path(str(ref.model_path) + SIDECAR_SUFFIX)
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise LenetError(f"metadata {str(sidecar)!r} is unreadable or not valid JSON; export the model again") from None
        return {"dataset": meta.get("dataset"), "run_config": meta.get("run_config")}
    return {"dataset": None, "run_config": None}


def model_format(path: Path) -> str:
    if path.is_dir():
        return "savedmodel"
    suffix = path.suffix.lower()
    return {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}.get(suffix, "unknown")


def open_model(ref: ModelRef, batch_size: int = 1000) -> LoadedModel:
    """Load the model ``ref`` points at.

    Raises:
        LenetError: unknown format, unreadable or unsafe file.
    """
    meta = read_metadata(ref)
    fmt = model_format(ref.model_path)
    if fmt == "keras":
        from lenet_cli.inference import BatchPredictor
        from lenet_cli.model import load_model_file

        model = load_model_file(ref.model_path)
        shape = tuple(model.input_shape[1:])
        if shape != (28, 28, 1):
            raise LenetError(f"{str(ref.model_path)!r} expects inputs of shape {shape}, not 28x28x1; it is not a lenet model")
        predictor = BatchPredictor(model, batch_size=batch_size)
        return LoadedModel(ref.model_path, fmt, meta["dataset"], predictor, meta["run_config"], model)
    raise LenetError(f"{str(ref.model_path)!r}: unsupported model format; pass a run directory or a .keras file")
