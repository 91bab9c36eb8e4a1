"""Ship a trained model: Keras, SavedModel, LiteRT and ONNX exports, each verified before it lands.

Each format's writer and reader come from one table,
:data:`lenet_cli.runtimes.formats.FORMATS`. Every
export is then loaded in the runtime that will serve it (TensorFlow, ONNX
Runtime, the LiteRT interpreter) and compared with the Keras model on test
images; one that disagrees is an error and never reaches its final path.

Each export carries its metadata (dataset, class names, preprocessing, input
scaling, lenet version, run config) in a sidecar ``<file>.lenet.json``, and
also inside the file where the format allows it: ONNX ``metadata_props``,
SavedModel ``assets/lenet.json``. ``lenet predict`` and ``lenet evaluate``
read it back through :mod:`lenet_cli.runtimes.loading`.

The same writer and check give every finished run its TensorFlow-free copy,
``model.tflite`` (:func:`write_fast_model`); exporting LiteRT to that path of
a run (an older run's missing copy) records its check in the run's
``metrics.json`` as training does.

Returns plain data; printing is the CLI's job.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli import __version__
from lenet_cli.core import checks
from lenet_cli.core.config import QUANTIZE_MODES
from lenet_cli.core.errors import BadValue, ExportError, LenetError
from lenet_cli.core.inputs import as_model_input
from lenet_cli.core.tensorflow_env import quiet_native_stderr
from lenet_cli.data.dataset import CLASS_NAMES
from lenet_cli.data.loader import load_dataset
from lenet_cli.runtimes.extras import module_missing
from lenet_cli.runtimes.formats import FORMATS, SUFFIX_FORMATS
from lenet_cli.runtimes.loading import SIDECAR_SUFFIX, open_model
from lenet_cli.store import runs
from lenet_cli.store.atomic import atomic_path, write_json_atomic

FILE_NAMES = {name: f.file_name for name, f in FORMATS.items()}

INPUT_SCALING = "float32 [0,1], white on black, shape [N,28,28,1]"
VERIFY_COUNT = 1000  # test images every export is checked on
CALIBRATION_COUNT = 300  # training images that calibrate int8 quantization
MAX_ABS_DIFF = 1e-4  # float exports: largest |probability difference| allowed
MIN_ARGMAX_AGREEMENT = 0.999  # float exports: share of images with the same predicted class
MAX_ACCURACY_DROP = 0.005  # quantized exports: accuracy may fall by at most 0.5 points


@dataclass
class ExportResult:
    """One written and verified export: what a row of ``lenet export``'s table shows."""

    format: str
    path: Path
    size_bytes: int
    quantize: str
    verified_on: int  # test images compared (0 with --no-verify)
    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    accuracy: float | None = None
    keras_accuracy: float | None = None
    load_seconds: float | None = None  # load + first one-image inference, in this process
    replaced: bool = False  # the path held an earlier export (or other file), now replaced

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "path": str(self.path),
            "size_bytes": self.size_bytes,
            "quantize": self.quantize,
            "verified_on": self.verified_on,
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "accuracy": self.accuracy,
            "keras_accuracy": self.keras_accuracy,
            "load_seconds": self.load_seconds,
            "replaced": self.replaced,
        }


FAST_MODEL_FORMAT = "litert"
"""The format of a run's TensorFlow-free copy: LiteRT started faster than ONNX Runtime, and needs no converter beyond TensorFlow (README, "Fast answers")."""


@dataclass
class _Reference:
    """The Keras model's answers on the verification images."""

    images: np.ndarray  # float32 (n, 28, 28, 1)
    labels: np.ndarray
    probabilities: np.ndarray
    split: str = "test"  # which split the images come from, for messages

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.probabilities.argmax(1) == self.labels))


EXPORT_FORMATS = (*FORMATS, "all")
"""What ``to`` takes: one format of :data:`~lenet_cli.runtimes.formats.FORMATS`, or ``all`` of them into a folder."""


def format_from_output(output: Path) -> str:
    """The format an ``output`` path implies by its suffix.

    Raises:
        BadValue: (``output``) the suffix names no single-file format.
    """
    fmt = SUFFIX_FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise BadValue(
            "output",
            f"cannot tell the export format from {str(output)!r}; name the format: {', '.join(EXPORT_FORMATS)}",
        )
    return fmt


