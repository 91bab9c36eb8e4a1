"""``lenet runs``' output: the runs folder, one run, runs compared, runs removed, as a table, JSON, JSON lines or CSV.

Tables for people go to stdout as rich tables, records for programs as JSON or
CSV; a total or a note for people goes to stderr.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import click

from lenet_cli.core.units import human_duration, human_size

FORMATS = ("table", "json", "jsonl", "csv")


def default_format(output_format: str | None) -> str:
    """``--format`` as given, else a table in a terminal and JSON otherwise (as ``lenet evaluate``)."""
    if output_format is not None:
        return output_format
    import sys

    return "table" if sys.stdout.isatty() else "json"


def _csv_text(header, rows) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else json.dumps(v) if isinstance(v, (dict, list, bool)) else v for v in row])
    return out.getvalue()


def _accuracy(value) -> str:
    return "-" if value is None else f"{value:.2%}"


def _value(value, key: str = "") -> str:
    """A config or metrics value as table text for people (markup-escaped): sizes, durations and shares in their units.

    JSON and CSV keep the raw numbers; this is only what a table shows.
    """
    from rich.markup import escape

    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        name = key.rsplit(".", 1)[-1]
        if name.endswith("_bytes"):
            return human_size(value)
        if name.endswith("_seconds") and not name.startswith("epoch"):
            return human_duration(value)
        if "accuracy" in name or "ece" in name or name.endswith("_share") or name == "argmax_agreement":
            return f"{value:.2%}"
        return f"{value:,}" if isinstance(value, int) else f"{value:.6g}"
    if isinstance(value, list):
        return (
            escape(", ".join(str(v) for v in value))
            if all(not isinstance(v, (dict, list)) for v in value)
            else escape(json.dumps(value))
        )
    return escape(str(value))


def _flat(record: dict, prefix: str = "") -> list[tuple[str, object]]:
    """A nested record as ``(dotted key, value)`` rows: ``calibration.temperature``, ``calibration.val_ece_after``, …"""
    rows: list[tuple[str, object]] = []
    for key, value in record.items():
        if isinstance(value, dict) and value:
            rows += _flat(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def _text(value) -> str:
    from rich.markup import escape

    return escape(str(value))


def _tags_text(tags: dict) -> str:
    """``baseline=yes, paper=fig3``: a run's tags on one line (markup-escaped)."""
    return _text(", ".join(f"{k}={v}" for k, v in sorted(tags.items()))) if tags else ""


def _epochs(record: dict) -> str:
    return f"{record['epochs_completed']}/{'?' if record['epochs'] is None else record['epochs']}"


def _print_for_programs(output_format: str, document, records: list, header: Sequence[str], rows: list) -> bool:
    """Print ``document`` as JSON, ``records`` one per line as JSONL, or ``header`` and ``rows`` as CSV; False for a table."""
    if output_format == "json":
        click.echo(json.dumps(document, indent=2))
    elif output_format == "jsonl":
        for record in records:
            click.echo(json.dumps(record))
    elif output_format == "csv":
        click.echo(_csv_text(header, rows), nl=False)
    else:
        return False
    return True


