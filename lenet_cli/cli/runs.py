"""``lenet runs``' presentation: the runs folder, one run, or two runs compared, as a table, JSON, JSON lines or CSV."""

from __future__ import annotations

import csv
import io
import json

import click

from lenet_cli.cli.options import output_format_option, runs_dir_option
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
        return escape(", ".join(str(v) for v in value)) if all(not isinstance(v, (dict, list)) for v in value) else escape(json.dumps(value))
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


def _epochs(record: dict) -> str:
    return f"{record['epochs_completed']}/{'?' if record['epochs'] is None else record['epochs']}"


def print_run_list(summaries, output_format: str, root) -> None:
    """The runs folder on stdout; an empty folder is an empty list (and a note on stderr for people)."""
    records = [s.to_dict() for s in summaries]
    if output_format == "json":
        click.echo(json.dumps(records, indent=2))
    elif output_format == "jsonl":
        for record in records:
            click.echo(json.dumps(record))
    elif output_format == "csv":
        from lenet_cli.engine.runs import LIST_FIELDS

        click.echo(_csv_text(LIST_FIELDS, [[r[k] for k in LIST_FIELDS] for r in records]), nl=False)
    else:
        if not summaries:
            click.echo(f"no runs under {root}; `lenet train` makes one", err=True)
            return
        from rich.table import Table

        from lenet_cli.cli.console import stdout_console

        table = Table(title=f"runs in {root}", caption="* LATEST: the run evaluate, predict and export use by default")
        for name in ("run", "dataset", "status", "epochs", "val acc", "test acc", "train time", "size", "started"):
            table.add_column(name, justify="right" if name in ("epochs", "val acc", "test acc", "train time", "size") else "left")
        for s in summaries:
            table.add_row(_text(s.name) + (" *" if s.latest else ""), _text(s.dataset or "-"), s.status_text, _epochs(s.to_dict()),
                          _accuracy(s.val_accuracy), _accuracy(s.test_accuracy), human_duration(s.wall_seconds), human_size(s.size_bytes),
                          (s.started or "-").replace("T", " ")[:16])
        stdout_console().print(table)


def print_run_details(details: dict, output_format: str) -> None:
    """``lenet runs show``: the run's summary, config, metrics and files."""
    summary_keys = [k for k in details if k not in ("config", "metrics", "files", "status_text")]
    if output_format == "json":
        click.echo(json.dumps({k: v for k, v in details.items() if k != "status_text"}, indent=2))
    elif output_format == "jsonl":
        click.echo(json.dumps({k: v for k, v in details.items() if k != "status_text"}))
    elif output_format == "csv":
        rows = [["run", k, details[k]] for k in summary_keys]
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
        summary.add_row("train time", human_duration(details["wall_seconds"]))  # the sum of its epochs' times, as lenet tune --show
        summary.add_row("size", human_size(details["size_bytes"]))
        summary.add_row("started", (details["started"] or "-").replace("T", " "))
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
    """``lenet runs compare``: config and metrics rows, the two runs side by side."""
    rows = comparison["rows"]
    if output_format == "json":
        click.echo(json.dumps(comparison, indent=2))
    elif output_format == "jsonl":
        for row in rows:
            click.echo(json.dumps(row))
    elif output_format == "csv":
        click.echo(_csv_text(["section", "key", "a", "b", "same"], [[r["section"], r["key"], r["a"], r["b"], r["same"]] for r in rows]), nl=False)
    else:
        from rich.table import Table

        from lenet_cli.cli.console import stdout_console

        name_a, name_b = comparison["runs"]
        if name_a == name_b:
            name_a, name_b = comparison["paths"]
        table = Table(title=f"{_text(name_a)} vs {_text(name_b)}",
                      caption=None if include_same else "identical config rows are left out (--all shows them)")
        table.add_column("")
        table.add_column(_text(name_a))
        table.add_column(_text(name_b))
        section = None
        for row in rows:
            if row["section"] != section:
                section = row["section"]
                table.add_row(f"[bold]{section}", "", "")
            style = "" if row["same"] else "[bold]"
            left, right = row["a"], row["b"]
            if isinstance(left, dict) or isinstance(right, dict):  # a nested block (calibration): one line per field
                left, right = dict(_flat(left or {})), dict(_flat(right or {}))
                for key in list(left) + [k for k in right if k not in left]:
                    shown = f"{row['key']}.{key}"
                    table.add_row(f"  {_text(shown)}", style + _value(left.get(key), shown), style + _value(right.get(key), shown))
                continue
            table.add_row(f"  {_text(row['key'])}", style + _value(left, row["key"]), style + _value(right, row["key"]))
        stdout_console().print(table)


runs_format_option = output_format_option("table", "json", "jsonl", "csv")


def _runs_parent_option(ctx, name, value):
    """A ``lenet runs`` option given before the subcommand (``lenet runs --runs-dir D show X``) counts too."""
    return value if value is not None or ctx.parent is None else ctx.parent.params.get(name)


@click.group("runs", invoke_without_command=True)
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_group(ctx, runs_dir, output_format):
    """List the runs folder: status, epochs, accuracy, train time, size; show or compare runs.

    Reads only each run's small JSON files (config.json, metrics.json,
    history.json, RUNNING), so hundreds of runs list in well under a second.
    Status is finished, interrupted after k/n epochs (resume it with
    `lenet train --resume RUN`), or running.

    \b
    Examples:
      lenet runs
      lenet runs --format csv > runs.csv
      lenet runs show mnist-20261127-101500
      lenet runs compare runs/mnist-base runs/fashion-20261127-101500
    """
    if ctx.invoked_subcommand is not None:
        return
    from lenet_cli.cli.runs import default_format, print_run_list
    from lenet_cli.engine.runs import list_runs
    from lenet_cli.store import runs as run_files

    print_run_list(list_runs(runs_dir), default_format(output_format), run_files.runs_root(runs_dir))


@runs_group.command("show")
@click.argument("run")
@runs_dir_option
@runs_format_option
@click.pass_context
def runs_show(ctx, run, runs_dir, output_format):
    """One run in detail: status, config, metrics and every file with its size.

    RUN is a run directory, or a run's name under the runs folder.

    \b
    Example:
      lenet runs show mnist-20261127-101500 --format json
    """
    from lenet_cli.cli.runs import default_format, print_run_details
    from lenet_cli.engine.runs import show_run

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    print_run_details(show_run(run, runs_dir), default_format(_runs_parent_option(ctx, "output_format", output_format)))


@runs_group.command("compare")
@click.argument("run_a")
@click.argument("run_b")
@runs_dir_option
@runs_format_option
@click.option("--all", "include_same", is_flag=True, help="Also list config values the two runs share.")
@click.pass_context
def runs_compare(ctx, run_a, run_b, runs_dir, output_format, include_same):
    """Two runs side by side: the config values that differ, and every metric.

    RUN_A and RUN_B are run directories or names under the runs folder.

    \b
    Example:
      lenet runs compare mnist-20261127-101500 mnist-20261128-093000
    """
    from lenet_cli.cli.runs import default_format, print_comparison
    from lenet_cli.engine.runs import compare_runs

    runs_dir = _runs_parent_option(ctx, "runs_dir", runs_dir)
    comparison = compare_runs(run_a, run_b, runs_dir, include_same=include_same)
    print_comparison(comparison, default_format(_runs_parent_option(ctx, "output_format", output_format)), include_same)
