"""Every model format lenet reads and writes, in one table: its name, file, extra, reader and writer.

Adding a format is one row here (and its reader and writer); the exporter,
the loader and ``--to``'s choices all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.runtimes import readers, writers


@dataclass(frozen=True)
class ModelFormat:
    """One model format.

    Attributes:
        name: The ``--to`` value and the ``format`` field of every record.
        suffix: The file suffix that names it, or None for a directory (a SavedModel).
        file_name: Its name in a ``--to all`` folder.
        extra: The pip extra its runtime needs, or None.
        write_modules: Modules the writer needs (checked before any work).
        read_modules: Modules the reader needs (checked before verifying).
        runtime: What loads it, for people.
        reader: ``(path, batch_size) -> OpenedModel``.
        writer: ``(keras_model, path, *, metadata, quantize, calibration) -> None``.
    """

    name: str
    suffix: str | None
    file_name: str
    extra: str | None
    write_modules: tuple[str, ...]
    read_modules: tuple[str, ...]
    runtime: str
    reader: Callable[..., readers.OpenedModel]
    writer: Callable[..., None]


FORMATS: dict[str, ModelFormat] = {f.name: f for f in (
    ModelFormat("keras", ".keras", "model.keras", None, (), (), "Keras (TensorFlow)", readers.open_keras, writers.write_keras),
    ModelFormat("savedmodel", None, "saved_model", None, (), (), "TensorFlow SavedModel", readers.open_savedmodel,
                writers.write_savedmodel),
    ModelFormat("litert", ".tflite", "model.tflite", "litert", (), ("ai_edge_litert",), "LiteRT interpreter", readers.open_litert,
                writers.write_litert),
    ModelFormat("onnx", ".onnx", "model.onnx", "onnx", ("tf2onnx", "onnx"), ("onnxruntime",), "ONNX Runtime", readers.open_onnx,
                writers.write_onnx),
)}
"""The formats by name, in ``--to all``'s order."""

SUFFIX_FORMATS = {f.suffix: f.name for f in FORMATS.values() if f.suffix is not None}


def model_format(path: Path) -> str:
    """The format of the model at ``path`` (a directory is a SavedModel), or ``unknown``."""
    if path.is_dir():
        return "savedmodel"
    return SUFFIX_FORMATS.get(path.suffix.lower(), "unknown")