def print_run_list(summaries, output_format: str, root) -> None:
    """The runs folder on stdout; an empty folder is an empty list (and a note on stderr for people)."""
    from lenet_cli.engine.runs import LIST_FIELDS

    records = [s.to_dict() for s in summaries]
    if not _print_for_programs(
        output_format, records, records, LIST_FIELDS, [[r[k] for k in LIST_FIELDS] for r in records]
    ):
        from lenet_cli.cli.console import stdout_console

        if not summaries:
            click.echo(f"no runs under {root}; `lenet train` makes one", err=True)
            print_builtin_models(stdout_console())
            return
        from rich.table import Table

        table = Table(title=f"runs in {root}", caption="* LATEST: the run evaluate, predict and export use by default")
        tagged = any(s.tags for s in summaries)
        for name in (
            "run",
            "dataset",
            "status",
            "epochs",
            "val acc",
            "test acc",
            "train time",
            "size",
            "started",
            *(["tags"] if tagged else []),
        ):
            table.add_column(
                name, justify="right" if name in ("epochs", "val acc", "test acc", "train time", "size") else "left"
            )
        for s in summaries:
            table.add_row(
                _text(s.name) + (" *" if s.latest else ""),
                _text(s.dataset or "-"),
                s.status_text,
                _epochs(s.to_dict()),
                _accuracy(s.val_accuracy),
                _accuracy(s.test_accuracy),
                human_duration(s.wall_seconds),
                human_size(s.size_bytes),
                (s.started or "-").replace("T", " ")[:16],
                *([_tags_text(s.tags)] if tagged else []),
            )
        stdout_console().print(table)
        print_builtin_models(stdout_console())


def print_builtin_models(console) -> None:
    """The models that ship with lenet, in a table of their own under the runs (tables only: JSON and CSV list runs)."""
    from rich.table import Table

    from lenet_cli.engine.runs import list_builtin_models

    models = list_builtin_models()
    if not models:
        return
    table = Table(title="built-in models", caption="lenet predict --model NAME; a run or path of the same name wins")
    for name in ("name", "model", "weights", "test acc", "size"):
        table.add_column(name, justify="right" if name in ("test acc", "size") else "left")
    for m in models:
        table.add_row(
            m["name"],
            _text(m["title"] or "-"),
            _text(m["quantization"] or "-"),
            _accuracy(m["test_accuracy"]),
            human_size(m["size_bytes"]),
        )
    console.print(table)


def print_run_details(details: dict, output_format: str) -> None:
    """``lenet runs show``: the run's summary, config, metrics and files."""
    summary_keys = [k for k in details if k not in ("config", "metrics", "files", "status_text")]
    if output_format == "json":
        click.echo(json.dumps({k: v for k, v in details.items() if k != "status_text"}, indent=2))
    elif output_format == "jsonl":
        click.echo(json.dumps({k: v for k, v in details.items() if k != "status_text"}))
    elif output_format == "csv":
        rows = [["run", k, details[k]] for k in summary_keys if k not in ("tags", "note")]
        rows += [["tags", k, v] for k, v in sorted((details.get("tags") or {}).items())]
        rows += [["note", "note", details["note"]]] if details.get("note") else []
        rows += [["config", k, v] for k, v in details["config"].items()]
        rows += [["metrics", k, v] for k, v in details["metrics"].items()]
        rows += [["files", f["path"], f["size_bytes"]] for f in details["files"]]
        click.echo(_csv_text(["section", "key", "value"], rows), nl=False)
    else:
        from rich.table import Table

        from lenet_cli.cli.console import stdout_console

        console = stdout_console()
        summary = Table(title=f"run {_text(details['name'])}", show_header=False)
        summary.add_column("field")
        summary.add_column("value")
        summary.add_row("path", _text(details["path"]))
        summary.add_row("dataset", _text(details["dataset"] or "-"))
        summary.add_row("status", details["status_text"])
        summary.add_row("validation accuracy", _accuracy(details["val_accuracy"]))
        summary.add_row("test accuracy", _accuracy(details["test_accuracy"]))
        summary.add_row(
            "train time", human_duration(details["wall_seconds"])
        )  # the sum of its epochs' times, as lenet tune --show
        summary.add_row("size", human_size(details["size_bytes"]))
        summary.add_row("started", (details["started"] or "-").replace("T", " "))
        if details.get("tags"):
            summary.add_row("tags", _tags_text(details["tags"]))
        if details.get("note"):
            summary.add_row("note", _text(details["note"]))
        mlflow = details["metrics"].get("mlflow") if isinstance(details["metrics"].get("mlflow"), dict) else None
        if mlflow and mlflow.get("run_id"):
            summary.add_row(
                "MLflow run", _text(f"{mlflow['run_id']} in {mlflow.get('experiment')} at {mlflow.get('tracking_uri')}")
            )
        console.print(summary)
        for section in ("config", "metrics"):
            table = Table(title=section, show_header=False)
            table.add_column("key")
            table.add_column("value")
            for key, value in _flat(details[section]):
                table.add_row(_text(key), _value(value, key))
            if not details[section]:
                table.add_row(f"(no {section}.json)", "")
            console.print(table)
        files = Table(title="files")
        files.add_column("file")
        files.add_column("size", justify="right")
        for f in details["files"]:
            files.add_row(_text(f["path"]), human_size(f["size_bytes"]))
        console.print(files)


