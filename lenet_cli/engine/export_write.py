"""Write one export and its sidecar atomically, verified before either reaches its final name.

Each format's writer comes from one table,
:data:`lenet_cli.runtimes.formats.FORMATS`. Every export carries its metadata
(dataset, class names, preprocessing, input scaling, lenet version, run
config) in a sidecar ``<file>.lenet.json``, and also inside the file where the
format allows it: ONNX ``metadata_props``, SavedModel ``assets/lenet.json``.

Apart from the workflow (:mod:`lenet_cli.engine.export`) because three callers
write files this way: ``lenet export``, each run's TensorFlow-free copy
(:mod:`lenet_cli.engine.fast_model`) and ``lenet benchmark`` (unverified,
through :func:`write_export`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli import __version__
from lenet_cli.core.tensorflow_env import quiet_native_stderr
from lenet_cli.data.dataset import CLASS_NAMES
from lenet_cli.engine.export_verify import Reference, verify_export
from lenet_cli.runtimes.formats import FORMATS
from lenet_cli.runtimes.loading import SIDECAR_SUFFIX
from lenet_cli.store import runs
from lenet_cli.store.atomic import atomic_path, write_json_atomic

INPUT_SCALING = "float32 [0,1], white on black, shape [N,28,28,1]"


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


@dataclass(frozen=True)
class ExportTarget:
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


def write_one(
    model, target: ExportTarget, calibration, reference: Reference | None, log: Callable[[str], None] | None
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


def write_export(
    model,
    fmt: str,
    final: Path,
    metadata: dict[str, Any],
    quantize: str = "none",
    calibration: np.ndarray | None = None,
) -> int:
    """Write one export and its sidecar, atomically, without verifying it (``lenet benchmark`` measures it instead); its size in bytes."""
    return write_one(model, ExportTarget(fmt, final, metadata, quantize), calibration, None, None).size_bytes
