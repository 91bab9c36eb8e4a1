"""``lenet evaluate``'s presentation: the report as a rich table, JSON or CSV on stdout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click

from lenet_cli.cli.options import (
    DATASET,
    MODEL_PATH,
    data_dir_option,
    engine_option,
    min_confidence_option,
    model_option,
    output_format_option,
    pick_model,
    resolve_format,
    runs_dir_option,
    top_k_option,
)
from lenet_cli.core import config as C
from lenet_cli.core.errors import BelowBar


def report_to_csv(report: dict) -> str:
    """Per-class rows, the macro and weighted averages, then one row per overall number in the ``value`` column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "index", "precision", "recall", "f1", "support", "value"])
    for row in report["per_class"]:
        writer.writerow(
            [
                row["label"],
                row["index"],
                f"{row['precision']:.6f}",
                f"{row['recall']:.6f}",
                f"{row['f1']:.6f}",
                row["support"],
                "",
            ]
        )
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        writer.writerow(
            [
                name.replace("_", " "),
                "",
                f"{avg['precision']:.6f}",
                f"{avg['recall']:.6f}",
                f"{avg['f1']:.6f}",
                avg["support"],
                "",
            ]
        )
    overall = {
        "accuracy": report["accuracy"],
        f"top_{report['top_k']}_accuracy": report["top_k_accuracy"],
        "cross_entropy": report["cross_entropy"],
        "objective": report.get("objective"),
        "expected_calibration_error": report["expected_calibration_error"],
    }
    for name, value in overall.items():
        if value is not None:
            writer.writerow([name, "", "", "", "", report["count"], f"{value:.6f}"])
    unsure = report["low_confidence"]
    for name, value in (
        ("min_confidence", unsure["threshold"]),
        ("low_confidence_share", unsure["flagged_share"]),
        ("mistakes_flagged_share", unsure["mistakes_flagged_share"]),
        ("accuracy_unflagged", unsure["accuracy_unflagged"]),
    ):
        if value is not None:
            writer.writerow([name, "", "", "", "", report["count"], f"{value:.6f}"])
    return out.getvalue()


def low_confidence_text(unsure: dict) -> str:
    """One line for people: how often ``--min-confidence`` fires and what it catches."""
    text = f"{unsure['flagged_share']:.2%} of images ({unsure['flagged']:,})"
    if unsure["mistakes"]:
        text += f", {unsure['mistakes_flagged']:,} of {unsure['mistakes']:,} mistakes"
    if unsure["accuracy_unflagged"] is not None:
        text += f"; accuracy of the rest {unsure['accuracy_unflagged']:.4f}"
    return text


def print_report_table(report: dict) -> None:
    """Rich tables on stdout: summary, per-class metrics, confusion matrix."""
    from rich.markup import escape
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    console = stdout_console()
    summary = Table(
        title=f"{report['dataset']} {report['split']} split — {report['count']:,} images", show_header=False
    )
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("model", f"{report['model']} ({report['format']})")
    if report.get("test_time_flip"):
        summary.add_row("answers", "the picture and its mirror image, averaged (test_time_flip)")
    summary.add_row("accuracy", f"{report['accuracy']:.4f}")
    summary.add_row(f"top-{report['top_k']} accuracy", f"{report['top_k_accuracy']:.4f}")
    summary.add_row("expected calibration error (15 bins)", f"{report['expected_calibration_error']:.2%}")
    summary.add_row(
        f"flagged below {report['low_confidence']['threshold'] * 100:g}% confidence",
        low_confidence_text(report["low_confidence"]),
    )
    summary.add_row("cross-entropy", f"{report['cross_entropy']:.4f}")
    if report.get("objective") is not None:
        summary.add_row("objective (cross-entropy + L1 + L2)", f"{report['objective']:.4f}")
    console.print(summary)

    per_class = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for row in report["per_class"]:
        per_class.add_row(
            escape(row["label"]),
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            f"{row['support']:,}",
        )
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        per_class.add_row(
            f"[italic]{name.replace('_', ' ')}",
            f"{avg['precision']:.4f}",
            f"{avg['recall']:.4f}",
            f"{avg['f1']:.4f}",
            f"{avg['support']:,}",
        )
    console.print(per_class)

    names = report["class_names"]
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("true \\ pred")
    for name in names:
        matrix.add_column(
            escape(name), justify="right"
        )  # whole names: rich wraps a header only when the terminal is too narrow
    for name, row in zip(names, report["confusion_matrix"]):
        matrix.add_row(
            escape(name),
            *[f"[bold]{v}" if i == names.index(name) else (str(v) if v else "[dim]0") for i, v in enumerate(row)],
        )
    console.print(matrix)