def print_comparison(comparison: dict, output_format: str, include_same: bool = False) -> None:
    """``lenet runs compare``: config, metrics and run rows, one column per run."""
    rows = comparison["rows"]
    names = comparison["runs"]
    if not _print_for_programs(
        output_format,
        comparison,
        rows,
        ["section", "key", *names, "same"],
        [[r["section"], r["key"], *r["values"], r["same"]] for r in rows],
    ):
        from rich.table import Table

        from lenet_cli.cli.console import stdout_console

        table = Table(
            title=" vs ".join(_text(n) for n in names),
            caption=None if include_same else "config values every run shares are left out (--all shows them)",
        )
        table.add_column("")
        for name in names:
            table.add_column(_text(name))
        section = None
        for row in rows:
            if row["section"] != section:
                section = row["section"]
                table.add_row(f"[bold]{section}", *[""] * len(names))
            style = "" if row["same"] else "[bold]"
            values = row["values"]
            if any(isinstance(v, dict) for v in values):  # a nested block (calibration): one line per field
                flat = [dict(_flat(v)) if isinstance(v, dict) else {} for v in values]
                keys: list[str] = []
                for f in flat:
                    keys += [k for k in f if k not in keys]
                for key in keys:
                    shown = f"{row['key']}.{key}"
                    table.add_row(f"  {_text(shown)}", *[style + _value(f.get(key), shown) for f in flat])
                continue
            table.add_row(f"  {_text(row['key'])}", *[style + _value(v, row["key"]) for v in values])
        stdout_console().print(table)
        if comparison.get("plot"):
            click.echo(f"validation curves written to {comparison['plot']}", err=True)


def print_removals(removals: list[dict], output_format: str, dry_run: bool, extra: str = "") -> None:
    """``lenet runs rm`` and ``prune``: the runs removed (or that would be) on stdout, the total on stderr."""
    freed = sum(r["size_bytes"] for r in removals)
    verb = "would remove" if dry_run else "removed"
    fields = (
        list(removals[0])
        if removals
        else ["name", "path", "dataset", "status", "val_accuracy", "size_bytes", "started", "removed", "latest"]
    )
    printed = _print_for_programs(output_format, removals, removals, fields, [[r[k] for k in fields] for r in removals])
    if not printed and removals:
        from rich.table import Table

        from lenet_cli.cli.console import stdout_console

        table = Table(title=f"runs {verb}")
        for name in ("run", "dataset", "status", "val acc", "size", "started"):
            table.add_column(name, justify="right" if name in ("val acc", "size") else "left")
        for r in removals:
            table.add_row(
                _text(r["name"]) + (" (LATEST)" if r["latest"] else ""),
                _text(r["dataset"] or "-"),
                _text(r["status"]),
                _accuracy(r["val_accuracy"]),
                human_size(r["size_bytes"]),
                (r["started"] or "-").replace("T", " ")[:16],
            )
        stdout_console().print(table)
    runs_word = "run" if len(removals) == 1 else "runs"
    note = " (dry run: nothing was removed)" if dry_run else ""
    click.echo(f"{verb} {len(removals)} {runs_word}, {human_size(freed)}{note}{extra}", err=True)
