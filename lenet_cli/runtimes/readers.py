"""Each model format's reader: open a file in its own runtime and return a batched predict function.

Only the Keras and SavedModel readers import TensorFlow; ONNX Runtime and
LiteRT are imported on first use, so a TensorFlow-free model stays fast.
:data:`lenet_cli.runtimes.formats.FORMATS` names which reader opens which format.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.config import INPUT_SHAPE
from lenet_cli.core.deferred_ctrl_c import ctrl_c_deferred
from lenet_cli.core.errors import ModelError
from lenet_cli.core.inputs import as_model_input
from lenet_cli.core.tensorflow_env import quiet_native_stderr
from lenet_cli.runtimes.extras import missing_extra

SERVING_SIGNATURE = "serving_default"


@dataclass
class OpenedModel:
    """A model opened in its runtime: probabilities for a batch, and (Keras only) the model and its logits."""

    predict: Callable[[np.ndarray], np.ndarray]
    keras_model: Any = None
    logits: Callable[[np.ndarray], np.ndarray] | None = None


def _batched(
    run: Callable[[np.ndarray], np.ndarray], batch_size: int, num_classes: int
) -> Callable[[np.ndarray], np.ndarray]:
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
        raise ModelError(f"{str(path)!r} outputs shape {list(shape)}, not [N, classes]; it is not a lenet model")
    return int(shape[-1])


def _check_input_shape(path: Path, shape) -> None:
    if len(shape) != 4 or tuple(d if isinstance(d, int) else None for d in shape[1:]) != INPUT_SHAPE:
        raise ModelError(
            f"{str(path)!r} expects inputs of shape {list(shape)}, not [N, {', '.join(map(str, INPUT_SHAPE))}]; it is not a lenet model"
        )


@functools.lru_cache(maxsize=4)
def _onnx_session_cached(path: str, mtime_ns: int, size: int):
    try:
        with ctrl_c_deferred():
            import onnxruntime
    except ImportError:
        raise missing_extra("onnx", "Running .onnx models") from None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load ONNX model {path!r}: {first}") from None


def onnx_session(path: Path):
    """One ONNX Runtime session per file version, shared by :func:`read_metadata` and :func:`open_model`."""
    stat = path.stat()
    return _onnx_session_cached(str(path), stat.st_mtime_ns, stat.st_size)


def open_onnx(path: Path, batch_size: int) -> OpenedModel:
    session = onnx_session(path)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelError(f"{str(path)!r} has {len(inputs)} inputs; a lenet model has one")
    _check_input_shape(path, inputs[0].shape)
    name = inputs[0].name
    return OpenedModel(
        _batched(
            lambda x: session.run(None, {name: x})[0], batch_size, _class_count(path, session.get_outputs()[0].shape)
        )
    )


class _LiteRTRunner:
    """Run a ``.tflite`` model on batches: the input tensor is resized to each batch's size."""

    def __init__(self, path: Path):
        try:
            with ctrl_c_deferred():
                from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise missing_extra("litert", "Running .tflite models") from None
        try:
            with quiet_native_stderr():  # the delegate notice may come at construction, allocation or first invoke
                self.interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count() or 1)
        except (ValueError, RuntimeError) as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"cannot load LiteRT model {str(path)!r}: {first}") from None
        inputs = self.interpreter.get_input_details()
        if len(inputs) != 1:
            raise ModelError(f"{str(path)!r} has {len(inputs)} inputs; a lenet model has one")
        self.input = inputs[0]
        self.output = self.interpreter.get_output_details()[0]
        _check_input_shape(path, [None, *[int(d) for d in self.input["shape_signature"][1:]]])
        self.num_classes = _class_count(path, [None, *[int(d) for d in self.output["shape_signature"][1:]]])
        self.batch: int | None = None
        self.invoked = False

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.batch != len(x):
            self.interpreter.resize_tensor_input(self.input["index"], [len(x), *INPUT_SHAPE])
            with quiet_native_stderr():
                self.interpreter.allocate_tensors()
            self.batch = len(x)
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32 and scale:
            x = np.clip(
                np.round(x / scale + zero_point), np.iinfo(self.input["dtype"]).min, np.iinfo(self.input["dtype"]).max
            )
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


def open_savedmodel(path: Path, batch_size: int) -> OpenedModel:
    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    try:
        loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"cannot load SavedModel {str(path)!r}: {first}") from None
    if SERVING_SIGNATURE not in loaded.signatures:
        raise ModelError(
            f"SavedModel {str(path)!r} has no {SERVING_SIGNATURE!r} signature; export it with `lenet export`"
        )
    signature = loaded.signatures[SERVING_SIGNATURE]
    specs = signature.structured_input_signature[1]
    if len(specs) != 1:
        raise ModelError(f"SavedModel {str(path)!r} takes {len(specs)} inputs; a lenet model takes one")
    ((name, spec),) = specs.items()
    _check_input_shape(path, spec.shape.as_list())
    output_specs = signature.structured_outputs
    output_spec = (
        output_specs["probabilities"] if "probabilities" in output_specs else next(iter(output_specs.values()))
    )
    num_classes = _class_count(path, output_spec.shape.as_list())

    def run(x: np.ndarray) -> np.ndarray:
        outputs = signature(**{name: tf.constant(x)})
        out = outputs["probabilities"] if "probabilities" in outputs else next(iter(outputs.values()))
        return out.numpy()

    run.keep_alive = loaded  # type: ignore[attr-defined]  # the signature needs its SavedModel object alive
    return OpenedModel(_batched(run, batch_size, num_classes))


def open_litert(path: Path, batch_size: int) -> OpenedModel:
    runner = _LiteRTRunner(path)
    return OpenedModel(_batched(runner, batch_size, runner.num_classes))


def open_keras(path: Path, batch_size: int) -> OpenedModel:
    """A ``.keras`` file through Keras with ``safe_mode=True`` (imports TensorFlow)."""
    from lenet_cli.core.tensorflow_env import import_tensorflow

    import_tensorflow()  # quietly, before Keras imports it
    from lenet_cli.model.inference import KerasPredictor
    from lenet_cli.model.network import load_model_file

    model = load_model_file(path)
    _check_input_shape(path, [None, *model.input_shape[1:]])
    try:
        model.get_layer("logits_layer")
    except ValueError:
        raise ModelError(f"{str(path)!r} has no logits_layer; it is not a lenet model") from None
    predictor = KerasPredictor(model, batch_size=batch_size)
    return OpenedModel(predictor, model, predictor.logits)
