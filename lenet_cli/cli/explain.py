"""``lenet explain``'s presentation: sheets written, records on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import json
from pathlib import Path

import click

from lenet_cli.core.errors import LenetError

MAX_SHEET_WORKERS = 4


def run_explain(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, method, target, steps,
                output_dir: Path, output_format: str) -> int:
    """Explain every input, write one sheet each, print the records; return the exit code (1 when any input failed)."""
    from lenet_cli.store import runs
    from lenet_cli.cli.console import plural
    from lenet_cli.data.idx import CLASS_NAMES
    from lenet_cli.engine.explain import parse_target
    from lenet_cli.engine.context import preprocessing_and_classes
    from lenet_cli.runtimes.loading import model_format, read_metadata
    from lenet_cli.data.picture_inputs import gather_inputs
    from lenet_cli.data.preprocess import PreprocessOptions

    items = gather_inputs(inputs, recursive, files_from)
    ref = runs.resolve_model(model, runs_dir)
    if method == "integrated-gradients" and model_format(ref.model_path) != "keras":
        raise LenetError(f"integrated gradients needs the gradients of a .keras model, and {str(ref.model_path)!r} is not one; "
                         "use --method occlusion")
    meta = read_metadata(ref)
    preprocess, class_names = preprocessing_and_classes(meta, preprocess, ref.model_path)
    from lenet_cli.cli.main import check_top_k

    check_top_k(top_k, len(class_names))
    class_dataset = meta["dataset"] if meta["dataset"] in CLASS_NAMES else preprocess  # the sheet says how its input was made
    target_index = parse_target(target, class_names)
    if output_dir.exists() and not output_dir.is_dir():
        raise LenetError(f"--output-dir {str(output_dir)!r} is a file; name a folder")
    output_dir.mkdir(parents=True, exist_ok=True)

    printer = RecordPrinter(output_format)
    method = _explain_all(items, ref, class_names, class_dataset, method, steps, PreprocessOptions(mode=preprocess, invert=invert),
                          target_index, top_k, output_dir, printer.emit)
    printer.close(method)
    written = len(items) - printer.failures
    if written:
        click.echo(f"{plural(written, 'explanation sheet')} in {output_dir}", err=True)
    if printer.failures:
        click.echo(f"{printer.failures} of {plural(len(items), 'input')} failed", err=True)
        return 1
    return 0


def _explain_all(items, ref, class_names, class_dataset, method, steps, options, target_index, top_k, output_dir, emit) -> str:
    """Explain the items in order and hand each explanation to ``emit`` once its sheet is written; return the method used."""
    from lenet_cli.engine.explain import PARALLEL_SHEETS_MIN, Explainer, SheetWriter, explain_items, sheet_content, sheet_name
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.data.picture_inputs import decode_workers

    sheet_workers = min(decode_workers(), MAX_SHEET_WORKERS) if len(items) >= PARALLEL_SHEETS_MIN else 1
    writer = SheetWriter(sheet_workers)  # before the model loads: its workers import matplotlib meanwhile
    try:
        explainer = Explainer(open_model(ref), class_names, method, steps=steps)
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
    return explainer.method


class RecordPrinter:
    """Explanation records on stdout as they come (jsonl) or at the end (json, table); errors on stderr."""

    def __init__(self, output_format: str):
        self.output_format = output_format
        self.records = []
        self.failures = 0

    def emit(self, explanation) -> None:
        explanation.release_pictures()  # its sheet is written; keep only what the records print
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


def _model_label(ref) -> str:
    """The model as the sheet names it: ``<run>/model.keras``, or the file's name."""
    if ref.run_dir is not None:
        return f"{ref.run_dir.name}/{ref.model_path.name}"
    return ref.model_path.name


def _print_table(records, method: str) -> None:
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

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
