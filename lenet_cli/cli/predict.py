"""``lenet predict``'s presentation: predictions on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from lenet_cli.cli.options import (
    check_inputs,
    min_confidence_option,
    output_format_option,
    picture_options,
    resolve_format,
)
from lenet_cli.core import config as C
from lenet_cli.core.config import MIN_CONFIDENCE
from lenet_cli.core.units import label_text

if TYPE_CHECKING:  # types only: the CLI imports numpy-backed modules when a command runs
    from lenet_cli.core.prediction import Prediction


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _top_k_text(top_k) -> str:
    return ";".join(f"{t['label']}:{t['confidence']:.4f}" for t in top_k)


class PredictionWriter:
    """Print predictions on stdout as they come (jsonl, tsv, csv) or at the end (json, table); errors on stderr."""

    def __init__(self, output_format: str, top_k: int, model_name: str, min_confidence: float = MIN_CONFIDENCE):
        self.output_format = output_format
        self.top_k = top_k
        self.model_name = model_name  # which model answered: in every machine-readable record
        self.min_confidence = min_confidence
        self.records: list[Prediction] = []  # kept only for the formats printed as a whole
        self.failures = 0
        self.answered = 0
        self.unsure = 0  # answers flagged low_confidence
        self.csv_header_written = False

    def write(self, p) -> None:
        if p.error:
            self.failures += 1
            click.echo(f"Error: {p.error}", err=True)
            if self.output_format in ("tsv", "table"):
                return
        else:
            self.answered += 1
            self.unsure += bool(p.low_confidence)
        if self.output_format == "jsonl":
            click.echo(json.dumps({**p.to_dict(), "model": self.model_name}))
        elif self.output_format == "tsv":
            click.echo(f"{p.path}\t{p.label}\t{p.confidence:.4f}")
        elif self.output_format == "csv":
            if not self.csv_header_written:
                click.echo(
                    _csv_line(["path", "label", "index", "confidence", "top_k", "low_confidence", "error", "model"]),
                    nl=False,
                )
                self.csv_header_written = True
            click.echo(
                _csv_line(
                    [
                        p.path,
                        p.label or "",
                        "" if p.index is None else p.index,
                        "" if p.confidence is None else f"{p.confidence:.6f}",
                        _top_k_text(p.top_k),
                        "" if p.low_confidence is None else str(p.low_confidence).lower(),
                        p.error or "",
                        self.model_name,
                    ]
                ),
                nl=False,
            )
        else:
            self.records.append(p)

    def close(self) -> None:
        if self.output_format == "json":
            click.echo(json.dumps([{**p.to_dict(), "model": self.model_name} for p in self.records], indent=2))
        elif self.output_format == "table":
            from rich.markup import escape
            from rich.table import Table

            from lenet_cli.cli.console import stdout_console

            table = Table()
            table.add_column("file", overflow="fold")
            table.add_column("prediction")
            table.add_column("confidence", justify="right")
            table.add_column(f"top {self.top_k}")
            for p in self.records:
                assert p.label is not None and p.index is not None, (
                    "the table keeps answers only: write() returns before recording a failure"
                )
                confidence = f"[yellow]? {p.confidence:.1%}" if p.low_confidence else f"{p.confidence:.1%}"
                table.add_row(
                    escape(p.path),
                    escape(label_text(p.label, p.index)),
                    confidence,
                    escape(", ".join(f"{t['label']} {t['confidence']:.1%}" for t in p.top_k)),
                )
            if self.unsure:
                table.caption = f"? = below {self.min_confidence * 100:g}% confidence: the network is unsure"
            stdout_console().print(table)


def run_predict(request, output_format: str) -> int:
    """Predict every input and print the results; return the exit code (1 when any input failed)."""
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.core.units import plural
    from lenet_cli.engine.predict import start_predict

    run = start_predict(request, log=lambda line: click.echo(line, err=True))
    people = stderr_console()
    if people.is_terminal:
        people.print(
            f"model: {run.context.ref.model_path} ({run.context.metadata['dataset'] or run.context.preprocess})",
            highlight=False,
            markup=False,
        )
    writer = PredictionWriter(output_format, run.top_k, str(run.context.ref.model_path), request.min_confidence)
    for prediction in run.predictions:
        writer.write(prediction)
    writer.close()
    if writer.unsure:
        click.echo(
            f"{writer.unsure} of {plural(writer.answered, 'answer')} below {request.min_confidence * 100:g}% confidence (flagged "
            "low_confidence): the network is unsure, check them",
            err=True,
        )
    if writer.failures:
        click.echo(f"{writer.failures} of {plural(len(run.items), 'input')} failed", err=True)
        return 1
    return 0


@click.command()
@picture_options("How many classes to list per image")
@min_confidence_option("Flag answers whose confidence is below this (low_confidence in records, '?' in the table)")
@output_format_option(*C.PREDICT_FORMATS)
@click.option(
    "--save-preprocessed",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write the exact 28x28 inputs the network saw into this folder.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=512,
    show_default=True,
    help="Images decoded and predicted per batch.",
)
@click.pass_context
def predict(
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
    min_confidence,
    output_format,
    save_preprocessed,
    batch_size,
):
    """Classify image files (PNG, JPEG, BMP, GIF, TIFF, WebP), directories or stdin.

    Pictures are preprocessed the way the model's dataset was made (MNIST:
    white on black, the digit fitted into 20x20 and centred by mass;
    Fashion-MNIST: the article inverted and fitted to 28x28), so photos and
    drawings of any size and background work. An answer whose confidence is
    under --min-confidence is flagged as unsure (how often that happens on
    the test split, and how many mistakes it catches: `lenet evaluate`).
    Exit code 1 when any input failed (the others are still predicted).
    A run answers with its TensorFlow-free model.tflite (no TensorFlow to
    start: well under a second) unless --engine keras.

    \b
    Examples:
      lenet predict digit.png photo.jpg
      lenet predict --model runs/mnist-20261127-101500 scans/ --recursive --format jsonl
      cat digit.png | lenet predict - --format json
      find . -name '*.png' | lenet predict --files-from - --format tsv > predictions.tsv
    """
    from lenet_cli.engine.predict import PredictRequest

    check_inputs(inputs, files_from)
    request = PredictRequest(
        inputs,
        model,
        runs_dir,
        recursive,
        files_from,
        preprocess,
        invert,
        top_k,
        min_confidence,
        batch_size,
        save_preprocessed,
        engine=engine,
    )
    code = run_predict(request, resolve_format(output_format))
    ctx.exit(code)
