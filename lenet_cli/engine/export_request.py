"""What ``lenet export`` (and :func:`lenet_cli.api.export`) may be asked, checked once, before anything loads.

Apart from the workflow (:mod:`lenet_cli.engine.export`) so that a bad format,
quantization, version or output suffix is refused, by field, the moment the
request is built: the command line and the API build the same
:class:`ExportRequest` and meet the same checks. A missing extra is found here
too, from the formats table alone, without importing TensorFlow or a converter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.core import checks
from lenet_cli.core.config import QUANTIZE_MODES
from lenet_cli.core.errors import BadValue
from lenet_cli.runtimes.extras import module_missing
from lenet_cli.runtimes.formats import FORMATS, SUFFIX_FORMATS

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
