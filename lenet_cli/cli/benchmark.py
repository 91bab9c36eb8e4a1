"""``lenet benchmark``'s presentation: one progress line per format on stderr, the table (or JSON, CSV) on stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    data_dir_option,
    model_option,
    output_format_option,
    pick_model,
    resolve_format,
    runs_dir_option,
)

FORMAT_NAMES = (
    "keras",
    "savedmodel",
    "litert",
    "litert-int8",
    "onnx",
)  # engine.benchmark.BENCHMARK_FORMATS, without importing numpy for --help


class FormatList(click.ParamType):
    """Comma-separated format names, each one of :data:`FORMAT_NAMES` (the engine checks them again)."""

    name = "FORMAT[,FORMAT...]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        names = tuple(n.strip() for n in str(value).split(",") if n.strip())
        unknown = [n for n in names if n not in FORMAT_NAMES]
        if unknown or not names:
            self.fail(
                f"{unknown[0]!r} is not a format; choose from: {', '.join(FORMAT_NAMES)}"
                if unknown
                else f"name at least one format: {', '.join(FORMAT_NAMES)}",
                param,
                ctx,
            )
        return names

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        done, _, last = incomplete.rpartition(",")
        prefix = done + "," if done else ""
        return [CompletionItem(prefix + name) for name in FORMAT_NAMES if name.startswith(last)]


def rows_to_csv(result) -> str:
    from lenet_cli.engine.benchmark import COLUMNS

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in result.rows:
        values = row.to_json_dict()
        writer.writerow(["" if values[name] is None else values[name] for name in COLUMNS])
    return out.getvalue()


def machine_line(result) -> str:
    """Where the figures come from: the CPU, its cores, and the runtimes' versions."""
    machine = result.machine
    libraries = ", ".join(f"{name} {version}" for name, version in result.libraries.items())
    return f"{machine['cpu']}, {machine['cores']} cores, {machine['os']}, Python {machine['python']}; {libraries}"


def print_benchmark_table(result) -> None:
    """One row per format; under the table, what was measured and on which machine."""
    from rich.markup import escape
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console
    from lenet_cli.core.units import human_size

    table = Table(
        title=f"{result.model} on {result.images:,} {result.dataset} {result.split} images", title_justify="left"
    )
    for column in ("format", "size", "accuracy", "vs keras", "p50 ms", "p95 ms", "images/s", "cold start"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for row in result.rows:
        if row.error is not None:
            table.add_row(row.format, f"[dim]{escape(row.error)}", *[""] * 6)
            continue
        table.add_row(
            row.format,
            human_size(row.size_bytes),
            f"{row.accuracy:.4f}",
            f"{row.accuracy_delta * 100:+.2f} pts",
            f"{row.latency_ms_p50:.3f}",
            f"{row.latency_ms_p95:.3f}",
            f"{row.images_per_second:,.0f}",
            "-" if row.cold_start_s is None else f"{row.cold_start_s:.2f} s",
        )
    console = stdout_console()
    console.print(table)
    notes = [
        f"latency: batch 1, after {result.latency['warmup_calls']} warm-up calls, over up to {result.latency['max_calls']} calls; "
        f"images/s: batches of {result.batch_size}; "
        + (
            f"cold start: a fresh process loads the file and answers one image, median of {result.cold_starts}"
            if result.cold_starts
            else "cold start not measured"
        ),
        f"measured on {machine_line(result)}",
    ]
    quantized = next((row for row in result.rows if row.format == "litert-int8"), None)
    if quantized is not None:
        notes.append(
            f"litert-int8: int8 weights, {quantized.quantize} quantization (lenet export --quantize {quantized.quantize})"
        )
    if result.output is not None:
        notes.append(f"exports kept in {result.output}")
    for note in notes:
        console.print(note, highlight=False, markup=False)


@click.command("benchmark")
@click.argument("model", required=False, type=click.Path(exists=True, path_type=Path))
@model_option("model_option")
@runs_dir_option
@click.option(
    "--formats",
    type=FormatList(),
    default=None,
    help=f"Which formats to measure [default: all: {','.join(FORMAT_NAMES)}].",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    default=None,
    help="Measure accuracy on the first N test images [default: the whole test split].",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="The batch that images/s is measured at.",
)
@click.option(
    "--dataset",
    type=DATASET,
    default=None,
    help="The model's dataset (a name or a path) when its metadata does not say.",
)
@data_dir_option
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Keep the exports in this folder [default: a temporary folder, removed at the end].",
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Draw accuracy against latency, one point per format, to this PNG.",
)
@click.option(
    "--cold-starts",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Fresh processes that load each file and answer one image; the row shows their median (0 skips it).",
)
@output_format_option("table", "json", "csv")
def benchmark(
    model,
    model_option,
    runs_dir,
    formats,
    count,
    batch_size,
    dataset,
    data_dir,
    output,
    plot,
    cold_starts,
    output_format,
):
    """Measure a model in every export format: size, accuracy, latency, images/s, cold start.

    MODEL (or --model) is a run directory, a run's name or a .keras file;
    without it, the latest run. Each format (keras, savedmodel, litert,
    litert-int8, onnx) is exported into a temporary folder and measured on
    the same test images; a format whose extra is missing is a row with an
    error, not a failure. Progress is one line per format on stderr.

    \b
    Examples:
      lenet benchmark
      lenet benchmark runs/mnist-20261127-101500 --formats litert,litert-int8,onnx --format json
      lenet benchmark --count 2000 --plot formats.png
    """
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.engine.benchmark import BENCHMARK_FORMATS, BenchmarkRequest, benchmark

    request = BenchmarkRequest(
        pick_model(model, model_option),
        runs_dir,
        formats or tuple(BENCHMARK_FORMATS),
        count,
        batch_size,
        dataset,
        data_dir,
        output,
        plot,
        cold_starts,
    )
    output_format = resolve_format(output_format)
    console = stderr_console()

    with console.status("benchmarking") as status:

        def log(
            message: str,
        ) -> None:  # a finished format is a line that stays; the steps between only update the status
            status.update(message)
            if message.startswith(tuple(f"{name}: " for name in BENCHMARK_FORMATS)) and not message.endswith(
                (": exporting", ": measuring")
            ):
                console.print(message, highlight=False, markup=False)

        result = benchmark(request, log=log)
    if result.plot is not None:
        console.print(f"plot written to {result.plot}", highlight=False)
    if output_format == "json":
        click.echo(json.dumps(result.to_json_dict(), indent=2))
    elif output_format == "csv":
        click.echo(rows_to_csv(result), nl=False)
    else:
        print_benchmark_table(result)
