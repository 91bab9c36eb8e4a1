"""A digit model whose answers are predictable, for the server and browser tests: no training needed.

It is a real ``.onnx`` lenet model as far as the server can tell (one input
``[N, 28, 28, 1]``, class probabilities out, metadata inside), computing a
nearest-template classifier: each known digit's logit is the correlation of
the 28x28 input with that digit's template, scaled. The templates are digits
drawn with strokes the way a person draws on the page (white on black, thick
round pen) and preprocessed exactly as the server preprocesses uploads, so a
drawn 7 is a 7 and a ring is a 0; digits without a template never win.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CANVAS = 280
PEN = 20
LOGIT_SCALE = 8.0

# Strokes of each templated digit on a 280x280 canvas: polylines, or ("ellipse", box).
DIGIT_STROKES: dict[int, list] = {
    0: [("ellipse", (75, 35, 205, 245))],
    1: [[(150, 40), (150, 240)]],
    4: [[(170, 40), (70, 170), (215, 170)], [(170, 40), (170, 240)]],
    7: [[(70, 50), (210, 50), (120, 240)]],
}


def draw_digit(
    digit: int, size: int = CANVAS, dark_on_light: bool = False, offset=(0, 0), scale: float = 1.0
) -> Image.Image:
    """A digit drawn with a round pen, as on the drawing page (or dark ink on paper)."""
    background, ink = (255, 30) if dark_on_light else (0, 255)
    image = Image.new("L", (size, size), background)
    pen = ImageDraw.Draw(image)
    k = scale * size / CANVAS

    def at(x, y):
        return (offset[0] + x * k, offset[1] + y * k)

    width = max(2, round(PEN * k))
    for stroke in DIGIT_STROKES[digit]:
        if stroke[0] == "ellipse":
            x0, y0, x1, y1 = stroke[1]
            pen.ellipse([*at(x0, y0), *at(x1, y1)], outline=ink, width=width)
            continue
        points = [at(x, y) for x, y in stroke]
        pen.line(points, fill=ink, width=width, joint="curve")
        for x, y in points:
            pen.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=ink)
    return image


def templates() -> dict[int, np.ndarray]:
    """Each templated digit, preprocessed as the server preprocesses an upload (28x28 in [0, 1])."""
    from lenet_cli.data.preprocess import PreprocessOptions, preprocess

    return {d: preprocess(np.asarray(draw_digit(d)), PreprocessOptions("mnist")) for d in DIGIT_STROKES}


def template_weights() -> tuple[np.ndarray, np.ndarray]:
    """``(W [784, 10], b [10])``: centred unit-norm templates; digits without one get a very low bias."""
    weights = np.zeros((784, 10), np.float32)
    bias = np.full(10, -30.0, np.float32)
    for digit, template in templates().items():
        t = template.ravel() - template.mean()
        weights[:, digit] = LOGIT_SCALE * t / np.linalg.norm(t)
        bias[digit] = 0.0
    return weights, bias


def reference_probabilities(inputs: np.ndarray) -> np.ndarray:
    """What the model answers for ``(n, 28, 28[, 1])`` inputs, in numpy (to check the server's numbers)."""
    weights, bias = template_weights()
    logits = inputs.reshape(len(inputs), 784).astype(np.float64) @ weights + bias
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def write_template_onnx(path: Path, dataset: str = "mnist") -> Path:
    """Write the template classifier as an ``.onnx`` lenet model with its metadata inside."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from lenet_cli.data.dataset import CLASS_NAMES

    weights, bias = template_weights()
    graph = helper.make_graph(
        [
            helper.make_node("Reshape", ["image", "flat_shape"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["scores"]),
            helper.make_node("Add", ["scores", "bias"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "templates",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=[
            numpy_helper.from_array(np.array([-1, 784], np.int64), "flat_shape"),
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(bias, "bias"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {
        "dataset": dataset,
        "class_names": json.dumps(list(CLASS_NAMES[dataset])),
        "preprocessing": dataset,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path