def output_mismatch(fmt: str, output: Path) -> str | None:
    """Why ``output`` cannot hold a ``fmt`` export (its suffix names another format, or none where one is needed), or None."""
    if fmt == "all":
        return (
            None
            if output.suffix.lower() not in SUFFIX_FORMATS
            else f"an export to all formats writes a folder, and {str(output)!r} names a {SUFFIX_FORMATS[output.suffix.lower()]} file; name a folder"
        )
    wanted = FORMATS[fmt].suffix
    implied = SUFFIX_FORMATS.get(output.suffix.lower())
    if wanted is not None and output.is_dir():
        return None  # an existing folder: the export check names the file to write in it
    if wanted is None:
        return (
            None
            if implied is None
            else f"a SavedModel is a folder, and {str(output)!r} names a {implied} file; name a folder"
        )
    if output.suffix.lower() != wanted:
        found = f"names a {implied} file" if implied else f"does not end in {wanted}"
        return f"a {fmt} export writes a {wanted} file, and {str(output)!r} {found}; use e.g. {str(output.with_suffix(wanted))!r}"
    return None


@dataclass(frozen=True)
class ExportRequest:
    """What ``lenet export`` (and :func:`lenet_cli.api.export`) is asked to do.

    Attributes:
        model: A run directory, a run's name or a ``.keras`` file; None for the latest run.
        output: The file to write (a folder for ``savedmodel`` and ``all``; the model's base folder with
            ``serving_version``).
        to: A name in :data:`EXPORT_FORMATS`; None: the one ``output``'s suffix names (``savedmodel`` with
            ``serving_version``).
        quantize: LiteRT quantization: ``none``, ``dynamic`` (int8 weights) or ``int8`` (weights and activations,
            calibrated on training images).
        dataset: The model's dataset when its metadata does not say.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        data_dir: Where the data is (None: the run's own folder, then the usual look-up).
        verify: Compare each export with the Keras model on test images before keeping it.
        serving_version: Write a SavedModel in TensorFlow Serving's layout: ``output`` is the model's base folder,
            and the SavedModel goes in its ``<serving_version>/`` folder, without a sidecar (its metadata is inside).

    Raises:
        BadValue: on construction, a value no model could be exported with: an unknown format or quantization, a
            quantization of a format other than LiteRT, a version below 1, or an ``output`` whose suffix names
            another format (or none where one is needed).
    """

    model: str | os.PathLike | None = None
    output: str | os.PathLike | None = None
    to: str | None = None
    quantize: str = "none"
    dataset: str | None = None
    runs_dir: str | os.PathLike | None = None
    data_dir: str | os.PathLike | None = None
    verify: bool = True
    serving_version: int | None = None

    def __post_init__(self) -> None:
        if self.output is None or not isinstance(self.output, (str, os.PathLike)) or not os.fspath(self.output):
            raise BadValue("output", f"must name the file (or folder) to write, not {self.output!r}")
        if self.to is not None:
            checks.one_of("to", self.to, EXPORT_FORMATS)
        checks.one_of("quantize", self.quantize, QUANTIZE_MODES)
        checks.flag("verify", self.verify)
        if self.serving_version is not None:
            checks.whole_at_least("serving_version", self.serving_version, 1)
            if self.format != "savedmodel":
                raise BadValue(
                    "serving_version",
                    f"TensorFlow Serving's layout holds SavedModels; it applies to the savedmodel format, not {self.format}",
                )
        if self.quantize != "none" and "litert" not in self.formats:
            raise BadValue("quantize", f"{self.quantize!r} applies to LiteRT only; export to litert or all")
        mismatch = output_mismatch(self.format, self.output_path)
        if mismatch:
            raise BadValue("output", mismatch)

    @property
    def output_path(self) -> Path:
        """``output`` as given (the base folder with ``serving_version``)."""
        return Path(os.fspath(self.output or ""))

    @property
    def format(self) -> str:
        """The format to write: ``to``, else ``savedmodel`` with ``serving_version``, else the one the suffix names."""
        if self.to is not None:
            return self.to
        return "savedmodel" if self.serving_version is not None else format_from_output(self.output_path)

    @property
    def formats(self) -> tuple[str, ...]:
        """Every format written: all of them for ``all``."""
        return tuple(FORMATS) if self.format == "all" else (self.format,)


