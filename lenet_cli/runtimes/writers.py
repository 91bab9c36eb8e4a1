"""Each model format's writer: save a Keras model as that format, with the metadata the format can carry.

The conversions are Keras 3's own (``model.save``, ``model.export`` and its
``ExportArchive``; tf2onnx for ONNX, the TFLite converter for LiteRT).
:data:`lenet_cli.runtimes.formats.FORMATS` names which writer makes which format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.config import INPUT_SHAPE

SAVEDMODEL_METADATA = Path("assets") / "lenet.json"
SAVEDMODEL_PROBABILITIES = "probabilities"
SAVEDMODEL_CLASS = "class"
"""The SavedModel signature's outputs: what TensorFlow Serving answers for each image (the class as int64, the index of the top probability)."""


def _input_spec(tf):
    return tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name="image")


def write_keras(model, path: Path, **_) -> None:
    model.save(path)


def write_savedmodel(model, path: Path, metadata: dict, **_) -> None:
    """A SavedModel whose ``serving_default`` signature takes ``image`` and answers ``probabilities`` and ``class``.

    The layout TensorFlow Serving loads as it is (one version folder of a model's base folder); the metadata
    goes in ``assets/``, which TensorFlow Serving ignores and :mod:`lenet_cli.runtimes.loading` reads.
    """
    import keras

    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image):
        probabilities = model(image, training=False)
        return {SAVEDMODEL_PROBABILITIES: probabilities, SAVEDMODEL_CLASS: tf.argmax(probabilities, axis=-1)}

    archive.add_endpoint("serve", serve, input_signature=[_input_spec(tf)])
    archive.write_out(str(path), verbose=False)
    (path / SAVEDMODEL_METADATA).parent.mkdir(exist_ok=True)
    (path / SAVEDMODEL_METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def write_litert(model, path: Path, quantize: str, calibration: np.ndarray | None, **_) -> None:
    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    options: dict[str, Any] = {}
    if quantize != "none":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        assert calibration is not None, "the exporter loads calibration images whenever it asks for int8"
        images = calibration
        options["representative_dataset"] = lambda: ([images[i : i + 1]] for i in range(len(images)))
    model.export(str(path), format="litert", verbose=False, input_signature=[_input_spec(tf)], **options)


def write_onnx(model, path: Path, metadata: dict, **_) -> None:
    import onnx

    from lenet_cli.core.tensorflow_env import import_tensorflow

    tf = import_tensorflow()
    model.export(str(path), format="onnx", verbose=False, input_signature=[_input_spec(tf)])
    proto = onnx.load(str(path))
    name_tensors(proto.graph)
    props = {
        key: json.dumps(value) if isinstance(value, (list, dict)) or value is None else str(value)
        for key, value in metadata.items()
    }
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


ONNX_INPUT = "image"
ONNX_OUTPUT = "probabilities"
ONNX_BATCH = "batch"


def name_tensors(graph) -> None:
    """Name the ONNX graph's input ``image`` and output ``probabilities``, with a ``batch`` dimension, as the SavedModel's.

    tf2onnx names them after TensorFlow's tensors (``Identity:0``, ``unk__103``);
    every reference to a renamed tensor inside the graph is renamed with it.
    """
    renames = {}
    if len(graph.input) == 1:
        renames[graph.input[0].name] = ONNX_INPUT
    if len(graph.output) == 1:
        renames[graph.output[0].name] = ONNX_OUTPUT
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in [*graph.input, *graph.output]:
        value.name = renames.get(value.name, value.name)
        dims = value.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].dim_param = ONNX_BATCH
