"""``lenet predict`` says which model answered, and its table shows each class once and all k of the top k."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from lenet_cli.cli import cli


@pytest.fixture()
def digit(tmp_path):
    image = Image.new("L", (120, 120), 245)
    ImageDraw.Draw(image).line([(30, 30), (90, 30), (55, 100)], fill=20, width=10)
    image.save(tmp_path / "seven.png")
    return tmp_path / "seven.png"


def _predict(*args, env=None):
    return CliRunner().invoke(cli, ["predict", *map(str, args)], env=env)


def test_machine_readable_records_name_the_model(trained_run, digit):
    model = str(trained_run / "model.tflite")  # a run answers with its TensorFlow-free copy
    [record] = json.loads(_predict("--model", trained_run, digit, "--format", "json").stdout)
    assert record["model"] == model
    [record] = json.loads(_predict("--model", trained_run, digit, "--format", "json", "--engine", "keras").stdout)
    assert record["model"] == str(trained_run / "model.keras")
    assert json.loads(_predict("--model", trained_run, digit, "--format", "jsonl").stdout)["model"] == model
    csv_result = _predict("--model", trained_run, digit, "--format", "csv")
    [row] = list(csv.DictReader(io.StringIO(csv_result.stdout)))
    assert (
        csv_result.stdout.splitlines()[0] == "path,label,index,confidence,top_k,low_confidence,error,model"
        and row["model"] == model
    )
    tsv = _predict("--model", trained_run, digit, "--format", "tsv")
    assert len(tsv.stdout.strip().split("\t")) == 3  # path, label, confidence: unchanged for scripts that split it
    assert "model:" not in tsv.stderr  # stderr is not a terminal here


def test_stderr_names_the_model_in_a_terminal(trained_run, digit):
    result = _predict("--model", trained_run, digit, "--format", "jsonl", env={"TTY_COMPATIBLE": "1"})
    assert result.exit_code == 0, result.output
    assert f"model: {trained_run / 'model.tflite'} (mnist)" in result.stderr.splitlines()


def test_table_shows_label_once_and_all_top_k(trained_run, digit):
    result = _predict("--model", trained_run, digit, "--format", "table", "--top-k", "3")
    assert result.exit_code == 0, result.output
    [record] = json.loads(_predict("--model", trained_run, digit, "--format", "json", "--top-k", "3").stdout)
    row = next(line for line in result.stdout.splitlines() if "seven.png" in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells[1] == record["label"]  # a digit: "7", not "7 (7)"
    assert cells[3] == ", ".join(f"{t['label']} {t['confidence']:.1%}" for t in record["top_k"])
    assert len(cells[3].split(", ")) == 3


def test_table_label_and_index_when_they_differ():
    from lenet_cli.core.units import label_text

    assert label_text("7", 7) == "7"
    assert label_text("Sneaker", 7) == "Sneaker (7)"
