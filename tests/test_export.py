"""``lenet export``: every format reloads in its own runtime and matches Keras; metadata travels; failures leave nothing."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core.errors import EXIT_MISSING_EXTRA

FLOAT_MAX_DIFF = 1e-4


def _export(*args, env=None):
    return CliRunner().invoke(cli, ["export", *map(str, args)], env=env)


def _test_images(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8).astype(int)
    return (images[..., None].astype(np.float32) / 255.0), labels


@pytest.fixture(scope="module")
def keras_reference(trained_run, synthetic_data_dir):
    """The Keras model's probabilities on the synthetic test split, from a plain ``model.predict``."""
    from lenet_cli.model.network import load_model_file

    images, labels = _test_images(synthetic_data_dir)
    model = load_model_file(trained_run / "model.keras")
    return images, labels, np.asarray(model.predict(images, verbose=0))


def _env(root: Path) -> dict[str, str]:
    return {"LENET_VERIFY_CHECKSUMS": "0", "XDG_CACHE_HOME": str(root / "cache"), "LENET_RUNS_DIR": str(root / "runs")}


@pytest.fixture(scope="module")
def exported(trained_run, synthetic_data_dir, tmp_path_factory):
    """One ``--to all`` export shared by the module: (folder, JSON rows by format)."""
    root = tmp_path_factory.mktemp("exported")
    out = root / "dist"
    result = _export(
        trained_run,
        "--to",
        "all",
        "--output",
        out,
        "--data-dir",
        synthetic_data_dir,
        "--format",
        "json",
        env=_env(root),
    )
    assert result.exit_code == 0, result.output
    rows = {row["format"]: row for row in json.loads(result.stdout)}
    return out, rows


