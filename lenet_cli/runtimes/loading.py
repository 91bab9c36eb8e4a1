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

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lenet_cli.core.config import INFERENCE_BATCH_SIZE, INPUT_SHAPE
from lenet_cli.core.errors import LenetError
from lenet_cli.core.inputs import as_model_input
from lenet_cli.store.runs import ModelRef
from lenet_cli.core.tensorflow_env import quiet_native_stderr

SIDECAR_SUFFIX = ".lenet.json"
SAVEDMODEL_METADATA = Path("assets") / "lenet.json"
SERVING_SIGNATURE = "serving_default"
JSON_METADATA_KEYS = ("class_names", "run_config")  # ONNX metadata_props values that hold JSON

EXTRA_HINTS = {
    "onnx": "pip install 'lenet-cli[onnx]'",
    "litert": "pip install 'lenet-cli[litert]'",
}


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


def missing_extra(extra: str, what: str) -> LenetError:
    """The one-line error for an optional dependency that is not installed."""
    return LenetError(f"{what} needs the {extra} extra: {EXTRA_HINTS[extra]}")


def model_format(path: Path) -> str:
    if path.is_dir():
        return "savedmodel"
    suffix = path.suffix.lower()
    return {".keras": "keras", ".onnx": "onnx", ".tflite": "litert"}.get(suffix, "unknown")


_METADATA_TYPES = {"dataset": str, "run_config": dict, "class_names": list, "preprocessing": str}


def _metadata_from(meta: dict[str, Any], source: str) -> dict[str, Any]:
    for key, kind in _METADATA_TYPES.items():
        value = meta.get(key)
        if value is not None and not isinstance(value, kind):
            raise LenetError(f"the model's {source} metadata has a {key!r} that is not a {kind.__name__}; export the model again")
    if meta.get("class_names") is not None and not all(isinstance(name, str) for name in meta["class_names"]):
        raise LenetError(f"the model's {source} metadata has class_names that are not all text; export the model again")
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
        raise LenetError(f"metadata {str(path)!r} is unreadable or not valid JSON; export the model again") from None
    if not isinstance(meta, dict):
        raise LenetError(f"metadata {str(path)!r} is not a JSON object; export the model again")
    return meta


def _embedded_metadata(path: Path, fmt: str) -> dict[str, Any] | None:
    """Metadata stored inside the exported model itself, or None."""
    if fmt == "onnx":
        props = dict(_onnx_session(path).get_modelmeta().custom_metadata_map)
        if "dataset" not in props:
            return None
        meta: dict[str, Any] = dict(props)
        for key in JSON_METADATA_KEYS:
            if key in meta:
                try:
                    meta[key] = json.loads(meta[key])
                except ValueError:
                    raise LenetError(f"{str(path)!r}: ONNX metadata {key!r} is not valid JSON; export the model again") from None
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
        from lenet_cli.data.idx import CLASS_NAMES

        names = config.get("class_names") or CLASS_NAMES.get(config.get("dataset"))  # runs from before own data: the built-in names
        return _metadata_from({"dataset": config.get("dataset"), "run_config": config, "preprocessing": config.get("preprocess") or config.get("dataset"),
                               "class_names": list(names) if names else None}, "run config")
    if fmt == "keras" and sidecar.is_file():
        return _metadata_from(_read_json(sidecar), "sidecar")
    return _metadata_from({}, None)


def _batched(run: Callable[[np.ndarray], np.ndarray], batch_size: int, num_classes: int) -> Callable[[np.ndarray], np.ndarray]:
    def predict(images: np.ndarray) -> np.ndarray:
        inputs = as_model_input(images)
        outputs = [run(inputs[start : start + batch_size]) for start in range(0, len(inputs), batch_size)]
        if not outputs:
            return np.zeros((0, num_classes), dtype=np.float32)
        return np.concatenate(outputs, axis=0).astype(np.float32, copy=False)

    return predict


def _class_count(path: Path, shape) -> int:
    """The class count from a runtime's static output shape ``[N, classes]``."""
    if len(shape) != 2 or not isinstance(shape[-1], int) or shape[-1] < 1:
        raise LenetError(f"{str(path)!r} outputs shape {list(shape)}, not [N, classes]; it is not a lenet model")
    return int(shape[-1])


def _check_input_shape(path: Path, shape) -> None:
    if len(shape) != 4 or tuple(d if isinstance(d, int) else None for d in shape[1:]) != INPUT_SHAPE:
        raise LenetError(f"{str(path)!r} expects inputs of shape {list(shape)}, not [N, {', '.join(map(str, INPUT_SHAPE))}]; it is not a lenet model")


@functools.lru_cache(maxsize=4)
def _onnx_session_cached(path: str, mtime_ns: int, size: int):
    try:
        import onnxruntime
    except ImportError:
        raise missing_extra("onnx", "Running .onnx models") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LenetError(f"cannot load ONNX model {path!r}: {first}") from None


def _onnx_session(path: Path):
    """One ONNX Runtime session per file version, shared by :func:`read_metadata` and :func:`open_model`."""
    stat = path.stat()
    return _onnx_session_cached(str(path), stat.st_mtime_ns, stat.st_size)