def missing_extras(formats: tuple[str, ...], verify: bool) -> list[str]:
    """The extras that ``formats`` need and that are not installed, each once (checked without importing anything)."""
    missing = []
    for name in formats:
        fmt = FORMATS[name]
        needed = fmt.write_modules + (fmt.read_modules if verify else ())
        if fmt.extra and fmt.extra not in missing and any(module_missing(m) for m in needed):
            missing.append(fmt.extra)
    return missing


def require_extras(request: ExportRequest) -> None:
    """Fail before any work when a format's optional packages are missing, naming every missing extra at once.

    Raises:
        MissingExtra: one line naming the ``to`` that needs them, each extra, and the pip command that installs them all.
    """
    missing = missing_extras(request.formats, request.verify)
    if missing:
        from lenet_cli.core.errors import MissingExtra

        what = f"the {' and '.join(missing)} extra{'s' if len(missing) > 1 else ''}"
        command = "pip install 'lenet-cli[" + ",".join(missing) + "]'"
        raise MissingExtra(f"to={request.format!r} needs {what}: {command}", hint=command, mentions=("to",))


def export_metadata(
    dataset: str,
    run_config: dict | None,
    fmt: str,
    quantize: str,
    source: Path,
    class_names=None,
    preprocessing: str | None = None,
) -> dict[str, Any]:
    """What every export carries about itself (the class names: the model's, else the dataset's built-in ones)."""
    names = list(class_names or (run_config or {}).get("class_names") or CLASS_NAMES[dataset])
    return {
        "lenet_version": __version__,
        "format": fmt,
        "dataset": dataset,
        "class_names": names,
        "preprocessing": preprocessing or (run_config or {}).get("preprocess") or dataset,
        "input_scaling": INPUT_SCALING,
        "input_name": "image",
        "output": f"class probabilities, float32 [N,{len(names)}]",
        "quantize": quantize,
        "source_model": str(source),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "run_config": run_config,
    }


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def verify_export(path: Path, fmt: str, quantize: str, reference: _Reference, metadata: dict) -> dict[str, float]:
    """Load ``path`` in its own runtime and compare it with the Keras model, each answering as its recipe says.

    ``metadata`` is what the export will carry: the file is checked before its sidecar exists, and wherever it
    is written (a run's folder holds a config.json that would say it; another folder does not).

    Raises:
        LenetError: the export disagrees with the Keras model beyond the bounds.
    """
    started = time.perf_counter()
    loaded = open_model(runs.ModelRef(path, None), metadata=metadata)
    loaded.predict(reference.images[:1])
    load_seconds = time.perf_counter() - started
    probabilities = loaded.predict(reference.images)
    max_abs_diff = float(np.max(np.abs(probabilities - reference.probabilities)))
    agreement = float(np.mean(probabilities.argmax(1) == reference.probabilities.argmax(1)))
    accuracy = float(np.mean(probabilities.argmax(1) == reference.labels))
    n = len(reference.labels)
    if quantize == "none":
        if max_abs_diff > MAX_ABS_DIFF or agreement < MIN_ARGMAX_AGREEMENT:
            raise ExportError(
                f"{fmt} export failed verification on {n:,} {reference.split} images: max |Δprob| {max_abs_diff:.2e} (allowed {MAX_ABS_DIFF:g}), "
                f"same class on {agreement:.2%} (needed {MIN_ARGMAX_AGREEMENT:.1%}); nothing was written"
            )
    elif reference.accuracy - accuracy > MAX_ACCURACY_DROP:
        raise ExportError(
            f"{quantize}-quantized {fmt} export failed verification on {n:,} {reference.split} images: accuracy {accuracy:.4f} vs Keras "
            f"{reference.accuracy:.4f}, a drop over {MAX_ACCURACY_DROP * 100:g} points; nothing was written (try quantize 'dynamic' or 'none')"
        )
    return {
        "max_abs_diff": max_abs_diff,
        "argmax_agreement": agreement,
        "accuracy": accuracy,
        "load_seconds": load_seconds,
    }


