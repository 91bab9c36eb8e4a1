"""``lenet benchmark``: export one model to every format and measure each on the same images, side by side.

What a person choosing how to ship a model asks: which format, what it costs in accuracy, how fast it answers on
this machine. Each format's row says its size on disk, its accuracy on the model's test split (or its first
``count`` images), its batch-1 latency (p50 and p95, after warm-up), its throughput at ``batch_size`` and its cold
start (a fresh process that loads the file and answers one image; median of ``cold_starts``). The timing rules are
in :mod:`lenet_cli.engine.benchmark_measure`; the formats come from the exporter's own table
(:data:`lenet_cli.runtimes.formats.FORMATS`), so a format added there is one row added here.

A format that cannot be measured (its extra is missing, its conversion fails) is a row with ``error`` and no
numbers; the other formats are still measured. Returns plain data; printing is the CLI's job.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lenet_cli.core import checks
from lenet_cli.core.errors import BadValue, ExportError, LenetError

DEFAULT_BATCH_SIZE = 256
DEFAULT_COLD_STARTS = 3
INT8_QUANTIZE = "dynamic"
"""How the ``litert-int8`` row is quantized: dynamic range (int8 weights, activations quantized as it runs; ``lenet export
--quantize dynamic``). On a default MNIST run both it and full-integer quantization (``int8``, calibrated on training
images) kept test accuracy within 0.02 points of float32, at a quarter of the size; dynamic range answered a batch-1
request about 4x faster than full-integer and 1.8x faster than float32 on a 2-core AMD EPYC, where full-integer was the
slowest LiteRT model (docs/guides/benchmark-and-deploy.md)."""


@dataclass(frozen=True)
class BenchmarkFormat:
    """One row's recipe: the exporter's format, its quantization, and the file it is written to."""

    name: str
    export_format: str
    quantize: str
    file_name: str


BENCHMARK_FORMATS: dict[str, BenchmarkFormat] = {
    f.name: f
    for f in (
        BenchmarkFormat("keras", "keras", "none", "model.keras"),
        BenchmarkFormat("savedmodel", "savedmodel", "none", "saved_model"),
        BenchmarkFormat("litert", "litert", "none", "model.tflite"),
        BenchmarkFormat("litert-int8", "litert", INT8_QUANTIZE, "model-int8.tflite"),
        BenchmarkFormat("onnx", "onnx", "none", "model.onnx"),
    )
}
"""Every format ``lenet benchmark`` measures, in its rows' order."""


@dataclass(frozen=True)
class BenchmarkRequest:
    """What ``lenet benchmark`` (and :func:`lenet_cli.api.benchmark`) is asked to measure.

    Attributes:
        model: A run directory, a run's name or a ``.keras`` file; None for the latest run.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        formats: Which of :data:`BENCHMARK_FORMATS` to measure, in that order (default: all).
        count: Measure accuracy on the first ``count`` test images (None: the whole test split).
        batch_size: The batch the throughput (images per second) is measured at.
        dataset: The model's dataset when its metadata does not say.
        data_dir: Where the data is (None: the run's own folder, then the usual look-up).
        output: Keep the exports in this folder (None: a temporary folder, removed at the end).
        plot: Write a PNG of accuracy against latency here (None: no plot).
        cold_starts: Fresh processes per format; the row gives their median (0: not measured, ``cold_start_s`` is None).

    Raises:
        BadValue: on construction, a field that cannot work.
    """

    model: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    formats: Sequence[str] = tuple(BENCHMARK_FORMATS)
    count: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    dataset: str | None = None
    data_dir: str | os.PathLike | None = None
    output: str | os.PathLike | None = None
    plot: str | os.PathLike | None = None
    cold_starts: int = DEFAULT_COLD_STARTS

    def __post_init__(self) -> None:
        formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        if not formats:
            raise BadValue("formats", f"name at least one format: {', '.join(BENCHMARK_FORMATS)}")
        for name in formats:
            checks.one_of("formats", name, BENCHMARK_FORMATS)
        object.__setattr__(
            self, "formats", tuple(name for name in BENCHMARK_FORMATS if name in formats)
        )  # the table's order, each once
        if self.count is not None:
            checks.whole_at_least("count", self.count, 1)
        checks.whole_at_least("batch_size", self.batch_size, 1)
        checks.whole_at_least("cold_starts", self.cold_starts, 0)
        if self.plot is not None and Path(self.plot).suffix.lower() != ".png":
            raise BadValue("plot", f"the plot is a PNG; name a .png file, not {str(self.plot)!r}")


@dataclass
class BenchmarkRow:
    """One format's figures, or why it has none (``error``)."""

    format: str
    file: str | None
    runtime: str
    quantize: str
    size_bytes: int | None = None
    accuracy: float | None = None
    accuracy_delta: float | None = None  # accuracy minus the Keras (float32) model's on the same images
    latency_ms_p50: float | None = None
    latency_ms_p95: float | None = None
    images_per_second: float | None = None
    cold_start_s: float | None = None
    error: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


