"""The Python API is the command line's engine: README's example runs, and its answers equal what the commands print."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli

pytestmark = pytest.mark.slow  # trains a run and exports ONNX


def _digit_png(path: Path, value: int) -> Path:
    """A dark-on-white picture, as a person would hand one to ``lenet predict``."""
    pixels = np.full((56, 56), 255, np.uint8)
    pixels[12:44, 20 + value : 30 + value] = 0
    Image.fromarray(pixels).save(path)
    return path


def test_readme_example_equals_what_the_commands_print(tmp_path, synthetic_data_dir, monkeypatch):
    from lenet_cli import api

    monkeypatch.chdir(tmp_path)
    pictures = [_digit_png(tmp_path / "one.png", 0), _digit_png(tmp_path / "two.png", 6)]

    run = api.train(
        dataset="mnist",
        epochs=1,
        train_limit=300,
        validation_size=100,
        batch_size=50,
        dense_units=32,
        data_dir=synthetic_data_dir,
        output=tmp_path / "runs" / "quick",
        runs_dir=tmp_path / "runs",
        tensorboard=False,
    )
    assert (run.run_dir / "model.keras").is_file()
    assert json.loads((run.run_dir / "metrics.json").read_text())["test_accuracy"] == run.metrics["test_accuracy"]

    report = api.evaluate(model=run.run_dir).report
    answers = api.predict(pictures, model=run.run_dir)
    exports = api.export(model=run.run_dir, output=tmp_path / "model.onnx")

    runner = CliRunner()
    printed = runner.invoke(cli, ["evaluate", str(run.run_dir), "--format", "json"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    cli_report = json.loads(printed.stdout)
    for key in ("accuracy", "count", "cross_entropy", "confusion_matrix", "expected_calibration_error"):
        assert cli_report[key] == report[key]

    printed = runner.invoke(
        cli, ["predict", "--model", str(run.run_dir), *map(str, pictures), "--format", "json"], catch_exceptions=False
    )
    assert printed.exit_code == 0, printed.output
    records = json.loads(printed.stdout)
    assert [{k: v for k, v in r.items() if k != "model"} for r in records] == [a.to_dict() for a in answers]
    assert {r["model"] for r in records} == {
        str(run.run_dir / "model.tflite")
    }  # the command names the model that answered

    assert [e.format for e in exports] == ["onnx"] and exports[0].path == tmp_path / "model.onnx"
    assert exports[0].max_abs_diff <= 1e-4
    printed = runner.invoke(
        cli,
        ["predict", "--model", str(tmp_path / "model.onnx"), *map(str, pictures), "--format", "json"],
        catch_exceptions=False,
    )
    assert [r["index"] for r in json.loads(printed.stdout)] == [a.index for a in answers]


def test_a_runs_model_loads_in_plain_keras_as_readme_says(trained_run, tmp_path):
    """A fresh process with only Keras and the layer's module gives the probabilities lenet gives."""
    from lenet_cli import api

    images = np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
    expected = np.asarray(api.load_model(trained_run)(images, training=False))
    np.save(tmp_path / "images.npy", images)
    script = textwrap.dedent(f"""
        import sys
        import keras
        import numpy as np
        import lenet_cli.model.layers  # registers the LRN layer, as README says

        model = keras.models.load_model({str(trained_run / "model.keras")!r})
        np.save({str(tmp_path / "out.npy")!r}, np.asarray(model(np.load({str(tmp_path / "images.npy")!r}), training=False)))
        lenet = sorted(m for m in sys.modules if m.startswith("lenet_cli"))
        print(",".join(lenet))
    """)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert set(done.stdout.strip().split(",")) <= {
        "lenet_cli",
        "lenet_cli.core",
        "lenet_cli.core.checks",  # the recipe's field checks: the standard library only
        "lenet_cli.core.config",
        "lenet_cli.core.errors",
        "lenet_cli.model",
        "lenet_cli.model.layers",
    }
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)


def test_without_the_layer_plain_keras_fails_and_says_which_class(trained_run):
    """Why README's import is needed: plain Keras cannot place the layer on its own."""
    script = f"import keras\nkeras.models.load_model({str(trained_run / 'model.keras')!r})\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "LocalResponseNormalization" in done.stderr
