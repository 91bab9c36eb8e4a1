"""``lenet export``'s presentation: progress on stderr, a table (or JSON rows) of verified exports on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    MODEL_PATH,
    data_dir_option,
    model_option,
    pick_model,
    resolve_format,
    runs_dir_option,
)
from lenet_cli.core import config as C
from lenet_cli.core.units import human_size
from lenet_cli.runtimes.formats import FORMATS


def print_export_table(results) -> None:
    """One row per export: where it is, how big, how close to Keras, how fast it loads."""
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    folder = results[0].path.parent if len(results) > 1 else None
    checked = [r for r in results if r.verified_on]
    notes = (
        [
            f"checked against the Keras model on {checked[0].verified_on:,} test images (Keras accuracy {checked[0].keras_accuracy:.4f})",
            "argmax: same class as Keras; load: open + first inference",
        ]
        if checked
        else ["not verified (--no-verify)"]
    )
    table = Table(title=f"exports in {folder}" if folder else "export", title_justify="left")
    table.add_column("format")
    table.add_column("file" if folder else "path", overflow="fold", min_width=12)
    for column in ("size", "max |Δ|", "argmax", "accuracy", "load"):
        table.add_column(column, justify="right")
    for r in results:
        verified = r.verified_on > 0
        table.add_row(
            r.format if r.quantize == "none" else f"{r.format} {r.quantize}",
            r.path.name if folder else str(r.path),
            human_size(r.size_bytes),
            f"{r.max_abs_diff:.1e}" if verified else "-",
            f"{r.argmax_agreement:.1%}" if verified else "-",
            f"{r.accuracy:.4f}" if verified else "-",
            f"{r.load_seconds * 1000:.0f} ms" if verified else "-",
        )
    console = stdout_console()
    console.print(table)
    for note in notes:  # below the table, left-aligned, wrapping as a paragraph (a caption would centre each fragment)
        console.print(note, highlight=False)


def run_export(request, output_format: str) -> None:
    """Export with each step on stderr, then the table (or JSON rows) of what was written on stdout."""
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.engine.export import export_model

    console = stderr_console()

    def log(message: str) -> None:  # each step stays on stderr as a line: converting takes seconds
        console.print(message, highlight=False, markup=False)
        status.update(message)

    with console.status("exporting") as status:
        results = export_model(request, log=log)
    if output_format == "json":
        click.echo(json.dumps([r.to_json_dict() for r in results], indent=2))
    else:
        print_export_table(results)


class ExportOutputFormat(click.Choice):
    """``--format``'s choices for export; ``--format onnx`` (the spelling before ``--to``) gets a pointer to ``--to``."""

    def convert(self, value, param, ctx):
        if value in (*FORMATS, "all"):
            self.fail(
                f"--format chooses what stdout shows ({', '.join(self.choices)}); the model format is --to {value}",
                param,
                ctx,
            )
        return super().convert(value, param, ctx)


@click.command("export")
@click.argument("model", required=False, type=MODEL_PATH)
@model_option("model_option")
@runs_dir_option
@click.option(
    "--to",
    "export_format",
    type=click.Choice([*FORMATS, "all"]),
    default=None,
    help="The model format to write; 'all' writes model.keras, saved_model/, model.tflite and model.onnx into the "
    "--output directory [default: from the --output suffix: .keras, .tflite, .onnx].",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path),
    required=True,
    help="The file (a directory for savedmodel and all) to write.",
)
@click.option(
    "--quantize",
    type=click.Choice(C.QUANTIZE_MODES),
    default="none",
    show_default=True,
    help="LiteRT only: int8 weights (dynamic), or int8 weights and activations calibrated on 300 training images (int8).",
)
@click.option(
    "--dataset",
    type=DATASET,
    default=None,
    help="The model's dataset (a name or a path) when its metadata does not say [default: the one it was trained on].",
)
@data_dir_option
@click.option(
    "--serving-version",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Write the SavedModel in TensorFlow Serving's layout: --output is the model's base folder, and the model goes in "
    "its N/ folder (implies --to savedmodel).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Compare each export with the Keras model on 1,000 test images before keeping it.",
)
@click.option(
    "--format",
    "output_format",
    type=ExportOutputFormat(["table", "json"]),
    default=None,
    help="Output on stdout: table, json [default: table in a terminal, else json].",
)
@click.option("--json", "as_json", is_flag=True, hidden=True)  # the old spelling of --format json
def export(
    model,
    model_option,
    runs_dir,
    export_format,
    output,
    quantize,
    dataset,
    data_dir,
    serving_version,
    verify,
    output_format,
    as_json,
):
    """Export a trained model to Keras, SavedModel, LiteRT or ONNX, verified against Keras.

    MODEL (or --model) is a run directory or a .keras file; without it, the
    latest run. Each export is loaded in its own runtime and compared with the
    Keras model on 1,000 test images (float: max |Δprob| <= 1e-4 and the same
    class on 99.9 %; quantized: accuracy drop <= 0.5 points); one that fails
    is not kept. The dataset, class names and preprocessing travel with it, so
    `lenet predict` and `lenet evaluate` take the exported file as MODEL.

    \b
    Examples:
      lenet export --output model.onnx
      lenet export runs/mnist-20261127-101500 --to all --output dist/
      lenet export --to litert --quantize int8 --output model-int8.tflite
      lenet export --to savedmodel --output saved_model --format json
      lenet export --to savedmodel --serving-version 1 -o models/lenet   # models/lenet/1/, as TF Serving loads it
    """
    from lenet_cli.engine.export_request import ExportRequest

    request = ExportRequest(
        model=pick_model(model, model_option),
        output=output,
        to=export_format,
        quantize=quantize,
        dataset=dataset,
        runs_dir=runs_dir,
        data_dir=data_dir,
        verify=verify,
        serving_version=serving_version,
    )  # the engine's checks: a bad value or combination is told under its option, and a missing extra, before anything loads
    run_export(request, "json" if as_json else resolve_format(output_format))