@dataclass(frozen=True)
class _Target:
    """One file to write: its format, final path and metadata, and how it is told and kept.

    ``shown`` is the path people are told (the final one, when ``final`` is inside a folder still being made);
    ``sidecar=False`` writes the model alone (a SavedModel in TensorFlow Serving's layout, which carries its
    metadata inside, in a folder that holds only versions).
    """

    fmt: str
    final: Path
    metadata: dict[str, Any]
    quantize: str = "none"
    shown: Path | None = None
    sidecar: bool = True


def _write_one(
    model, target: _Target, calibration, reference: _Reference | None, log: Callable[[str], None] | None
) -> ExportResult:
    """Write one export beside its final path, verify it, then rename it and its sidecar into place, as one pair.

    The old sidecar goes just before the new model is renamed in, and the new sidecar follows it: a crash at
    any moment leaves the old pair, or a model without a sidecar, never a model beside another model's sidecar.
    A failed write or verification leaves the old pair as it was.
    """
    fmt, final, quantize, shown = target.fmt, target.final, target.quantize, target.shown or target.final
    sidecar_path = Path(str(final) + SIDECAR_SUFFIX)
    replaced = _describe_replaced(final, sidecar_path)
    with contextlib.ExitStack() as stack:
        sidecar_tmp = stack.enter_context(atomic_path(sidecar_path)) if target.sidecar else None
        tmp = stack.enter_context(atomic_path(final))
        if log:
            log(f"exporting {fmt} to {shown}")
        with quiet_native_stderr():
            FORMATS[fmt].writer(model, tmp, metadata=target.metadata, quantize=quantize, calibration=calibration)
        result = ExportResult(fmt, final, _size(tmp), quantize, 0)
        if reference is not None:
            if log:
                log(f"verifying {fmt} on {len(reference.labels):,} {reference.split} images")
            numbers = verify_export(tmp, fmt, quantize, reference, target.metadata)
            result.verified_on = len(reference.labels)
            result.max_abs_diff = numbers["max_abs_diff"]
            result.argmax_agreement = numbers["argmax_agreement"]
            result.accuracy = numbers["accuracy"]
            result.keras_accuracy = reference.accuracy
            result.load_seconds = numbers["load_seconds"]
        if sidecar_tmp is not None:
            write_json_atomic(sidecar_tmp, target.metadata)
            # last step before the model's rename (atomic_path's exits: model, then sidecar)
            sidecar_path.unlink(missing_ok=True)
    result.replaced = replaced is not None
    if log and replaced is not None:
        log(f"replaced {shown}: {replaced}")
    return result


def _describe_replaced(final: Path, sidecar: Path) -> str | None:
    """What an export to ``final`` replaces, in a few words (None: nothing is there)."""
    if not final.exists() and not final.is_symlink():
        return None
    old = runs.read_json_or_none(sidecar)
    if isinstance(old, dict) and isinstance(old.get("dataset"), str):
        kind = f"{old['format']} " if isinstance(old.get("format"), str) else ""
        return f"it held an earlier {kind}export of a {old['dataset']} model"
    return "it held an earlier file"


