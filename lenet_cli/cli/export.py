"""``lenet export``'s presentation: progress on stderr, a table (or JSON rows) of verified exports on stdout."""

from __future__ import annotations

import json

import click


def human_size(size: int) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" or size >= 100 else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def print_export_table(results) -> None:
    """One row per export: where it is, how big, how close to Keras, how fast it loads."""
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    folder = results[0].path.parent if len(results) > 1 else None
    checked = [r for r in results if r.verified_on]
    caption = (f"checked against the Keras model on {checked[0].verified_on:,} test images (Keras accuracy {checked[0].keras_accuracy:.4f}); "
               "argmax: same class as Keras; load: open + first inference"
               if checked else "not verified (--no-verify)")
    table = Table(title=f"exports in {folder}" if folder else "export", caption=caption)
    table.add_column("format")
    table.add_column("file" if folder else "path", overflow="fold", min_width=12)
    for column in ("size", "max |Δ|", "argmax", "accuracy", "load"):
        table.add_column(column, justify="right")
    for r in results:
        verified = r.verified_on > 0
        table.add_row(
            r.format if r.quantize == "none" else f"{r.format} {r.quantize}",
            r.path.name if folder else str(r.path),
            human_size(r.size_bytes),
            f"{r.max_abs_diff:.1e}" if verified else "-",
            f"{r.argmax_agreement:.1%}" if verified else "-",
            f"{r.accuracy:.4f}" if verified else "-",
            f"{r.load_seconds * 1000:.0f} ms" if verified else "-",
        )
    stdout_console().print(table)


def run_export(model, export_format, output, quantize, dataset, runs_dir, data_dir, verify, output_format: str) -> None:
    from lenet_cli.cli.console import stderr_console
    from lenet_cli.engine.export import export_model

    console = stderr_console()

    def log(message: str) -> None:  # each step stays on stderr as a line: converting takes seconds
        console.print(message, highlight=False, markup=False)
        status.update(message)

    with console.status("exporting") as status:
        results = export_model(model, export_format, output, quantize=quantize, dataset=dataset, runs_dir=runs_dir,
                               data_dir=data_dir, verify=verify, log=log)
    if output_format == "json":
        click.echo(json.dumps([r.to_json_dict() for r in results], indent=2))
    else:
        print_export_table(results)