COLUMNS = tuple(BenchmarkRow.__dataclass_fields__)
"""The keys of every row, in order (the CSV header)."""


@dataclass
class BenchmarkResult:
    """The rows, what they were measured on, and where the kept files and plot went."""

    model: Path
    dataset: str
    split: str
    images: int
    batch_size: int
    keras_accuracy: float
    rows: list[BenchmarkRow]
    machine: dict[str, Any]
    libraries: dict[str, str]
    cold_starts: int
    seconds: float
    output: Path | None = None
    plot: Path | None = None
    latency: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        """``lenet benchmark --format json``: a header (model, data, machine, libraries) and the rows."""
        from lenet_cli import __version__

        return {
            "model": str(self.model),
            "dataset": self.dataset,
            "split": self.split,
            "images": self.images,
            "batch_size": self.batch_size,
            "keras_accuracy": self.keras_accuracy,
            "latency": self.latency,
            "cold_starts": self.cold_starts,
            "machine": self.machine,
            "libraries": {"lenet-cli": __version__, **self.libraries},
            "seconds": self.seconds,
            "output": str(self.output) if self.output is not None else None,
            "plot": str(self.plot) if self.plot is not None else None,
            "rows": [row.to_json_dict() for row in self.rows],
        }


def _check_output(output: Path) -> None:
    """Refuse a kept-exports folder that holds anything but earlier benchmark files (they are replaced)."""
    from lenet_cli.runtimes.loading import SIDECAR_SUFFIX

    if output.exists() and not output.is_dir():
        raise ExportError(f"{str(output)!r} is a file; the exports are kept in a folder")
    ours = {f.file_name for f in BENCHMARK_FORMATS.values()}
    ours |= {name + SIDECAR_SUFFIX for name in ours}
    foreign = sorted(p.name for p in output.iterdir() if p.name not in ours) if output.is_dir() else []
    if foreign:
        raise ExportError(
            f"{str(output)!r} holds other files ({', '.join(foreign[:3])}); keep the exports in an empty or new folder"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, LenetError) else f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def measure_format(
    spec: BenchmarkFormat,
    path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    cold_starts: int,
    row: BenchmarkRow,
) -> None:
    """Fill ``row`` with the figures of the export at ``path``: accuracy on ``images``, latency, throughput, cold start."""
    from lenet_cli.core.tensorflow_env import quiet_native_stderr
    from lenet_cli.engine import benchmark_measure as measure
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import ModelRef

    with quiet_native_stderr():
        loaded = open_model(ModelRef(path, None), batch_size=batch_size)
        row.accuracy = float(np.mean(loaded.predict(images).argmax(1) == labels))
        latency = measure.batch1_latency(loaded.predict, images)
        row.latency_ms_p50, row.latency_ms_p95 = latency.p50_ms, latency.p95_ms
        row.images_per_second = measure.images_per_second(loaded.predict, images, batch_size)
    del loaded
    if cold_starts:
        row.cold_start_s = measure.median(measure.cold_start_seconds(path, cold_starts))


def benchmark(request: BenchmarkRequest, log: Callable[[str], None] | None = None) -> BenchmarkResult:
    """Export the model to each format asked for, measure each on the same test images, and draw the plot if asked.

    ``log`` receives a line for each step and, once a format is measured (or refused), one line with its figures.

    Raises:
        LenetError: no such model, not a Keras model, data that cannot be read, an unusable ``output`` or ``plot``.
    """
    from lenet_cli.core.machine import library_versions, machine_facts
    from lenet_cli.engine import benchmark_measure as measure
    from lenet_cli.runtimes.loading import open_model

    started = time.perf_counter()
    bench = _prepare(request, log)
    bench.say(f"loading {bench.context.ref.model_path}")
    source = open_model(bench.context.ref)
    keras_accuracy = float(np.mean(source.predict(bench.images).argmax(1) == bench.labels))
    work = bench.output if bench.output is not None else Path(tempfile.mkdtemp(prefix="lenet-benchmark-"))
    try:
        rows = [_measure_one(bench, spec, source, work, keras_accuracy) for spec in bench.wanted]
    finally:
        if bench.output is None:
            shutil.rmtree(work, ignore_errors=True)
    result = BenchmarkResult(
        bench.context.ref.model_path,
        bench.context.dataset,
        "test",
        len(bench.labels),
        request.batch_size,
        keras_accuracy,
        rows,
        machine_facts(),
        library_versions(),
        request.cold_starts,
        time.perf_counter() - started,
        bench.output,
        latency={
            "warmup_calls": measure.LATENCY_WARMUP,
            "max_calls": measure.LATENCY_RUNS,
            "max_seconds": measure.LATENCY_SECONDS,
        },
    )
    if request.plot is not None:
        from lenet_cli.store.atomic import write_bytes_atomic
        from lenet_cli.viz.benchmark_plot import render_benchmark_png

        title = (
            f"{bench.context.label}: {len(bench.labels):,} {bench.context.dataset} test images, batch-1 latency on "
            f"{result.machine['cpu']}"
        )
        result.plot = write_bytes_atomic(
            request.plot, render_benchmark_png([row.to_json_dict() for row in rows], title)
        )
    return result


