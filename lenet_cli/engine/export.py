"""Ship a trained model: ``lenet export``'s workflow, from a run (or a ``.keras`` file) to verified exports on disk.

Keras, SavedModel, LiteRT and ONNX exports, each written and verified before
it lands (:mod:`lenet_cli.engine.export_write`): every export is loaded in the
runtime that will serve it (TensorFlow, ONNX Runtime, the LiteRT interpreter)
and compared with the Keras model on test images
(:mod:`lenet_cli.engine.export_verify`); one that disagrees is an error and
never reaches its final path. ``lenet predict`` and ``lenet evaluate`` read an
export's metadata back through :mod:`lenet_cli.runtimes.loading`.

This module holds the steps around the writing: which model, which output
(refusing one that would overwrite something that is not an export), the data
that checks and calibrates, and ``to="all"`` into one folder. The request and
its checks live in :mod:`lenet_cli.engine.export_request`; an export written
as a run's ``model.tflite`` becomes its TensorFlow-free copy
(:mod:`lenet_cli.engine.fast_model`).

Returns plain data; printing is the CLI's job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core.errors import ExportError
from lenet_cli.core.inputs import as_model_input
from lenet_cli.data.loader import load_dataset
from lenet_cli.engine.export_request import ExportRequest, require_extras
from lenet_cli.engine.export_verify import VERIFY_COUNT, Reference
from lenet_cli.engine.export_write import ExportResult, ExportTarget, export_metadata, write_one
from lenet_cli.engine.fast_model import record_in_run
from lenet_cli.runtimes.formats import FORMATS
from lenet_cli.runtimes.loading import SIDECAR_SUFFIX, open_model
from lenet_cli.store import runs
from lenet_cli.store.atomic import atomic_path

FILE_NAMES = {name: f.file_name for name, f in FORMATS.items()}
"""The file each format gets in an export to ``all`` (a folder)."""

CALIBRATION_COUNT = 300  # training images that calibrate int8 quantization


def _check_output(output: Path, formats: tuple[str, ...], source: Path) -> None:
    """Refuse outputs that would overwrite something that is not a previous export."""
    if len(formats) > 1:
        if output.exists() and not output.is_dir():
            raise ExportError(f"output {str(output)!r} is a file; an export to all formats writes a directory")
        ours = set(FILE_NAMES.values()) | {name + SIDECAR_SUFFIX for name in FILE_NAMES.values()}
        foreign = sorted(p.name for p in output.iterdir() if p.name not in ours) if output.is_dir() else []
        if foreign:
            raise ExportError(
                f"output directory {str(output)!r} holds other files ({', '.join(foreign[:3])}); choose an empty or new directory"
            )
    elif formats == ("savedmodel",):
        if output.is_file():
            raise ExportError(f"output {str(output)!r} is a file; a SavedModel is a directory")
        if output.is_dir() and any(output.iterdir()) and not (output / "saved_model.pb").is_file():
            raise ExportError(
                f"output directory {str(output)!r} is not empty and holds no SavedModel; choose a new directory"
            )
    elif output.is_dir():
        raise ExportError(
            f"output {str(output)!r} is a directory; name the file, e.g. {str(output / FILE_NAMES[formats[0]])!r}"
        )
    if output.resolve() == source.resolve():
        raise ExportError(f"output {str(output)!r} is the model being exported; choose another output")


def serving_folder(base: Path, version: int) -> Path:
    """Where a SavedModel goes in TensorFlow Serving's layout: ``<base>/<version>/`` (the model's base folder holds one
    folder per version).

    Raises:
        ExportError: ``base`` is a file.
    """
    if base.is_file():
        raise ExportError(f"{str(base)!r} is a file; TensorFlow Serving's layout needs the model's base folder")
    return base / str(version)


def calibration_images(dataset: str, data_dir, log, preprocess: str | None = None) -> np.ndarray:
    """The training images that calibrate int8 quantization: :data:`CALIBRATION_COUNT`, spread over the training split."""
    train = load_dataset(dataset, data_dir, validation_size=0, log=log, splits=("train",), preprocess=preprocess).split(
        "train"
    )
    step = max(1, len(train) // CALIBRATION_COUNT)
    return as_model_input(train.images[::step][:CALIBRATION_COUNT])


def export_model(request: ExportRequest, log: Callable[[str], None] | None = None) -> list[ExportResult]:
    """Export a Keras model (a run directory, a ``.keras`` file, or the latest run) and verify each export.

    With ``to="all"`` the output is a folder receiving every format under the names in :data:`FILE_NAMES`.

    Args:
        request: What to export, to which format and where (checked when it was built).
        log: Receives one line per step, for a progress display.

    Returns:
        One :class:`ExportResult` per format written.

    Raises:
        LenetError: missing extra, unknown dataset, unavailable data, a failed
            verification (nothing is left behind), or an unusable output path.
    """
    formats = request.formats
    output = request.output_path
    if request.serving_version is not None:
        output = serving_folder(output, request.serving_version)
    require_extras(request)  # before anything loads: a missing extra is known at once
    context = _keras_context(request)
    _check_output(output, formats, context.ref.model_path)
    runs.check_writable(output.parent, "the export folder")  # before any data or model loads
    inputs = _ExportInputs.load(request, context, log)
    if log:
        log(f"loading {context.ref.model_path}")
    source = open_model(context.ref)
    reference = None
    if inputs.test is not None:
        images = as_model_input(inputs.test.images[:VERIFY_COUNT])
        reference = Reference(images, inputs.test.labels[:VERIFY_COUNT].astype(np.int64), source.predict(images))
    if len(formats) > 1:
        return _export_all(source.keras_model, output, inputs, reference, log)
    started = time.perf_counter()
    target = ExportTarget(
        request.format,
        output,
        inputs.metadata(request.format, request.quantize),
        request.quantize,
        sidecar=request.serving_version is None,
    )
    result = write_one(source.keras_model, target, inputs.calibration, reference, log)
    record_in_run(result, context.ref, source.keras_model, inputs.run_config, started)
    return [result]


def _keras_context(request: ExportRequest):
    """The model to export and what its metadata says; only a Keras model converts (an export is not re-exported).

    Raises:
        ExportError: the model is an export (ONNX, LiteRT, a SavedModel) rather than a Keras model.
    """
    from lenet_cli.engine.context import for_dataset

    context = for_dataset(request.model, request.runs_dir, request.dataset, request.data_dir)
    if context.format != "keras":
        kind = {"onnx": "an ONNX model", "litert": "a LiteRT model", "savedmodel": "a SavedModel"}.get(
            context.format, "not a Keras model"
        )
        raise ExportError(
            f"{str(context.ref.model_path)!r} is {kind}; export converts a Keras model: pass a run directory or a "
            f".keras file"
        )
    return context


@dataclass(frozen=True)
class _ExportInputs:
    """What every export of one model shares: its dataset and classes, the test split it is checked on, and the
    training images that calibrate int8 quantization."""

    dataset: str
    class_names: Any
    preprocessing: str | None
    run_config: dict | None
    source: Path
    quantize: str
    test: Any  # the test split, or None without verification
    calibration: np.ndarray | None

    @classmethod
    def load(cls, request: ExportRequest, context, log) -> _ExportInputs:
        """Read the data the export needs: the test split (to verify, or to name the classes), and calibration images."""
        dataset, data_dir, preprocessing = context.dataset, context.data_dir, context.preprocess
        assert dataset is not None, "for_dataset always names the dataset: it raises when it cannot tell"
        class_names, test = context.class_names, None
        if request.verify or class_names is None:
            test_data = load_dataset(dataset, data_dir, log=log, splits=("test",), preprocess=preprocessing)
            test = test_data.test if request.verify else None
            class_names = class_names or test_data.class_names
        calibration = (
            calibration_images(dataset, data_dir, log, preprocessing)
            if request.quantize == "int8" and "litert" in request.formats
            else None
        )
        run_config = context.metadata["run_config"]
        return cls(
            dataset, class_names, preprocessing, run_config, context.ref.model_path, request.quantize, test, calibration
        )

    def metadata(self, fmt: str, quantize: str) -> dict[str, Any]:
        return export_metadata(
            self.dataset, self.run_config, fmt, quantize, self.source, self.class_names, self.preprocessing
        )


def _export_all(model, output: Path, inputs: _ExportInputs, reference, log) -> list[ExportResult]:
    """Every format into one folder, made beside ``output`` and renamed into place once all are written and verified."""
    results = []
    replaced = output.is_dir() and any(output.iterdir())
    with atomic_path(output, suffix="") as folder:
        folder.mkdir()
        for name in FORMATS:
            quantize = inputs.quantize if name == "litert" else "none"
            target = ExportTarget(
                name,
                folder / FILE_NAMES[name],
                inputs.metadata(name, quantize),
                quantize,
                shown=output / FILE_NAMES[name],
            )
            results.append(write_one(model, target, inputs.calibration, reference, log))
    for result in results:
        result.path = output / result.path.name
        result.replaced = replaced
    if log and replaced:
        log(f"replaced {output}: it held earlier exports")
    return results