def fast_model_record(
    result: ExportResult | None,
    started: float,
    *,
    split: str | None = None,
    penalty: dict | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """``metrics.json``'s ``fast_model`` record: which file, whether commands may answer with it, and its check against Keras.

    ``ok`` is true only for a float copy checked within the export bounds
    (:data:`MAX_ABS_DIFF`, :data:`MIN_ARGMAX_AGREEMENT`); ``penalty`` is the
    run's L1 and L2 terms of these weights, which ``lenet evaluate`` reports
    beside the copy's cross-entropy (the copy itself cannot compute them).
    """
    verified = result is not None and result.verified_on > 0 and result.quantize == "none"
    checked = result if verified else None
    if error is None and result is not None and not verified:
        error = f"not checked against model.keras ({'quantized' if result.quantize != 'none' else 'written with verify off'})"
    return {
        "file": runs.FAST_MODEL_FILE if result is not None else None,
        "format": FAST_MODEL_FORMAT,
        "ok": error is None and verified,
        "compared_on": split if verified else None,
        "images": checked.verified_on if checked is not None else None,
        "max_abs_diff": checked.max_abs_diff if checked is not None else None,
        "argmax_agreement": checked.argmax_agreement if checked is not None else None,
        "penalty": penalty,
        "seconds": time.perf_counter() - started,
        "error": error,
    }


def write_fast_model(
    model,
    run_dir: Path,
    metadata: dict[str, Any],
    images: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    split: str,
    penalty: dict | None = None,
) -> dict[str, Any]:
    """Give a run its TensorFlow-free copy: write ``model.tflite`` and its sidecar, check it against ``probabilities``.

    The check is :func:`verify_export`'s, on ``images`` of ``split`` (the
    validation split at the end of training), with ``probabilities`` the
    Keras model's answers. A conversion or a check that fails leaves nothing
    under the copy's name and never raises: the record says ``ok: false``
    and why, and the commands answer with ``model.keras``.

    Returns:
        ``metrics.json``'s ``fast_model`` record (:func:`fast_model_record`).
    """
    started = time.perf_counter()
    final = Path(run_dir) / runs.FAST_MODEL_FILE
    reference = _Reference(as_model_input(images), np.asarray(labels).astype(np.int64), probabilities, split)
    try:
        if len(images) == 0:
            raise ExportError(f"no {split} images to check it on")
        result = _write_one(model, _Target(FAST_MODEL_FORMAT, final, metadata), None, reference, None)
    except Exception as exc:  # any converter or runtime failure: the run still finishes, with model.keras
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return fast_model_record(
            None,
            started,
            split=split,
            penalty=penalty,
            error=text if isinstance(exc, LenetError) else f"{type(exc).__name__}: {text}",
        )
    return fast_model_record(result, started, split=split, penalty=penalty)


def _record_in_run(
    result: ExportResult, source: runs.ModelRef, keras_model, run_config: dict | None, started: float
) -> None:
    """An export written as a run's ``model.tflite`` becomes its fast copy: its check goes into the run's ``metrics.json``."""
    run_dir = source.run_dir or source.model_path.parent  # a run directory, or its model.keras named directly
    if (
        result.format != FAST_MODEL_FORMAT
        or source.model_path.name != runs.MODEL_FILE
        or not (run_dir / runs.METRICS_FILE).is_file()
        or result.path.resolve() != (run_dir / runs.FAST_MODEL_FILE).resolve()
    ):
        return
    from lenet_cli.engine.evaluate import penalty_from_weights

    runs.record_fast_model(
        run_dir, fast_model_record(result, started, split="test", penalty=penalty_from_weights(keras_model, run_config))
    )


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


def write_export(
    model,
    fmt: str,
    final: Path,
    metadata: dict[str, Any],
    quantize: str = "none",
    calibration: np.ndarray | None = None,
) -> int:
    """Write one export and its sidecar, atomically, without verifying it (``lenet benchmark`` measures it instead); its size in bytes."""
    return _write_one(model, _Target(fmt, final, metadata, quantize), calibration, None, None).size_bytes


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
        reference = _Reference(images, inputs.test.labels[:VERIFY_COUNT].astype(np.int64), source.predict(images))
    if len(formats) > 1:
        return _export_all(source.keras_model, output, inputs, reference, log)
    started = time.perf_counter()
    target = _Target(
        request.format,
        output,
        inputs.metadata(request.format, request.quantize),
        request.quantize,
        sidecar=request.serving_version is None,
    )
    result = _write_one(source.keras_model, target, inputs.calibration, reference, log)
    _record_in_run(result, context.ref, source.keras_model, inputs.run_config, started)
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
            target = _Target(
                name,
                folder / FILE_NAMES[name],
                inputs.metadata(name, quantize),
                quantize,
                shown=output / FILE_NAMES[name],
            )
            results.append(_write_one(model, target, inputs.calibration, reference, log))
    for result in results:
        result.path = output / result.path.name
        result.replaced = replaced
    if log and replaced:
        log(f"replaced {output}: it held earlier exports")
    return results
