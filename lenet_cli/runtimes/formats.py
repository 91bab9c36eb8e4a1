"""Every model format lenet reads and writes, in one table: its name, file, extra, reader and writer.

Adding a format is one row here (and its reader and writer); the exporter,
the loader and ``lenet export --to``'s choices all read this table. The table
itself imports nothing heavy (readers and writers are found by name when first
used), so the command line reads it for ``--help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


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
        read_with: The function in :mod:`lenet_cli.runtimes.readers` that opens it.
        write_with: The function in :mod:`lenet_cli.runtimes.writers` that makes it.
    """

    name: str
    suffix: str | None
    file_name: str
    extra: str | None
    write_modules: tuple[str, ...]
    read_modules: tuple[str, ...]
    runtime: str
    read_with: str
    write_with: str

    @property
    def reader(self) -> Callable:
        """``(path, batch_size) -> OpenedModel``."""
        return getattr(importlib.import_module("lenet_cli.runtimes.readers"), self.read_with)

    @property
    def writer(self) -> Callable[..., None]:
        """``(keras_model, path, *, metadata, quantize, calibration) -> None``."""
        return getattr(importlib.import_module("lenet_cli.runtimes.writers"), self.write_with)


FORMATS: dict[str, ModelFormat] = {
    f.name: f
    for f in (
        ModelFormat("keras", ".keras", "model.keras", None, (), (), "Keras (TensorFlow)", "open_keras", "write_keras"),
        ModelFormat(
            "savedmodel",
            None,
            "saved_model",
            None,
            (),
            (),
            "TensorFlow SavedModel",
            "open_savedmodel",
            "write_savedmodel",
        ),
        ModelFormat(
            "litert",
            ".tflite",
            "model.tflite",
            "litert",
            (),
            ("ai_edge_litert",),
            "LiteRT interpreter",
            "open_litert",
            "write_litert",
        ),
        ModelFormat(
            "onnx",
            ".onnx",
            "model.onnx",
            "onnx",
            ("tf2onnx", "onnx"),
            ("onnxruntime",),
            "ONNX Runtime",
            "open_onnx",
            "write_onnx",
        ),
    )
}
"""The formats by name, in ``--to all``'s order."""

SUFFIX_FORMATS = {f.suffix: f.name for f in FORMATS.values() if f.suffix is not None}


def model_format(path: Path) -> str:
    """The format of the model at ``path`` (a directory is a SavedModel), or ``unknown``."""
    if path.is_dir():
        return "savedmodel"
    return SUFFIX_FORMATS.get(path.suffix.lower(), "unknown")
