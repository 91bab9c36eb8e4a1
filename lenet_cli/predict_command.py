"""``lenet predict``'s presentation: predictions on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from lenet_cli.errors import LenetError

FORMATS = ("table", "json", "jsonl", "csv", "tsv")


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _top_k_text(top_k) -> str:
    return ";".join(f"{t['label']}:{t['confidence']:.4f}" for t in top_k)


def _label_text(label: str, index: int) -> str:
    """The class as a person reads it: ``7`` for a digit, ``Sneaker (7)`` where name and index differ."""
    return label if label == str(index) else f"{label} ({index})"


def run_predict(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, output_format, save_preprocessed, batch_size) -> int:
    """Predict every input and print the results; return the exit code (1 when any input failed)."""
    from lenet_cli import runs
    from lenet_cli.data import CLASS_NAMES
    from lenet_cli.model_io import open_model, read_metadata
    from lenet_cli.prediction import DECODE_CHUNK, ChunkDecoder, expand_inputs, predict_items
    from lenet_cli.preprocess import PreprocessOptions

    lines = []
    if files_from is not None:
        text = sys.stdin.buffer.read() if files_from == "-" else open(files_from, "rb").read()
        lines = [line for line in text.decode("utf-8", "surrogateescape").splitlines() if line.strip()]
    if "-" in inputs and files_from == "-":
        raise click.UsageError("stdin can carry either an image (-) or a list of paths (--files-from -), not both")
    items = expand_inputs(inputs, recursive=recursive, files_from=lines, stdin_bytes=lambda: sys.stdin.buffer.read())
    if not items:
        raise LenetError("no image files found in the given inputs (directories are searched for .png, .jpg, .bmp, .gif, .tif, .webp; add --recursive to descend)")

    ref = runs.resolve_model(model, runs_dir)
    meta = read_metadata(ref)
    dataset = meta["dataset"]
    if preprocess == "auto":
        if dataset is None:
            raise LenetError(f"cannot tell which dataset {str(ref.model_path)!r} was trained on; pass --preprocess mnist or --preprocess fashion")
        preprocess = dataset
    class_dataset = dataset or (preprocess if preprocess in CLASS_NAMES else None)
    if class_dataset is None:
        raise LenetError(f"cannot tell the class names of {str(ref.model_path)!r}; pass --preprocess mnist or --preprocess fashion")
    class_names = CLASS_NAMES[class_dataset]
    if save_preprocessed is not None:
        save_preprocessed.mkdir(parents=True, exist_ok=True)
    # decoding starts in worker processes first, so it overlaps the model's (TensorFlow's) start-up
    decoder = ChunkDecoder(items, PreprocessOptions(mode=preprocess, invert=invert), chunk_size=min(batch_size, DECODE_CHUNK))
    try:
        loaded = open_model(ref)
    except BaseException:
        decoder.close()
        raise
    model_name = str(ref.model_path)  # which model answered: in every machine-readable record, and for people on stderr
    from lenet_cli.console import stderr_console

    people = stderr_console()
    if people.is_terminal:
        people.print(f"model: {model_name} ({class_dataset})", highlight=False, markup=False)

    failures = 0
    records = []  # kept only for the formats printed as a whole (json, table); the others stream
    csv_header_written = False
    for prediction in predict_items(items, loaded.predict, class_names, preprocess, invert, top_k, batch_size, save_preprocessed, decoder):
        if prediction.error:
            failures += 1
            click.echo(f"Error: {prediction.error}", err=True)
            if output_format in ("tsv", "table"):
                continue
        if output_format == "jsonl":
            click.echo(json.dumps({**prediction.to_dict(), "model": model_name}))
        elif output_format == "tsv":
            click.echo(f"{prediction.path}\t{prediction.label}\t{prediction.confidence:.4f}")
        elif output_format == "csv":
            if not csv_header_written:
                click.echo(_csv_line(["path", "label", "index", "confidence", "top_k", "error", "model"]), nl=False)
                csv_header_written = True
            p = prediction
            click.echo(_csv_line([p.path, p.label or "", "" if p.index is None else p.index,
                                  "" if p.confidence is None else f"{p.confidence:.6f}", _top_k_text(p.top_k), p.error or "", model_name]), nl=False)
        else:
            records.append(prediction)
    if output_format == "json":
        click.echo(json.dumps([{**p.to_dict(), "model": model_name} for p in records], indent=2))
    elif output_format == "table":
        from rich.markup import escape
        from rich.table import Table

        from lenet_cli.console import stdout_console

        table = Table()
        table.add_column("file", overflow="fold")
        table.add_column("prediction")
        table.add_column("confidence", justify="right")
        table.add_column(f"top {top_k}")
        for p in records:
            table.add_row(escape(p.path), escape(_label_text(p.label, p.index)), f"{p.confidence:.1%}",
                          escape(", ".join(f"{t['label']} {t['confidence']:.1%}" for t in p.top_k)))
        stdout_console().print(table)
    if failures:
        from lenet_cli.console import plural

        click.echo(f"{failures} of {plural(len(items), 'input')} failed", err=True)
        return 1
    return 0