def _litert_predict(path: Path, images: np.ndarray) -> np.ndarray:
    """Straight through the LiteRT interpreter, independently of lenet's loader."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    index = interpreter.get_input_details()[0]["index"]
    interpreter.resize_tensor_input(index, list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(index, images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _assert_parity(probs, reference):
    assert probs.shape == reference.shape
    assert np.max(np.abs(probs - reference)) <= FLOAT_MAX_DIFF
    assert np.mean(probs.argmax(1) == reference.argmax(1)) >= 0.999


def test_all_writes_every_format_with_its_sidecar(exported):
    out, rows = exported
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "model.keras",
            "saved_model",
            "model.tflite",
            "model.onnx",
            "model.keras.lenet.json",
            "saved_model.lenet.json",
            "model.tflite.lenet.json",
            "model.onnx.lenet.json",
        ]
    )
    assert set(rows) == {"keras", "savedmodel", "litert", "onnx"}
    for fmt, row in rows.items():
        assert row["verified_on"] == 200 and row["quantize"] == "none"
        assert row["max_abs_diff"] <= FLOAT_MAX_DIFF and row["argmax_agreement"] >= 0.999
        assert row["accuracy"] == row["keras_accuracy"] and row["size_bytes"] > 0 and row["load_seconds"] > 0
        assert (
            Path(row["path"])
            == out
            / {"keras": "model.keras", "savedmodel": "saved_model", "litert": "model.tflite", "onnx": "model.onnx"}[fmt]
        )


def test_each_export_reloads_in_its_own_runtime(exported, keras_reference):
    import keras
    import onnxruntime
    import tensorflow as tf

    out, _ = exported
    images, labels, reference = keras_reference

    _assert_parity(
        np.asarray(keras.saving.load_model(out / "model.keras", compile=False).predict(images, verbose=0)), reference
    )

    signature = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["image"]
    assert spec.shape.as_list() == [None, 28, 28, 1] and spec.dtype == tf.float32
    _assert_parity(signature(image=tf.constant(images))["probabilities"].numpy(), reference)

    session = onnxruntime.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    _assert_parity(session.run(None, {session.get_inputs()[0].name: images})[0], reference)

    _assert_parity(_litert_predict(out / "model.tflite", images), reference)


def test_loader_batches_litert_at_any_size(exported, keras_reference):
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    images, _, reference = keras_reference
    loaded = open_model(resolve_model(exported[0] / "model.tflite"), batch_size=64)  # batches of 64, 64, 64, 8
    _assert_parity(loaded.predict(images), reference)
    _assert_parity(loaded.predict((images[:3, ..., 0] * 255).round().astype(np.uint8)), loaded.predict(images[:3]))
    assert loaded.dataset == "mnist" and loaded.metadata["source"] == "sidecar"


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_int8_litert_is_calibrated_and_keeps_accuracy(exported, synthetic_data_dir, tmp_path_factory):
    """A confident model (the shared tiny run is near-uniform, so 1 flipped image of 200 is a full 0.5 points)."""
    root = tmp_path_factory.mktemp("int8")
    train = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--epochs",
            "4",
            "--validation-size",
            "100",
            "--batch-size",
            "50",
            "--learning-rate",
            "0.005",
            "--dense-units",
            "64",
            "--output",
            str(root / "run"),
            "--no-tensorboard",
            "--quiet",
        ],
        env=_env(root),
    )
    assert train.exit_code == 0, train.output
    target = root / "model-int8.tflite"  # the format comes from the suffix
    result = _export(
        root / "run",
        "-o",
        target,
        "--quantize",
        "int8",
        "--data-dir",
        synthetic_data_dir,
        "--format",
        "json",
        env=_env(root),
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["format"], row["quantize"], row["verified_on"]) == ("litert", "int8", 200)
    assert row["keras_accuracy"] - row["accuracy"] <= 0.005
    assert target.stat().st_size < (exported[0] / "model.tflite").stat().st_size / 2  # int8 weights, same architecture
    images, labels = _test_images(synthetic_data_dir)
    assert np.mean(_litert_predict(target, images).argmax(1) == labels) == pytest.approx(row["accuracy"])


def test_metadata_travels_with_every_format(exported, trained_run):
    import onnx

    from lenet_cli import __version__
    from lenet_cli.runtimes.loading import read_metadata
    from lenet_cli.store.runs import resolve_model

    out, _ = exported
    run_config = json.loads((trained_run / "config.json").read_text())
    props = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert props["dataset"] == "mnist" and props["preprocessing"] == "mnist" and props["lenet_version"] == __version__
    assert props["input_scaling"] == "float32 [0,1], white on black, shape [N,28,28,1]"
    assert json.loads(props["class_names"]) == [str(d) for d in range(10)]
    assert json.loads(props["run_config"]) == run_config
    assets = json.loads((out / "saved_model" / "assets" / "lenet.json").read_text())
    assert assets["dataset"] == "mnist" and assets["run_config"] == run_config
    for name, source in (
        ("model.keras", "sidecar"),
        ("saved_model", "embedded"),
        ("model.tflite", "sidecar"),
        ("model.onnx", "embedded"),
    ):
        sidecar = json.loads((out / f"{name}.lenet.json").read_text())
        assert sidecar["class_names"] == [str(d) for d in range(10)] and sidecar["run_config"] == run_config
        meta = read_metadata(resolve_model(out / name))
        assert (meta["dataset"], meta["source"], meta["run_config"]) == ("mnist", source, run_config), name


def test_evaluate_scores_exports_like_the_keras_model(exported, synthetic_data_dir):
    out, rows = exported
    for name, fmt in (("model.onnx", "onnx"), ("model.tflite", "litert"), ("saved_model", "savedmodel")):
        result = CliRunner().invoke(
            cli, ["evaluate", str(out / name), "--data-dir", str(synthetic_data_dir), "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert (report["format"], report["dataset"], report["count"]) == (fmt, "mnist", 200)
        assert report["accuracy"] == pytest.approx(rows[fmt]["accuracy"])


PROBE = """
import sys
import numpy as np
from lenet_cli.runtimes.loading import open_model
from lenet_cli.store.runs import resolve_model
loaded = open_model(resolve_model(sys.argv[1]))
images = np.load(sys.argv[2])
probs = loaded.predict(images)
assert 'tensorflow' not in sys.modules, 'tensorflow was imported'
assert 'keras' not in sys.modules, 'keras was imported'
print(loaded.format, loaded.dataset, ' '.join(str(int(i)) for i in probs.argmax(1)))
"""


@pytest.mark.parametrize("name, fmt", [("model.onnx", "onnx"), ("model.tflite", "litert")])
def test_onnx_and_tflite_predict_without_tensorflow(exported, keras_reference, tmp_path, name, fmt):
    """``lenet predict`` and ``evaluate`` open models through ``model_io.open_model``: no TensorFlow for these two."""
    out, _ = exported
    images = keras_reference[0]
    np.save(
        tmp_path / "images.npy", (images[:50, ..., 0] * 255).round().astype(np.uint8)
    )  # uint8, as predict's loader gives
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out / name), str(tmp_path / "images.npy")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    got_format, dataset, predicted = proc.stdout.split(maxsplit=2)
    assert (got_format, dataset) == (fmt, "mnist")
    # Against the same file run straight through its runtime (parity with Keras is checked elsewhere).
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
        expected = session.run(None, {session.get_inputs()[0].name: images[:50]})[0]
    else:
        expected = _litert_predict(out / name, images[:50])
    assert np.array(predicted.split(), int).tolist() == expected.argmax(1).tolist()
    assert "XNNPACK" not in proc.stderr  # LiteRT's delegate notice stays quiet


def test_model_without_metadata_needs_dataset(exported, synthetic_data_dir, tmp_path):
    import onnx

    proto = onnx.load(str(exported[0] / "model.onnx"))
    del proto.metadata_props[:]
    onnx.save(proto, str(tmp_path / "bare.onnx"))
    result = CliRunner().invoke(
        cli, ["evaluate", str(tmp_path / "bare.onnx"), "--data-dir", str(synthetic_data_dir), "--format", "json"]
    )
    assert result.exit_code == 1 and "pass dataset" in result.output
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(tmp_path / "bare.onnx"),
            "--dataset",
            "mnist",
            "--data-dir",
            str(synthetic_data_dir),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dataset"] == "mnist"


def test_missing_extra_gets_a_one_line_hint(trained_run, exported, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # import tf2onnx -> ImportError
    result = _export(trained_run, "--output", tmp_path / "m.onnx", "--no-verify")
    assert result.exit_code == EXIT_MISSING_EXTRA  # found before anything loads, the same code on every command
    assert result.output.strip() == "Error: --to onnx needs the onnx extra: pip install 'lenet-cli[onnx]'"
    assert not (tmp_path / "m.onnx").exists()

    from lenet_cli.core.errors import LenetError
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    shutil.copy(exported[0] / "model.onnx", tmp_path / "copy.onnx")  # a file no session was cached for
    with pytest.raises(LenetError, match=r"needs the onnx extra: pip install 'lenet-cli\[onnx\]'"):
        open_model(resolve_model(tmp_path / "copy.onnx"))
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(LenetError, match=r"needs the litert extra: pip install 'lenet-cli\[litert\]'"):
        open_model(resolve_model(exported[0] / "model.tflite"))


def test_failed_verification_leaves_nothing(trained_run, synthetic_data_dir, monkeypatch, tmp_path):
    from lenet_cli.engine import export_verify

    monkeypatch.setattr(export_verify, "MAX_ABS_DIFF", -1.0)  # no export can pass
    result = _export(
        trained_run, "--to", "keras", "--output", tmp_path / "model.keras", "--data-dir", synthetic_data_dir
    )
    assert result.exit_code == 1 and "failed verification" in result.output and "nothing was written" in result.output
    assert list(tmp_path.iterdir()) == []
    result = _export(trained_run, "--to", "all", "--output", tmp_path / "dist", "--data-dir", synthetic_data_dir)
    assert result.exit_code == 1 and list(tmp_path.iterdir()) == []


def test_unavailable_data_fails_unless_no_verify(trained_run, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _export(trained_run, "--output", tmp_path / "m.keras", "--data-dir", tmp_path / "empty")
    assert result.exit_code == 1 and "mnist files missing" in result.output
    assert not (tmp_path / "m.keras").exists()
    result = _export(
        trained_run,
        "--output",
        tmp_path / "m.keras",
        "--data-dir",
        tmp_path / "empty",
        "--no-verify",
        "--format",
        "table",
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.keras").is_file() and (tmp_path / "m.keras.lenet.json").is_file()
    assert "not verified" in result.stdout


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--output", "{tmp}/m.bin"], 2, "cannot tell the export format"),
        (["--to", "onnx", "--quantize", "int8", "--output", "{tmp}/m.onnx"], 2, "applies to LiteRT only"),
        (["--format", "onnx", "--output", "{tmp}/m.onnx"], 2, "the model format is --to onnx"),
        (["--to", "all", "--output", "{run}"], 1, "holds other files"),
        (["--to", "onnx", "--output", "{tmp}"], 1, "is a directory"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(trained_run, tmp_path, args, code, message):
    args = [a.format(tmp=tmp_path, run=trained_run) for a in args]
    result = _export(trained_run, *args)
    assert result.exit_code == code and message in result.output
    assert list(tmp_path.iterdir()) == []


def test_exporting_an_export_is_refused(exported, tmp_path):
    result = _export(exported[0] / "model.onnx", "--output", tmp_path / "again.onnx")
    assert result.exit_code == 1 and "is an ONNX model" in result.output


def test_help_and_usage_errors_do_not_import_tensorflow(tmp_path):
    probe = (
        "import sys\n"
        "from lenet_cli.cli import main\n"
        "for argv in (['export', '--help'], ['export', '--to', 'tflite', '-o', 'x'], ['export', '-o', 'x.bin', '--runs-dir', sys.argv[1]]):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        print('exit', exc.code)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert [line for line in proc.stdout.splitlines() if line.startswith("exit ")] == ["exit 0", "exit 2", "exit 2"]


def test_onnx_tensors_are_named_like_the_savedmodels(exported):
    import onnx

    graph = onnx.load(str(exported[0] / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["probabilities"]
    for value in (graph.input[0], graph.output[0]):
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.slow
def test_progress_names_the_final_paths_and_the_notes_sit_under_the_table(trained_run, tmp_path):
    result = _export(trained_run, "--to", "all", "--output", tmp_path / "dist", "--no-verify", "--format", "table")
    assert result.exit_code == 0, result.output
    assert ".tmp" not in result.stderr and f"exporting onnx to {tmp_path / 'dist' / 'model.onnx'}" in result.stderr
    assert result.stdout.rstrip().splitlines()[-1] == "not verified (--no-verify)"


def _pair(path: Path) -> tuple[bytes, str | None]:
    sidecar = Path(str(path) + ".lenet.json")
    return path.read_bytes(), json.loads(sidecar.read_text())["dataset"] if sidecar.exists() else None


def _as_if_fashion(path: Path) -> bytes:
    """Make ``path`` another model with its own sidecar: what an earlier Fashion export at that path looks like."""
    sidecar = Path(str(path) + ".lenet.json")
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "dataset": "fashion"}))
    path.write_bytes(path.read_bytes() + b"another model")
    return path.read_bytes()


def test_overwriting_an_export_says_replaced(trained_run, synthetic_data_dir, tmp_path):
    out = tmp_path / "model.keras"
    first = _export(trained_run, "-o", out, "--data-dir", synthetic_data_dir, "--no-verify", "--format", "json")
    assert first.exit_code == 0 and "replaced" not in first.stderr and json.loads(first.stdout)[0]["replaced"] is False
    _as_if_fashion(out)
    second = _export(trained_run, "-o", out, "--data-dir", synthetic_data_dir, "--no-verify", "--format", "json")
    assert second.exit_code == 0, second.output
    assert f"replaced {out}: it held an earlier keras export of a fashion model" in second.stderr
    assert json.loads(second.stdout)[0]["replaced"] is True
    assert _pair(out)[1] == "mnist"


@pytest.mark.parametrize("crash_at", [1, 2])
def test_a_crash_never_leaves_a_model_beside_another_models_sidecar(
    trained_run, synthetic_data_dir, tmp_path, monkeypatch, crash_at
):
    out = tmp_path / "model.keras"
    assert _export(trained_run, "-o", out, "--data-dir", synthetic_data_dir, "--no-verify").exit_code == 0
    old_model = _as_if_fashion(out)
    real_replace, renamed = os.replace, []

    def killed_between_renames(src, dst):  # the process dies at the pair's first or second rename into place
        if str(dst) in (str(out), str(out) + ".lenet.json"):
            renamed.append(dst)
            if len(renamed) == crash_at:
                raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed_between_renames)
    result = _export(trained_run, "-o", out, "--data-dir", synthetic_data_dir, "--no-verify")
    monkeypatch.undo()
    assert result.exit_code == 130
    model, dataset = _pair(out)
    # the old pair, or a model without a sidecar: never the new model beside the old sidecar, nor the old model beside the new one
    assert (model == old_model and dataset in ("fashion", None)) or (
        model != old_model and dataset in (None, "mnist")
    ), (model == old_model, dataset)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [], "temporary files left"
