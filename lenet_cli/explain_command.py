"""``lenet explain``'s presentation: sheets written, records on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lenet_cli.errors import LenetError

FORMATS = ("table", "json", "jsonl")
MAX_SHEET_WORKERS = 4


def run_explain(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, method, target, steps,
                output_dir: Path, output_format: str) -> int:
    """Explain every input, write one sheet each, print the records; return the exit code (1 when any input failed)."""
    from lenet_cli import runs
    from lenet_cli.explain import (
        PARALLEL_SHEETS_MIN,
        Explainer,
        SheetWriter,
        explain_items,
        parse_target,
        sheet_content,
        sheet_name,
    )
    from lenet_cli.model_io import model_format, open_model, read_metadata
    from lenet_cli.prediction import decode_workers, expand_inputs
    from lenet_cli.preprocess import PreprocessOptions

    lines = []
    if files_from is not None:
        text = sys.stdin.buffer.read() if files_from == "-" else Path(files_from).read_bytes()
        lines = [line for line in text.decode("utf-8", "surrogateescape").splitlines() if line.strip()]
    if "-" in inputs and files_from == "-":
        raise click.UsageError("stdin can carry either an image (-) or a list of paths (--files-from -), not both")

    ref = runs.resolve_model(model, runs_dir)
    fmt = model_format(ref.model_path)
    if method == "integrated-gradients" and fmt != "keras":
        raise LenetError(f"integrated gradients needs the gradients of a .keras model, and {str(ref.model_path)!r} is not one; "
                         "use --method occlusion")
    meta = read_metadata(ref)
    from lenet_cli.data import CLASS_NAMES
    from lenet_cli.model_classes import preprocessing_and_classes

    dataset = meta["dataset"]
    preprocess, class_names = preprocessing_and_classes(meta, preprocess, ref.model_path)
    class_dataset = dataset if dataset in CLASS_NAMES else preprocess  # the sheet says how its input was preprocessed
    target_index = parse_target(target, class_names)
    options = PreprocessOptions(mode=preprocess, invert=invert)

    items = expand_inputs(inputs, recursive=recursive, files_from=lines, stdin_bytes=lambda: sys.stdin.buffer.read())
    if not items:
        raise LenetError("no image files found in the given inputs (directories are searched for .png, .jpg, .bmp, .gif, .tif, .webp; add --recursive to descend)")
    if output_dir.exists() and not output_dir.is_dir():
        raise LenetError(f"--output-dir {str(output_dir)!r} is a file; name a folder")
    output_dir.mkdir(parents=True, exist_ok=True)

    sheet_workers = min(decode_workers(), MAX_SHEET_WORKERS) if len(items) >= PARALLEL_SHEETS_MIN else 1
    writer = SheetWriter(sheet_workers)  # before the model loads: its workers import matplotlib meanwhile
    failures = 0
    records = []

    def emit(explanation) -> None:
        nonlocal failures
        explanation.release_pictures()  # its sheet is written; keep only what the records print
        if explanation.error is not None:
            failures += 1
            click.echo(f"Error: {explanation.error}", err=True)
        if output_format == "jsonl":
            click.echo(json.dumps(explanation.to_dict()))
        elif output_format == "json":
            records.append(explanation.to_dict())
        elif explanation.error is None:
            records.append(explanation)

    try:
        loaded = open_model(ref)
        explainer = Explainer(loaded, class_names, method, steps=steps)
        model_label = _model_label(ref)
        taken: set[str] = set()
        for explanation in explain_items(items, explainer, options, target_index, top_k):
            if explanation.error is None:
                content = sheet_content(explanation, explainer, model_label, class_dataset, top_k)
                finished = writer.submit(explanation, content, output_dir / sheet_name(explanation.path, taken))
            else:
                finished = writer.submit(explanation)
            for done in finished:
                emit(done)
        for done in writer.finish():
            emit(done)
    finally:
        writer.close()
    if output_format == "json":
        click.echo(json.dumps(records, indent=1))
    elif output_format == "table":
        _print_table(records, explainer.method)
    from lenet_cli.console import plural

    written = len(items) - failures
    if written:
        click.echo(f"{plural(written, 'explanation sheet')} in {output_dir}", err=True)
    if failures:
        click.echo(f"{failures} of {plural(len(items), 'input')} failed", err=True)
        return 1
    return 0


def _model_label(ref) -> str:
    """The model as the sheet names it: ``<run>/model.keras``, or the file's name."""
    if ref.run_dir is not None:
        return f"{ref.run_dir.name}/{ref.model_path.name}"
    return ref.model_path.name


def _print_table(records, method: str) -> None:
    from rich.table import Table

    from lenet_cli.console import stdout_console

    table = Table(title=f"lenet explain ({method})")
    table.add_column("file", overflow="fold")
    table.add_column("prediction")
    table.add_column("confidence", justify="right")
    table.add_column("explained class")
    if method == "integrated-gradients":
        table.add_column("gap", justify="right")
    table.add_column("sheet", overflow="fold")
    for e in records:
        row = [e.path, f"{e.label} ({e.index})", f"{e.confidence:.1%}", f"{e.target['label']} ({e.target['index']})"]
        if method == "integrated-gradients":
            row.append(f"{e.completeness_gap:.2%}")
        table.add_row(*row, e.sheet)
    stdout_console().print(table)
