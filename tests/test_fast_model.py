"""Every finished run holds a TensorFlow-free ``model.tflite``; predict, evaluate, serve and occlusion answer with it.

The tiny trained run (``trained_run``) is shared and never changed: tests that
damage its copy or its record work on a copy of the run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli

HEAVY = ("tensorflow", "keras", "matplotlib", "onnxruntime", "fastapi", "uvicorn", "h5py", "scipy")
"""Modules ``lenet predict`` against a run must not import."""


def _cli(*args):
    return CliRunner().invoke(cli, [*map(str, args)])


def _test_images(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    from lenet_cli.data.idx import load_idx_images, load_idx_labels

    folder = data_dir / "mnist"
    return load_idx_images(folder / "t10k-images-idx3-ubyte.gz"), load_idx_labels(folder / "t10k-labels-idx1-ubyte.gz")


@pytest.fixture()
def run_copy(trained_run, tmp_path) -> Path:
    """A copy of the tiny run that a test may damage."""
    return Path(
        shutil.copytree(
            trained_run, tmp_path / "runs" / "copy", ignore=shutil.ignore_patterns("logs", "checkpoint.npz")
        )
    )


@pytest.fixture(scope="module")
def digit_png(tmp_path_factory, synthetic_data_dir) -> Path:
    images, _ = _test_images(synthetic_data_dir)
    path = tmp_path_factory.mktemp("digit") / "one.png"
    Image.fromarray(images[0]).save(path)
    return path


def test_a_trained_run_holds_its_fast_model_and_its_check(trained_run):
    assert (trained_run / "model.tflite").is_file()
    record = json.loads((trained_run / "metrics.json").read_text())["fast_model"]
    assert (
        record["ok"] is True
        and record["file"] == "model.tflite"
        and record["format"] == "litert"
        and record["error"] is None
    )
    assert record["compared_on"] == "validation" and record["images"] == 100  # the fixture's --validation-size
    assert 0 <= record["max_abs_diff"] <= 1e-4 and record["argmax_agreement"] == 1.0
    assert set(record["penalty"]) == {"l1", "l2"}
    meta = json.loads((trained_run / "model.tflite.lenet.json").read_text())  # the metadata every export carries
    config = json.loads((trained_run / "config.json").read_text())
    assert (meta["format"], meta["dataset"], meta["preprocessing"]) == ("litert", "mnist", "mnist")
    assert meta["class_names"] == [str(d) for d in range(10)] and meta["run_config"] == config


def test_predict_against_a_run_imports_no_tensorflow(trained_run, digit_png):
    """In a fresh process, as a shell loop calls it: the run by path, then the latest run (no --model)."""
    probe = (
        "import json, sys\n"
        "from lenet_cli.cli.main import cli\n"
        "try:\n"
        "    cli.main(sys.argv[1:], prog_name='lenet')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(json.dumps(heavy))\n"
    )
    env = {**__import__("os").environ, "LENET_RUNS_DIR": str(trained_run.parent)}
    quiet = ["--format", "jsonl", "--min-confidence", "0"]  # no "unsure" line either: stderr stays empty
    for argv in (["predict", "--model", str(trained_run), str(digit_png), *quiet], ["predict", str(digit_png), *quiet]):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120, env=env
        )
        assert proc.returncode == 0, proc.stderr
        record, heavy = proc.stdout.strip().splitlines()
        assert json.loads(heavy) == []
        assert json.loads(record)["model"].endswith("tiny/model.tflite")
        assert proc.stderr == ""  # nothing to say: the copy answered


def test_same_top_class_as_keras_on_every_test_image(trained_run, synthetic_data_dir, tmp_path):
    images, _ = _test_images(synthetic_data_dir)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:03d}.png")
    answers = {}
    for engine in ("auto", "keras"):
        result = _cli(
            "predict", "--model", trained_run, folder, "--engine", engine, "--format", "json", "--min-confidence", "0"
        )
        assert result.exit_code == 0, result.output
        answers[engine] = json.loads(result.stdout)
    assert len(answers["auto"]) == len(images)
    assert {r["model"] for r in answers["auto"]} == {str(trained_run / "model.tflite")}
    assert {r["model"] for r in answers["keras"]} == {str(trained_run / "model.keras")}
    assert [r["index"] for r in answers["auto"]] == [r["index"] for r in answers["keras"]]
    np.testing.assert_allclose(
        [r["confidence"] for r in answers["auto"]], [r["confidence"] for r in answers["keras"]], atol=1e-4
    )


def test_a_corrupt_fast_model_falls_back_to_keras_with_one_warning(run_copy, digit_png):
    (run_copy / "model.tflite").write_bytes(b"not a flatbuffer")
    result = _cli("predict", "--model", run_copy, digit_png, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(run_copy / "model.keras")
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "model.tflite" in warning and "model.keras answers" in warning and "lenet export" in warning


def test_a_missing_fast_model_falls_back_to_keras_with_one_warning(run_copy, digit_png):
    (run_copy / "model.tflite").unlink()
    result = _cli("predict", "--model", run_copy, digit_png, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(run_copy / "model.keras")
    assert [line for line in result.stderr.splitlines() if line.startswith("warning:")] == [
        line
        for line in result.stderr.splitlines()
        if "is missing, so model.keras answers" in line and "lenet export" in line
    ]


def test_an_older_run_answers_with_keras_and_export_gives_it_the_copy(run_copy, digit_png, synthetic_data_dir):
    """A run from before the copy existed: one line suggests `lenet export`; that export makes and records it."""
    for name in ("model.tflite", "model.tflite.lenet.json"):
        (run_copy / name).unlink()
    metrics = json.loads((run_copy / "metrics.json").read_text())
    del metrics["fast_model"]
    (run_copy / "metrics.json").write_text(json.dumps(metrics))

    result = _cli("predict", "--model", run_copy, digit_png, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["model"] == str(run_copy / "model.keras")
    [note] = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    command = f"lenet export {run_copy} --to litert --output {run_copy / 'model.tflite'}"
    assert note.endswith(command)

    exported = _cli(*command.split()[1:], "--data-dir", synthetic_data_dir, "--format", "json")
    assert exported.exit_code == 0, exported.output
    record = json.loads((run_copy / "metrics.json").read_text())["fast_model"]
    assert record["ok"] is True and record["compared_on"] == "test" and record["max_abs_diff"] <= 1e-4
    again = _cli("predict", "--model", run_copy, digit_png, "--format", "jsonl", "--min-confidence", "0")
    assert json.loads(again.stdout)["model"] == str(run_copy / "model.tflite") and again.stderr == ""


def test_a_copy_recorded_as_failed_is_not_used(run_copy, digit_png):
    metrics = json.loads((run_copy / "metrics.json").read_text())
    metrics["fast_model"] = {**metrics["fast_model"], "ok": False, "error": "litert export failed verification"}
    (run_copy / "metrics.json").write_text(json.dumps(metrics))
    result = _cli("predict", "--model", run_copy, digit_png, "--format", "jsonl")
    assert json.loads(result.stdout)["model"] == str(run_copy / "model.keras")
    assert "failed verification" in result.stderr and "lenet export" in result.stderr


def test_engine_keras_on_an_exported_file_is_a_usage_error(trained_run, digit_png):
    result = _cli("predict", "--model", trained_run / "model.tflite", digit_png, "--engine", "keras")
    assert result.exit_code == 2 and "--engine" in result.stderr and "not one" in result.stderr
    named = _cli(
        "predict", "--model", trained_run / "model.tflite", digit_png, "--format", "jsonl"
    )  # a file named directly answers itself
    assert named.exit_code == 0 and json.loads(named.stdout)["model"] == str(trained_run / "model.tflite")


def test_a_failed_check_leaves_no_copy_and_says_why(trained_run, synthetic_data_dir, tmp_path):
    """write_fast_model never raises: a check that fails is recorded, and nothing lands under the copy's name."""
    from lenet_cli.engine.fast_model import write_fast_model
    from lenet_cli.model.network import load_model_file

    model = load_model_file(trained_run / "model.keras")
    images, labels = _test_images(synthetic_data_dir)
    wrong = np.full((len(images), 10), 0.1, np.float32)  # not what the model answers
    record = write_fast_model(model, tmp_path, {"dataset": "mnist"}, images[:50], labels[:50], wrong[:50], "validation")
    assert record["ok"] is False and "failed verification on 50 validation images" in record["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_failed_conversion_still_finishes_the_run(synthetic_data_dir, tmp_path, monkeypatch, digit_png):
    def broken(*_, **__):
        raise RuntimeError("converter crashed\nwith a long native trace")

    monkeypatch.setattr("lenet_cli.runtimes.writers.write_litert", broken)  # the format table finds its writer by name
    out = tmp_path / "runs" / "broken"
    result = _cli(
        "train",
        "--data-dir",
        synthetic_data_dir,
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "--validation-size",
        "50",
        "--batch-size",
        "50",
        "--dense-units",
        "16",
        "--output",
        out,
        "--runs-dir",
        tmp_path / "runs",
        "--quiet",
        "--no-tensorboard",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "no TensorFlow-free model.tflite (RuntimeError: converter crashed)" in warning and "model.keras" in warning
    record = json.loads(result.stdout)["fast_model"]
    assert record["ok"] is False and record["file"] is None and not (out / "model.tflite").exists()
    predicted = _cli("predict", "--model", out, digit_png, "--format", "jsonl")
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["model"] == str(out / "model.keras")
    assert "converter crashed" in predicted.stderr


def test_evaluate_scores_the_copy_like_keras(trained_run, synthetic_data_dir):
    reports = {}
    for engine in ("auto", "keras"):
        result = _cli("evaluate", trained_run, "--engine", engine, "--data-dir", synthetic_data_dir, "--format", "json")
        assert result.exit_code == 0, result.output
        reports[engine] = json.loads(result.stdout)
    fast, keras = reports["auto"], reports["keras"]
    assert (fast["model"], fast["format"]) == (str(trained_run / "model.tflite"), "litert")
    assert (keras["model"], keras["format"]) == (str(trained_run / "model.keras"), "keras")
    assert fast["accuracy"] == keras["accuracy"] and fast["confusion_matrix"] == keras["confusion_matrix"]
    assert fast["cross_entropy"] == pytest.approx(keras["cross_entropy"], rel=1e-5)
    assert (fast["l1"], fast["l2"]) == pytest.approx((keras["l1"], keras["l2"]), rel=1e-6)  # recorded with the copy
    assert fast["objective"] == pytest.approx(keras["objective"], rel=1e-5)


def test_serve_answers_with_the_copy_and_says_so(trained_run, run_copy):
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    from fastapi.testclient import TestClient

    from lenet_cli.core.serve_settings import ServeSettings
    from lenet_cli.serve.app import create_app
    from lenet_cli.serve.runner import startup_line
    from lenet_cli.serve.served_model import ServedModel
    from lenet_cli.store.runs import resolve_model

    predictor = ServedModel(resolve_model(trained_run), engine="auto")
    with TestClient(create_app(predictor, ServeSettings())) as client:
        meta = client.get("/metadata").json()
    assert (meta["model"], meta["format"], meta["run"]) == ("tiny/model.tflite", "litert", "tiny")
    assert startup_line(predictor, "http://x/").startswith(
        "Serving run tiny (model.tflite, litert, mnist) at http://x/"
    )
    assert ServedModel(resolve_model(trained_run), engine="keras").name == "tiny/model.keras"

    (run_copy / "model.tflite").write_bytes(b"corrupt")
    said = []
    fallback = ServedModel(resolve_model(run_copy), engine="auto")
    fallback.load(log=said.append)
    assert (
        (fallback.name, fallback.format) == ("copy/model.keras", "keras")
        and len(said) == 1
        and said[0].startswith("warning:")
    )


@pytest.mark.slow
def test_serve_a_run_imports_no_tensorflow(trained_run):
    """`lenet serve RUN` loads its model as the server would, in its own process: the copy answers, TensorFlow never loads."""
    pytest.importorskip("fastapi", reason="the serve extra is not installed")
    probe = (
        "import sys, threading\n"
        "from lenet_cli.serve import runner\n"
        "from lenet_cli.core.serve_settings import ServeSettings\n"
        "lines = []\n"
        "original = runner.bind\n"
        "def bind(host, port):\n"
        "    sock = original(host, port)\n"
        "    sock.close()\n"  # the server never listens: the probe only needs the model loaded and the startup line
        "    raise SystemExit(0)\n"
        "runner.bind = bind\n"
        "try:\n"
        f"    runner.run_serve(runner.ServePlan(__import__('pathlib').Path({str(trained_run)!r}), None, '127.0.0.1', 0, ServeSettings()), lines.append)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('tensorflow' in sys.modules, lines)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False []"


def test_occlusion_of_a_run_uses_the_copy_and_integrated_gradients_keras(trained_run, digit_png, tmp_path):
    occlusion = _cli(
        "explain", digit_png, "--model", trained_run, "--method", "occlusion", "-o", tmp_path / "o", "--format", "json"
    )
    assert occlusion.exit_code == 0, occlusion.output
    assert json.loads(occlusion.stdout)[0]["method"] == "occlusion"
    from lenet_cli.engine.explain import ExplainRequest, explain

    result = explain(
        ExplainRequest([str(digit_png)], model=trained_run, method="occlusion", output_dir=tmp_path / "o2")
    )
    ig = explain(ExplainRequest([str(digit_png)], model=trained_run, output_dir=tmp_path / "ig", steps=8))
    assert (result.method, ig.method) == ("occlusion", "integrated-gradients")
    assert ig.explanations[0].completeness_gap is not None  # gradients: model.keras answered


def test_explain_occlusion_of_a_run_imports_no_tensorflow(trained_run, digit_png, tmp_path):
    probe = (
        "import sys\n"
        "from lenet_cli.engine.explain import ExplainRequest, explain\n"
        f"explain(ExplainRequest([{str(digit_png)!r}], model={str(trained_run)!r}, method='occlusion', output_dir={str(tmp_path)!r}))\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_runs_show_lists_the_copy_and_the_run_stays_finished(trained_run):
    result = _cli("runs", "show", trained_run, "--format", "json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["status"] == "finished" and {"model.keras", "model.tflite", "model.tflite.lenet.json"} <= {
        f["path"] for f in shown["files"]
    }
    assert shown["metrics"]["fast_model"]["ok"] is True