@dataclass
class _Bench:
    """What every format of one benchmark shares: the model's context, the test images, where exports go."""

    request: BenchmarkRequest
    context: Any  # lenet_cli.engine.context.ModelContext
    images: np.ndarray
    labels: np.ndarray
    wanted: list[BenchmarkFormat]
    calibration: Any  # int8 calibration images, or None
    output: Path | None
    say: Callable[[str], None]


def _prepare(request: BenchmarkRequest, log: Callable[[str], None] | None) -> _Bench:
    """Check the model, the output and the plot's folder, and read the test images, before anything is exported."""
    from lenet_cli.core.inputs import as_model_input
    from lenet_cli.data.loader import load_dataset
    from lenet_cli.engine.context import for_dataset
    from lenet_cli.engine.export import calibration_images
    from lenet_cli.engine.export_request import missing_extras
    from lenet_cli.store import runs

    context = for_dataset(request.model, request.runs_dir, request.dataset, request.data_dir)
    if context.format != "keras":
        raise ExportError(
            f"{str(context.ref.model_path)!r} is a {context.format} model; lenet benchmark exports a Keras model to "
            "every format: pass a run, a run's name or a .keras file"
        )
    output = Path(request.output) if request.output is not None else None
    if output is not None:
        _check_output(output)
        runs.check_writable(output, "the exports folder")
    if request.plot is not None:
        runs.check_writable(Path(request.plot).parent, "the plot's folder")
    assert context.dataset is not None, "for_dataset always names the dataset: it raises when it cannot tell"
    test = load_dataset(
        context.dataset, context.data_dir, log=log, splits=("test",), preprocess=context.preprocess
    ).split("test")
    if len(test) == 0:
        raise ExportError(f"the test split of {context.dataset} is empty: there is nothing to measure accuracy on")
    count = min(request.count or len(test), len(test))
    wanted = [BENCHMARK_FORMATS[name] for name in request.formats]
    calibration = None
    if any(spec.quantize == "int8" for spec in wanted) and not missing_extras(("litert",), verify=True):
        calibration = calibration_images(context.dataset, context.data_dir, log, context.preprocess)
    return _Bench(
        request,
        context,
        as_model_input(test.images[:count]),
        np.asarray(test.labels[:count]).astype(np.int64),
        wanted,
        calibration,
        output,
        log or (lambda line: None),
    )


def _measure_one(bench: _Bench, spec: BenchmarkFormat, source, work: Path, keras_accuracy: float) -> BenchmarkRow:
    """Export the model in one format and measure it; a format that cannot be made or run is a row that says why."""
    from lenet_cli.engine.export_request import missing_extras
    from lenet_cli.engine.export_write import export_metadata, write_export
    from lenet_cli.runtimes.formats import FORMATS

    context, say = bench.context, bench.say
    final = work / spec.file_name
    row = BenchmarkRow(
        spec.name,
        str(final) if bench.output is not None else spec.file_name,
        FORMATS[spec.export_format].runtime,
        spec.quantize,
    )
    missing = missing_extras((spec.export_format,), verify=True)
    if missing:
        row.error = f"needs the {missing[0]} extra: pip install 'lenet-cli[{missing[0]}]'"
        say(f"{spec.name}: skipped, {row.error}")
        return row
    try:
        say(f"{spec.name}: exporting")
        metadata = export_metadata(
            context.dataset,
            context.metadata["run_config"],
            spec.export_format,
            spec.quantize,
            context.ref.model_path,
            context.class_names,
            context.preprocess,
        )
        row.size_bytes = write_export(
            source.keras_model, spec.export_format, final, metadata, spec.quantize, bench.calibration
        )
        say(f"{spec.name}: measuring")
        request = bench.request
        measure_format(spec, final, bench.images, bench.labels, request.batch_size, request.cold_starts, row)
        assert row.accuracy is not None
        row.accuracy_delta = row.accuracy - keras_accuracy
    except Exception as exc:  # a converter or runtime failure: this row says why, the other formats are still measured
        for name in COLUMNS[4:-1]:
            setattr(row, name, None)
        row.error = _first_line(exc)
        say(f"{spec.name}: failed, {row.error}")
        return row
    say(summary_line(row))
    return row


def summary_line(row: BenchmarkRow) -> str:
    """A measured row in one line, for progress on stderr."""
    from lenet_cli.core.units import human_size

    cold = f", cold start {row.cold_start_s:.2f} s" if row.cold_start_s is not None else ""
    return (
        f"{row.format}: {human_size(row.size_bytes)}, accuracy {row.accuracy:.4f}, batch-1 {row.latency_ms_p50:.2f} ms "
        f"(p95 {row.latency_ms_p95:.2f}), {row.images_per_second:,.0f} images/s{cold}"
    )
