"""Open a trained model for inference, whatever its format, with what it knows about itself.

Every loaded model answers the same two questions: which dataset (and so
which class names and preprocessing) it belongs to, and what class
probabilities it gives for a batch of 28x28 inputs in [0, 1].

Formats, by path:

* ``.keras``: Keras with ``safe_mode=True`` (imports TensorFlow).
* ``.onnx``: ONNX Runtime (the ``onnx`` extra); never imports TensorFlow.
* ``.tflite``: the LiteRT interpreter (``ai-edge-litert``, the ``litert``
  extra); never imports TensorFlow.
* a SavedModel directory: ``tf.saved_model.load``, its serving signature.

Where a model's metadata comes from, first match wins: for ``.keras``, its
run's ``config.json`` then the sidecar ``<model>.lenet.json``; for exports,
what the file carries (ONNX ``metadata_props``, SavedModel
``assets/lenet.json``), then the sidecar, then a ``config.json`` beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.config import INFERENCE_BATCH_SIZE
from lenet_cli.core.errors import ModelError
from lenet_cli.core.mirror import MirrorAveraged
from lenet_cli.runtimes.formats import FORMATS, model_format
from lenet_cli.runtimes.readers import onnx_session
from lenet_cli.runtimes.writers import SAVEDMODEL_METADATA
from lenet_cli.store.runs import ModelRef

SIDECAR_SUFFIX = ".lenet.json"
JSON_METADATA_KEYS = ("class_names", "run_config")  # ONNX metadata_props values that hold JSON


@dataclass
class LoadedModel:
    """A model ready to predict, plus the facts about it later commands need."""

    path: Path
    format: str  # keras | onnx | litert | savedmodel
    dataset: str | None
    predict_fn: Callable[[np.ndarray], np.ndarray]
    run_config: dict[str, Any] | None = None
    keras_model: Any = None
    metadata: dict[str, Any] | None = None
    logits_fn: Callable[[np.ndarray], np.ndarray] | None = None  # Keras models: the predictor's logits

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, classes)`` for uint8 ``(n, 28, 28)`` or float ``(n, 28, 28[, 1])`` inputs in [0, 1]."""
        return self.predict_fn(inputs)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """The model's logits; for exports, which output probabilities, logits whose softmax they are."""
        if self.logits_fn is not None:
            return self.logits_fn(inputs)
        from lenet_cli.core.metrics import logits_from_probabilities

        return logits_from_probabilities(self.predict_fn(inputs))


_METADATA_TYPES = {"dataset": str, "run_config": dict, "class_names": list, "preprocessing": str}


def _metadata_from(meta: dict[str, Any], source: str | None) -> dict[str, Any]:
    for key, kind in _METADATA_TYPES.items():
        value = meta.get(key)
        if value is not None and not isinstance(value, kind):
            raise ModelError(
                f"the model's {source} metadata has a {key!r} that is not a {kind.__name__}; export the model again"
            )
    if meta.get("class_names") is not None and not all(isinstance(name, str) for name in meta["class_names"]):
        raise ModelError(f"the model's {source} metadata has class_names that are not all text; export the model again")
    return {
        "dataset": meta.get("dataset"),
        "run_config": meta.get("run_config"),
        "class_names": meta.get("class_names"),
        "preprocessing": meta.get("preprocessing"),
        "source": source,
    }


def _read_json(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(f"metadata {str(path)!r} is unreadable or not valid JSON; export the model again") from None
    if not isinstance(meta, dict):
        raise ModelError(f"metadata {str(path)!r} is not a JSON object; export the model again")
    return meta


def _embedded_metadata(path: Path, fmt: str) -> dict[str, Any] | None:
    """Metadata stored inside the exported model itself, or None."""
    if fmt == "onnx":
        props = dict(onnx_session(path).get_modelmeta().custom_metadata_map)
        if "dataset" not in props:
            return None
        meta: dict[str, Any] = dict(props)
        for key in JSON_METADATA_KEYS:
            if key in meta:
                try:
                    meta[key] = json.loads(meta[key])
                except ValueError:
                    raise ModelError(
                        f"{str(path)!r}: ONNX metadata {key!r} is not valid JSON; export the model again"
                    ) from None
        return meta
    if fmt == "savedmodel" and (path / SAVEDMODEL_METADATA).is_file():
        return _read_json(path / SAVEDMODEL_METADATA)
    return None


def read_metadata(ref: ModelRef) -> dict[str, Any]:
    """The model's metadata: ``dataset``, ``run_config``, ``class_names``, ``preprocessing`` and its ``source``.

    Every value is None when the model carries no metadata (pass ``--dataset`` then).

    Raises:
        LenetError: unreadable metadata, or an ``.onnx`` model without onnxruntime.
    """
    path = ref.model_path
    fmt = model_format(path)
    sidecar = Path(str(path) + SIDECAR_SUFFIX)
    if fmt != "keras":
        embedded = _embedded_metadata(path, fmt)
        if embedded is not None:
            return _metadata_from(embedded, "embedded")
        if sidecar.is_file():
            return _metadata_from(_read_json(sidecar), "sidecar")
    config = ref.run_config()
    if config is not None:
        from lenet_cli.data.dataset import CLASS_NAMES

        names = config.get("class_names") or CLASS_NAMES.get(
            config.get("dataset") or ""
        )  # runs from before own data: the built-in names
        return _metadata_from(
            {
                "dataset": config.get("dataset"),
                "run_config": config,
                "preprocessing": config.get("preprocess") or config.get("dataset"),
                "class_names": list(names) if names else None,
            },
            "run config",
        )
    if fmt == "keras" and sidecar.is_file():
        return _metadata_from(_read_json(sidecar), "sidecar")
    return _metadata_from({}, None)


def open_model(
    ref: ModelRef, batch_size: int = INFERENCE_BATCH_SIZE, metadata: dict[str, Any] | None = None
) -> LoadedModel:
    """Load the model ``ref`` points at, in the runtime its format names (:data:`lenet_cli.runtimes.formats.FORMATS`).

    ``.onnx`` and ``.tflite`` models load without importing TensorFlow. ``metadata`` (an export's, before it is
    written beside the file) replaces what :func:`read_metadata` would find.

    Raises:
        LenetError: unknown format, unreadable or unsafe file, a missing extra.
    """
    path = ref.model_path
    fmt = model_format(path)
    if fmt == "unknown":
        raise ModelError(
            f"{str(path)!r}: unsupported model format; pass a run directory, a .keras, .onnx or .tflite file or a SavedModel directory"
        )
    meta = read_metadata(ref) if metadata is None else _metadata_from(metadata, "given")
    opened = FORMATS[fmt].reader(path, batch_size)
    predict, logits = opened.predict, opened.logits
    if answers_mirror_averaged(meta):
        predict = MirrorAveraged(opened.predict)
        logits = predict.logits
    return LoadedModel(path, fmt, meta["dataset"], predict, meta["run_config"], opened.keras_model, meta, logits)


def answers_mirror_averaged(meta: dict[str, Any]) -> bool:
    """Whether the model's recipe averages each answer with the mirror image's (:mod:`lenet_cli.core.mirror`)."""
    return bool((meta.get("run_config") or {}).get("test_time_flip"))
