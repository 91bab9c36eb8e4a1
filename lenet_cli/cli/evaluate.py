"""``lenet evaluate``'s presentation: the report as a rich table, JSON or CSV on stdout."""

from __future__ import annotations

import csv
import io
import json

import click

from lenet_cli.core.config import MIN_CONFIDENCE
from lenet_cli.core.errors import LenetError


def mistake_record(result, index: int, names) -> dict:
    """One shown mistake, with where to find the image again: its position in the split and in the dataset's file."""
    predicted = int(result.probabilities[index].argmax())
    return {"split_index": int(index), "file_index": result.file_index(int(index)),
            "label": names[int(result.labels[index])], "predicted": names[predicted],
            "confidence": float(result.probabilities[index, predicted])}


def report_to_csv(report: dict) -> str:
    """Per-class rows, the macro and weighted averages, then one row per overall number in the ``value`` column."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["label", "index", "precision", "recall", "f1", "support", "value"])
    for row in report["per_class"]:
        writer.writerow([row["label"], row["index"], f"{row['precision']:.6f}", f"{row['recall']:.6f}", f"{row['f1']:.6f}", row["support"], ""])
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        writer.writerow([name.replace("_", " "), "", f"{avg['precision']:.6f}", f"{avg['recall']:.6f}", f"{avg['f1']:.6f}", avg["support"], ""])
    overall = {"accuracy": report["accuracy"], f"top_{report['top_k']}_accuracy": report["top_k_accuracy"],
               "cross_entropy": report["cross_entropy"], "objective": report.get("objective"),
               "expected_calibration_error": report["expected_calibration_error"]}
    for name, value in overall.items():
        if value is not None:
            writer.writerow([name, "", "", "", "", report["count"], f"{value:.6f}"])
    unsure = report["low_confidence"]
    for name, value in (("min_confidence", unsure["threshold"]), ("low_confidence_share", unsure["flagged_share"]),
                        ("mistakes_flagged_share", unsure["mistakes_flagged_share"]), ("accuracy_unflagged", unsure["accuracy_unflagged"])):
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
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    console = stdout_console()
    summary = Table(title=f"{report['dataset']} {report['split']} split — {report['count']:,} images", show_header=False)
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    summary.add_row("model", report["model"])
    summary.add_row("accuracy", f"{report['accuracy']:.4f}")
    summary.add_row(f"top-{report['top_k']} accuracy", f"{report['top_k_accuracy']:.4f}")
    summary.add_row("expected calibration error (15 bins)", f"{report['expected_calibration_error']:.4f}")
    summary.add_row(f"flagged below {report['low_confidence']['threshold'] * 100:g}% confidence", low_confidence_text(report["low_confidence"]))
    summary.add_row("cross-entropy", f"{report['cross_entropy']:.4f}")
    if report.get("objective") is not None:
        summary.add_row("objective (cross-entropy + L1 + L2)", f"{report['objective']:.4f}")
    console.print(summary)

    per_class = Table(title="per class")
    for column in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for row in report["per_class"]:
        per_class.add_row(row["label"], f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", f"{row['support']:,}")
    for name in ("macro_avg", "weighted_avg"):
        avg = report[name]
        per_class.add_row(f"[italic]{name.replace('_', ' ')}", f"{avg['precision']:.4f}", f"{avg['recall']:.4f}", f"{avg['f1']:.4f}", f"{avg['support']:,}")
    console.print(per_class)

    names = report["class_names"]
    matrix = Table(title="confusion matrix (rows: true class, columns: predicted)")
    matrix.add_column("true \\ pred")
    for name in names:
        matrix.add_column(name[:7], justify="right")
    for name, row in zip(names, report["confusion_matrix"]):
        matrix.add_row(name, *[f"[bold]{v}" if i == names.index(name) else (str(v) if v else "[dim]0") for i, v in enumerate(row)])
    console.print(matrix)


def run_evaluate(model, runs_dir, dataset, split, data_dir, batch_size, top_k, output_format, confusion_png, misclassified, misclassified_count,
                 min_accuracy, reliability_png=None, min_confidence: float = MIN_CONFIDENCE) -> None:
    from lenet_cli.store import runs
    from lenet_cli.store.atomic import write_bytes_atomic
    from lenet_cli.cli.console import stderr_console

    console = stderr_console()
    ref = runs.resolve_model(model, runs_dir)
    from lenet_cli.runtimes.loading import open_model, read_metadata

    meta = read_metadata(ref)
    dataset = dataset or meta["dataset"]
    if dataset is None:
        raise LenetError(f"cannot tell which dataset {str(ref.model_path)!r} was trained on; pass --dataset mnist or --dataset fashion")
    with console.status(f"loading {ref.model_path}"):
        loaded = open_model(ref, batch_size=batch_size)
    from lenet_cli.engine.evaluate import evaluate_model

    from lenet_cli.cli.main import check_top_k
    from lenet_cli.data.idx import CLASS_NAMES

    same_data = dataset == meta["dataset"]  # the model's own classes; another dataset brings its own
    class_names = (meta["class_names"] if same_data else None) or CLASS_NAMES.get(dataset)
    if class_names is not None:
        check_top_k(top_k, len(class_names))
    data_dir = runs.remembered_data_dir(data_dir, meta["run_config"], dataset)
    preprocess = meta["preprocessing"] if same_data else None
    with console.status(f"evaluating on the {dataset} {split} split"):
        result = evaluate_model(loaded, dataset, split, data_dir, top_k=top_k, log=lambda m: console.print(m, highlight=False),
                                class_names=class_names, preprocess=preprocess, min_confidence=min_confidence)
    report = result.report
    if confusion_png is not None:
        from lenet_cli.viz.plots import render_confusion_matrix_png

        import numpy as np

        png = render_confusion_matrix_png(np.array(report["confusion_matrix"]), report["class_names"],
                                          f"{dataset} {split}: accuracy {report['accuracy']:.4f}")
        write_bytes_atomic(confusion_png, png)
        console.print(f"confusion matrix image written to {confusion_png}", highlight=False)
    if reliability_png is not None:
        from lenet_cli.viz.plots import render_reliability_png

        write_bytes_atomic(reliability_png, render_reliability_png(report["calibration_bins"], report["expected_calibration_error"],
                                                                   f"{dataset} {split}: reliability"))
        console.print(f"reliability diagram written to {reliability_png}", highlight=False)
    if misclassified is not None:
        from lenet_cli.core.metrics import most_confident_mistakes
        from lenet_cli.viz.plots import render_gallery_png

        idx = most_confident_mistakes(result.labels, result.probabilities, misclassified_count)
        names = report["class_names"]
        report["misclassified"] = [mistake_record(result, i, names) for i in idx]
        if idx:
            captions = [
                f"true: {names[result.labels[i]]}\npred: {names[int(result.probabilities[i].argmax())]} {result.probabilities[i].max():.2f}"
                for i in idx
            ]
            write_bytes_atomic(misclassified, render_gallery_png(result.images[idx], captions))
            console.print(f"{len(idx)} most confident mistakes written to {misclassified}", highlight=False)
        else:
            console.print("no mistakes: no gallery written", highlight=False)
    if output_format == "json":
        click.echo(json.dumps(report, indent=2))
    elif output_format == "csv":
        click.echo(report_to_csv(report), nl=False)
    else:
        print_report_table(report)
    if min_accuracy is not None and report["accuracy"] < min_accuracy:
        raise LenetError(f"accuracy {report['accuracy']:.4f} is below --min-accuracy {min_accuracy:g}")
