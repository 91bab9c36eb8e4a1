"""``lenet predict``'s presentation: predictions on stdout in the format asked for, problems on stderr."""

from __future__ import annotations

import csv
import io
import json

import click

from lenet_cli.core.config import MIN_CONFIDENCE


def _csv_line(values) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()


def _top_k_text(top_k) -> str:
    return ";".join(f"{t['label']}:{t['confidence']:.4f}" for t in top_k)


def _label_text(label: str, index: int) -> str:
    """The class as a person reads it: ``7`` for a digit, ``Sneaker (7)`` where name and index differ."""
    return label if label == str(index) else f"{label} ({index})"


def _preprocessing_and_classes(ref, preprocess: str) -> tuple[str, str, tuple[str, ...]]:
    """``(preprocessing mode, dataset the classes come from, class names)`` for the model ``ref`` points at."""
    from lenet_cli.engine.context import preprocessing_and_classes
    from lenet_cli.runtimes.loading import read_metadata

    meta = read_metadata(ref)
    preprocess, names = preprocessing_and_classes(meta, preprocess, ref.model_path)
    return preprocess, meta["dataset"] or preprocess, names


class PredictionWriter:
    """Print predictions on stdout as they come (jsonl, tsv, csv) or at the end (json, table); errors on stderr."""

    def __init__(self, output_format: str, top_k: int, model_name: str, min_confidence: float = MIN_CONFIDENCE):
        self.output_format = output_format
        self.top_k = top_k
        self.model_name = model_name  # which model answered: in every machine-readable record
        self.min_confidence = min_confidence
        self.records = []  # kept only for the formats printed as a whole
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
                click.echo(_csv_line(["path", "label", "index", "confidence", "top_k", "low_confidence", "error", "model"]), nl=False)
                self.csv_header_written = True
            click.echo(_csv_line([p.path, p.label or "", "" if p.index is None else p.index,
                                  "" if p.confidence is None else f"{p.confidence:.6f}", _top_k_text(p.top_k),
                                  "" if p.low_confidence is None else str(p.low_confidence).lower(), p.error or "",
                                  self.model_name]), nl=False)
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
                confidence = f"[yellow]? {p.confidence:.1%}" if p.low_confidence else f"{p.confidence:.1%}"
                table.add_row(escape(p.path), escape(_label_text(p.label, p.index)), confidence,
                              escape(", ".join(f"{t['label']} {t['confidence']:.1%}" for t in p.top_k)))
            if self.unsure:
                table.caption = f"? = below {self.min_confidence * 100:g}% confidence: the network is unsure"
            stdout_console().print(table)


def run_predict(inputs, model, runs_dir, recursive, files_from, preprocess, invert, top_k, output_format, save_preprocessed, batch_size,
                min_confidence: float = MIN_CONFIDENCE) -> int:
    """Predict every input and print the results; return the exit code (1 when any input failed)."""
    from lenet_cli.store import runs
    from lenet_cli.cli.console import plural, stderr_console
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.data.picture_inputs import DECODE_CHUNK, ChunkDecoder, gather_inputs, predict_items
    from lenet_cli.data.preprocess import PreprocessOptions

    items = gather_inputs(inputs, recursive, files_from)
    ref = runs.resolve_model(model, runs_dir)
    preprocess, class_dataset, class_names = _preprocessing_and_classes(ref, preprocess)
    from lenet_cli.cli.main import check_top_k

    check_top_k(top_k, len(class_names))
    if save_preprocessed is not None:
        save_preprocessed.mkdir(parents=True, exist_ok=True)
    # decoding starts in worker processes first, so it overlaps the model's (TensorFlow's) start-up
    decoder = ChunkDecoder(items, PreprocessOptions(mode=preprocess, invert=invert), chunk_size=min(batch_size, DECODE_CHUNK))
    try:
        loaded = open_model(ref)
    except BaseException:
        decoder.close()
        raise
    people = stderr_console()
    if people.is_terminal:
        people.print(f"model: {ref.model_path} ({class_dataset})", highlight=False, markup=False)
    writer = PredictionWriter(output_format, top_k, str(ref.model_path), min_confidence)
    for prediction in predict_items(items, loaded.predict, class_names, preprocess, invert, top_k, batch_size, save_preprocessed, decoder,
                                    min_confidence):
        writer.write(prediction)
    writer.close()
    if writer.unsure:
        click.echo(f"{writer.unsure} of {plural(writer.answered, 'answer')} below {min_confidence * 100:g}% confidence (flagged "
                   "low_confidence): the network is unsure, check them", err=True)
    if writer.failures:
        click.echo(f"{writer.failures} of {plural(len(items), 'input')} failed", err=True)
        return 1
    return 0
