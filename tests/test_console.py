"""Logs never wrap: written to a file or a pipe, every line lenet prints for people stays one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest


def test_stderr_console_keeps_long_lines_whole_off_a_terminal(capsys):
    from lenet_cli.cli.console import stderr_console

    console = stderr_console()
    assert not console.is_terminal and console.soft_wrap
    url = "https://storage.googleapis.com/cvdf-datasets/mnist/" + "x" * 150 + "/train-images-idx3-ubyte.gz"
    console.print(f"downloading {url}", highlight=False)
    assert capsys.readouterr().err == f"downloading {url}\n"


def test_stderr_console_quiet(capsys):
    from lenet_cli.cli.console import stderr_console

    stderr_console(quiet=True).print("nothing")
    assert capsys.readouterr().err == ""


def test_stdout_console_table_is_not_squeezed(capsys):
    from rich.table import Table

    from lenet_cli.cli.console import stdout_console

    table = Table()
    table.add_column("file")
    table.add_column("label")
    table.add_row("/a/" + "d" * 120 + "/seven.png", "7")
    stdout_console().print(table)
    row = next(line for line in capsys.readouterr().out.splitlines() if "seven.png" in line)
    assert "d" * 120 in row and row.rstrip().endswith("│")


@pytest.mark.slow
def test_epoch_lines_in_a_log_file_are_whole(tmp_path, synthetic_data_dir):
    """`lenet train ... 2> train.log`: each epoch line holds its epoch number and img/s, however long the run path."""
    run_dir = tmp_path / ("a-very-long-folder-name-" * 6) / "mnist-run-with-a-long-name"
    log = tmp_path / "train.log"
    argv = [
        sys.executable,
        "-m",
        "lenet_cli",
        "train",
        "--data-dir",
        str(synthetic_data_dir),
        "--epochs",
        "2",
        "--validation-size",
        "100",
        "--batch-size",
        "100",
        "--dense-units",
        "16",
        "--no-tensorboard",
        "--output",
        str(run_dir),
    ]
    env = {**os.environ, "COLUMNS": "80"}
    with open(log, "w") as stderr:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300, env=env)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    with_rate = [line for line in text.splitlines() if "img/s" in line]
    assert len(with_rate) == 2, text
    for k, line in enumerate(with_rate, start=1):
        assert re.match(rf"epoch {k}/2: objective \S+, cross_entropy \S+, accuracy .* val_accuracy .*img/s\)$", line), (
            line
        )
    assert f"run directory: {run_dir}" in text.splitlines()
