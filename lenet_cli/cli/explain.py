"""``lenet explain``'s presentation: sheets written, records on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lenet_cli.cli.options import (
    check_inputs,
    output_format_option,
    picture_options,
    resolve_format,
)

if TYPE_CHECKING:  # types only: the explain engine loads when the command runs
    from lenet_cli.core.prediction import Explanation


def run_explain(request, output_format: str) -> int:
    """Explain every input, write one sheet each, print the records; return the exit code (1 when any input failed)."""
    from lenet_cli.core.units import plural
    from lenet_cli.engine.explain import explain

    printer = RecordPrinter(output_format)
    result = explain(request, on_explanation=printer.emit, log=lambda line: click.echo(line, err=True))
    printer.close(result.method)
    written = len(result.explanations) - result.failures
    if written:
        click.echo(f"{plural(written, 'explanation sheet')} in {result.output_dir}", err=True)
    if result.failures:
        click.echo(f"{result.failures} of {plural(len(result.explanations), 'input')} failed", err=True)
        return 1
    return 0


class RecordPrinter:
    """Explanation records on stdout as they come (jsonl) or at the end (json, table); errors on stderr."""

    def __init__(self, output_format: str):
        self.output_format = output_format
        self.records: list[dict[str, Any] | Explanation] = []  # json: the records; table: the explanations
        self.failures = 0

    def emit(self, explanation) -> None:
        if explanation.error is not None:
            self.failures += 1
            click.echo(f"Error: {explanation.error}", err=True)
        if self.output_format == "jsonl":
            click.echo(json.dumps(explanation.to_dict()))
        elif self.output_format == "json":
            self.records.append(explanation.to_dict())
        elif explanation.error is None:
            self.records.append(explanation)

    def close(self, method: str) -> None:
        if self.output_format == "json":
            click.echo(json.dumps(self.records, indent=1))
        elif self.output_format == "table":
            _print_table(self.records, method)


def _print_table(records, method: str) -> None:
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console
    from lenet_cli.core.units import label_text

    table = Table(title=f"lenet explain ({method})")
    table.add_column("file", overflow="fold")
    table.add_column("prediction")
    table.add_column("confidence", justify="right")
    table.add_column("explained class")
    if method == "integrated-gradients":
        table.add_column("gap", justify="right")
    table.add_column("sheet", overflow="fold")
    for e in records:
        row = [
            e.path,
            label_text(e.label, e.index),
            f"{e.confidence:.1%}",
            label_text(e.target["label"], e.target["index"]),
        ]
        if method == "integrated-gradients":
            row.append(f"{e.completeness_gap:.2%}")
        table.add_row(*row, e.sheet)
    stdout_console().print(table)


@click.command()
@picture_options("How many classes the sheet and the record list")
@click.option(
    "--method",
    type=click.Choice(["integrated-gradients", "occlusion"]),
    default=None,
    help="Attribution method [default: integrated-gradients for runs and .keras models (TensorFlow); .onnx, .tflite and "
    "SavedModels need occlusion, which for a run uses its model.tflite (see --engine)].",
)
@click.option(
    "--target",
    default=None,
    metavar="CLASS",
    help="Explain this class (a name or an index) instead of the predicted one.",
)
@click.option(
    "--steps",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Integrated Gradients: steps along the path from the black baseline.",
)
@click.option(
    "--output-dir",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("explanations"),
    show_default=True,
    help="Folder for the PNG sheets (one per image, named after it).",
)
@output_format_option("table", "json", "jsonl")
@click.pass_context
def explain(
    ctx,
    inputs,
    recursive,
    files_from,
    model,
    engine,
    runs_dir,
    preprocess,
    invert,
    top_k,
    method,
    target,
    steps,
    output_dir,
    output_format,
):
    """Show what the network saw and which pixels made it answer: one PNG sheet per image.

    Each sheet shows the picture as given, the 28x28 input after
    preprocessing, the top-k classes, an attribution map over the input (red:
    evidence for the class, blue: against it), the conv_1 and conv_2 feature
    maps and the conv_1 filters. Integrated Gradients (Sundararajan et al.
    2017) needs a .keras model; occlusion sensitivity (Zeiler and Fergus
    2014) works with every model, without TensorFlow for .onnx, .tflite and
    a run's model.tflite (unless --engine keras).
    Inputs and model selection as in `lenet predict`; exit code 1 when any
    input failed (the others are still explained).

    \b
    Examples:
      lenet explain digit.png                         # the latest run; writes explanations/digit.png
      lenet explain scans/ --model runs/mnist-20261127-101500 --format jsonl
      lenet explain shirt.jpg --target Pullover --output-dir why/
      lenet explain --model model.onnx --method occlusion digit.png
    """
    from lenet_cli.engine.explain import ExplainRequest

    check_inputs(inputs, files_from)
    request = ExplainRequest(
        inputs,
        model,
        runs_dir,
        recursive,
        files_from,
        preprocess,
        invert,
        top_k,
        method,
        target,
        steps,
        output_dir,
        engine=engine,
    )
    code = run_explain(request, resolve_format(output_format))
    ctx.exit(code)