def _open_onnx(path: Path, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    session = _onnx_session(path)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise LenetError(f"{str(path)!r} has {len(inputs)} inputs; a lenet model has one")
    _check_input_shape(path, inputs[0].shape)
    name = inputs[0].name
    return _batched(lambda x: session.run(None, {name: x})[0], batch_size, _class_count(path, session.get_outputs()[0].shape))


class _LiteRTRunner:
    """Run a ``.tflite`` model on batches: the input tensor is resized to each batch's size."""

    def __init__(self, path: Path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise missing_extra("litert", "Running .tflite models") from None
        try:
            with quiet_native_stderr():  # the delegate notice may come at construction, allocation or first invoke
                self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise LenetError(f"cannot load LiteRT model {str(path)!r}: {first}") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise LenetError(f"{str(path)!r} has {len(inputs)} inputs; a lenet model has one")
        self.input = inputs[0]
        self.output = self.interpreter.get_output_details()[0]
        _check_input_shape(path, [None, *[int(d) for d in self.input["shape_signature"][1:]]])
        self.num_classes = _class_count(path, [None, *[int(d) for d in self.output["shape_signature"][1:]]])
        self.batch = None
        self.invoked = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.batch != len(x):
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *INPUT_SHAPE])
            with quiet_native_stderr():
                self.interpreter.allocate_tensors()
            self.batch = len(x)
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = np.clip(np.round(x / scale + zero_point), np.iinfo(self.input["dtype"]).min, np.iinfo(self.input["dtype"]).max)
        self.interpreter.set_tensor(self.input["index"], x.astype(self.input["dtype"]))
        if self.invoked:
            self.interpreter.invoke()
        else:
            with quiet_native_stderr():
                self.interpreter.invoke()
            self.invoked = True
        out = self.interpreter.get_tensor(self.output["index"])
        scale, zero_point = self.output["quantization"]
        if self.output["dtype"] != np.float32 and scale:
            out = (out.astype(np.float32) - zero_point) * scale
        return out.copy()


def _open_savedmodel(path: Path, batch_size: int) -> Callable[[np.ndarray], np.ndarray]:
    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LenetError(f"cannot load SavedModel {str(path)!r}: {first}") from None
    if SERVING_SIGNATURE not in loaded.signatures:
        raise LenetError(f"SavedModel {str(path)!r} has no {SERVING_SIGNATURE!r} signature; export it with `lenet export`")
    signature = loaded.signatures[SERVING_SIGNATURE]
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise LenetError(f"SavedModel {str(path)!r} takes {len(specs)} inputs; a lenet model takes one")
    (name, spec), = specs.items()
    _check_input_shape(path, spec.shape.as_list())
    output_specs = signature.structured_outputs
    output_spec = output_specs["probabilities"] if "probabilities" in output_specs else next(iter(output_specs.values()))
    num_classes = _class_count(path, output_spec.shape.as_list())

    def run(x: np.ndarray) -> np.ndarray:
        outputs = signature(**{name: tf.constant(x)})
        out = outputs["probabilities"] if "probabilities" in outputs else next(iter(outputs.values()))
        return out.numpy()

    run.keep_alive = loaded  # the signature needs its SavedModel object alive
    return _batched(run, batch_size, num_classes)


def open_model(ref: ModelRef, batch_size: int = INFERENCE_BATCH_SIZE) -> LoadedModel:
    """Load the model ``ref`` points at.

    ``.onnx`` and ``.tflite`` models load without importing TensorFlow.

    Raises:
        LenetError: unknown format, unreadable or unsafe file, a missing extra.
    """
    path = ref.model_path
    fmt = model_format(path)
    if fmt == "keras":
        meta = read_metadata(ref)
        from lenet_cli.core.tensorflow_env import import_tensorflow

        import_tensorflow()  # quietly, before Keras imports it
        from lenet_cli.model.inference import Predictor
        from lenet_cli.model.network import load_model_file

        model = load_model_file(path)
        _check_input_shape(path, [None, *model.input_shape[1:]])
        try:
            model.get_layer("logits_layer")
        except ValueError:
            raise LenetError(f"{str(path)!r} has no logits_layer; it is not a lenet model") from None
        predictor = Predictor(model, batch_size=batch_size)
        return LoadedModel(path, fmt, meta["dataset"], predictor, meta["run_config"], model, meta, predictor.logits)
    if fmt == "onnx":
        predict = _open_onnx(path, batch_size)
    elif fmt == "litert":
        runner = _LiteRTRunner(path)
        predict = _batched(runner, batch_size, runner.num_classes)
    elif fmt == "savedmodel":
        predict = _open_savedmodel(path, batch_size)
    else:
        raise LenetError(f"{str(path)!r}: unsupported model format; pass a run directory, a .keras, .onnx or .tflite file or a SavedModel directory")
    meta = read_metadata(ref)
    return LoadedModel(path, fmt, meta["dataset"], predict, meta["run_config"], None, meta)