def run_evaluate(request, output_format: str, min_accuracy: float | None = None) -> None:
    """Score the model, say which files were written, print the report; fail below ``min_accuracy``."""
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.engine.evaluate import evaluate

    console = stderr_console()
    with console.status("evaluating") as status:

        def log(message: str) -> None:
            status.update(message)
            if not message.startswith(("loading ", "evaluating ")):
                console.print(message, highlight=False)

        result = evaluate(request, log=log)
    report = result.report
    if "confusion" in result.written:
        console.print(f"confusion matrix image written to {result.written['confusion']}", highlight=False)
    if "reliability" in result.written:
        console.print(f"reliability diagram written to {result.written['reliability']}", highlight=False)
    if request.misclassified_png is not None:
        if "misclassified" in result.written:
            console.print(
                f"{len(report['misclassified'])} most confident mistakes written to {result.written['misclassified']}",
                highlight=False,
            )
        else:
            console.print("no mistakes: no gallery written", highlight=False)
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
    elif output_format == "csv":
        click.echo(report_to_csv(report), nl=False)
    else:
        print_report_table(report)
    if min_accuracy is not None and report["accuracy"] < min_accuracy:
        raise BelowBar(f"accuracy {report['accuracy']:.4f} is below --min-accuracy {min_accuracy:g}")


@click.command()
@click.argument("model", required=False, type=MODEL_PATH)
@model_option("model_option")
@engine_option
@runs_dir_option
@click.option(
    "--dataset",
    type=DATASET,
    default=None,
    help="Dataset to score on, a name or a path [default: the one the model was trained on].",
)
@click.option("--split", type=click.Choice(C.SPLITS), default="test", show_default=True, help="Which split to score.")
@data_dir_option
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=C.INFERENCE_BATCH_SIZE,
    show_default=True,
    help="Images per inference batch.",
)
@top_k_option("k of the top-k accuracy")
@output_format_option(*C.EVALUATE_FORMATS)
@click.option(
    "--confusion-png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the labelled confusion-matrix image here.",
)
@click.option(
    "--misclassified",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a gallery of the most confident mistakes here (PNG).",
)
@click.option(
    "--misclassified-count",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="How many mistakes the gallery shows.",
)
@click.option(
    "--reliability-png",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the reliability diagram (accuracy against confidence, 15 bins) here.",
)
@click.option(
    "--min-accuracy",
    type=click.FloatRange(0, 1),
    default=None,
    help="Exit with code 4 when accuracy is below this (a CI gate; other failures exit 1).",
)
@min_confidence_option(
    "Report how often `lenet predict` would flag an answer as unsure at this threshold, and the mistakes it catches"
)
def evaluate(
    model,
    model_option,
    engine,
    runs_dir,
    dataset,
    split,
    data_dir,
    batch_size,
    top_k,
    output_format,
    confusion_png,
    misclassified,
    misclassified_count,
    reliability_png,
    min_accuracy,
    min_confidence,
):
    """Score a trained model: accuracy, top-k, cross-entropy, calibration, per-class metrics, confusion matrix.

    MODEL (or --model) is a run directory or a model file; without it, the
    latest run (named in <runs-dir>/LATEST, else the newest run holding a
    model.keras). A run answers with its TensorFlow-free model.tflite
    unless --engine keras; the report's model and format say which.

    \b
    Examples:
      lenet evaluate
      lenet evaluate runs/fashion-20261127-101500 --format json
      lenet evaluate --split validation --confusion-png cm.png --min-accuracy 0.99
    """
    from lenet_cli.engine.evaluate import EvaluateRequest

    request = EvaluateRequest(
        pick_model(model, model_option),
        runs_dir,
        dataset,
        split,
        data_dir,
        batch_size,
        top_k,
        min_confidence,
        confusion_png=confusion_png,
        reliability_png=reliability_png,
        misclassified_png=misclassified,
        misclassified_count=misclassified_count,
        engine=engine,
    )
    run_evaluate(request, resolve_format(output_format), min_accuracy)
