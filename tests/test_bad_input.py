"""Bad input never crashes: one line on stderr, a documented exit code, no traceback, nothing half-written."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from lenet_cli.cli import cli
from tests.helpers.idx_factory import (
    FILE_NAMES,
    idx_images_bytes,
    idx_labels_bytes,
    write_dataset,
    write_gz,
)


def _run(args, env=None, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env, input=input)


def _assert_clean_failure(result, code, fragment):
    assert result.exit_code == code, (result.exit_code, result.output)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if code == 1:
        assert lines and lines[0].startswith("Error: ") and len(lines) == 1, result.stderr
    else:  # usage errors: Click's "Usage:" hint, then one "Error:" line
        assert sum(line.startswith("Error: ") for line in lines) == 1, result.stderr
    assert fragment in result.stderr, result.stderr


def _no_runs_left(tmp_path):
    runs = tmp_path / "runs"
    return not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


# --- data --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case, index, make, fragment",
    [
        ("missing images", 0, lambda: None, "files missing"),
        ("missing labels", 3, lambda: None, "files missing"),
        ("not gzip", 0, lambda: b"<html>404 Not Found</html>", "not a valid gzip file"),
        ("empty file", 1, lambda: b"", "is truncated"),
        (
            "truncated gzip",
            2,
            lambda: gzip.compress(idx_images_bytes(np.zeros((20, 28, 28))))[:30],
            "not a valid gzip file",
        ),
        (
            "wrong image magic",
            0,
            lambda: ("gz", idx_images_bytes(np.zeros((60, 28, 28)), magic=1234)),
            "magic number 1234",
        ),
        ("wrong label magic", 1, lambda: ("gz", idx_labels_bytes(np.zeros(60), magic=2051)), "magic number 2051"),
        (
            "header count too large",
            0,
            lambda: ("gz", idx_images_bytes(np.zeros((60, 28, 28)), count=61)),
            "truncated or padded",
        ),
        ("short header", 1, lambda: ("gz", b"\x00\x00\x08"), "shorter than the 8-byte IDX header"),
        ("label out of range", 3, lambda: ("gz", idx_labels_bytes(np.full(20, 10))), "label 10"),
        ("image/label count mismatch", 3, lambda: ("gz", idx_labels_bytes(np.zeros(19))), "20 images but"),
        (
            "wrong image size",
            2,
            lambda: ("gz", struct.pack(">IIII", 2051, 20, 32, 32) + bytes(20 * 32 * 32)),
            "32x32 images",
        ),
    ],
)
def test_bad_data_files(tmp_path, case, index, make, fragment):
    root = tmp_path / "data"
    write_dataset(root / "mnist", n_train=60, n_test=20)
    payload = make()
    path = root / "mnist" / FILE_NAMES[index]
    if payload is None:
        path.unlink()
    elif isinstance(payload, tuple):
        write_gz(path, payload[1])
    else:
        path.write_bytes(payload)
    result = _run(["train", "--data-dir", root, "--validation-size", "10", "--epochs", "1", "--quiet"])
    _assert_clean_failure(result, 1, fragment)
    if payload is not None:
        assert FILE_NAMES[index] in result.stderr
    assert _no_runs_left(tmp_path)


def test_wrong_checksum(tmp_path, synthetic_data_dir):
    result = _run(["train", "--data-dir", synthetic_data_dir, "--quiet"], env={"LENET_VERIFY_CHECKSUMS": "1"})
    _assert_clean_failure(result, 1, "wrong checksum")
    assert _no_runs_left(tmp_path)


def test_data_dir_missing(tmp_path):
    _assert_clean_failure(_run(["train", "--data-dir", tmp_path / "nowhere", "--quiet"]), 1, "does not exist")


def test_data_dir_is_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    _assert_clean_failure(_run(["train", "--data-dir", tmp_path / "f"]), 2, "is a file")


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    result = _run(["train", "--dataset", "fashion", "--quiet"])
    _assert_clean_failure(result, 1, "could not download fashion/")
    assert "offline machine" in result.stderr
    cache = tmp_path / "cache" / "lenet" / "fashion"
    assert not cache.exists() or list(cache.iterdir()) == []


# --- train options --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--epochs", "0"], "--epochs"),
        (["--batch-size", "-1"], "--batch-size"),
        (["--learning-rate", "0"], "--learning-rate"),
        (["--dropout", "1.0"], "--dropout"),
        (["--dataset", "cifar"], "--dataset"),
        (["--optimizer", "adagrad"], "--optimizer"),
        (["--freeze", "pool_1"], "unknown layer 'pool_1'"),
        (["--init-from", "/nonexistent/run"], "does not exist"),
        (["--resume", "/nonexistent/run"], "does not exist"),
        (["--l1", "-1"], "--l1"),
        (["--validation-size", "-5"], "--validation-size"),
        (["--no-such-option"], "No such option"),
    ],
)
def test_bad_train_options_are_usage_errors(args, fragment):
    _assert_clean_failure(_run(["train", *args]), 2, fragment)


def test_init_from_a_file_that_is_not_a_model(tmp_path, synthetic_data_dir):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip archive")
    result = _run(
        [
            "train",
            "--data-dir",
            synthetic_data_dir,
            "--validation-size",
            "100",
            "--init-from",
            fake,
            "--quiet",
            "--no-tensorboard",
        ]
    )
    _assert_clean_failure(result, 1, "cannot load model")


def test_output_is_an_existing_file(tmp_path, synthetic_data_dir):
    (tmp_path / "out").write_text("mine")
    _assert_clean_failure(
        _run(["train", "--data-dir", synthetic_data_dir, "--output", tmp_path / "out", "--quiet"]), 2, "is a file"
    )
    assert (tmp_path / "out").read_text() == "mine"


def test_non_finite_loss_stops_and_keeps_the_checkpoint(tmp_path, synthetic_data_dir):
    out = tmp_path / "run"
    result = _run(
        [
            "train",
            "--data-dir",
            synthetic_data_dir,
            "--validation-size",
            "100",
            "--epochs",
            "3",
            "--learning-rate",
            "1e12",
            "--schedule",
            "constant",
            "--dense-units",
            "32",
            "--output",
            out,
            "--quiet",
            "--no-tensorboard",
        ]
    )
    _assert_clean_failure(result, 1, "non-finite")
    assert (out / "checkpoint.npz").is_file() and not (out / "model.keras").exists()


# --- models -------------------------------------------------------------------------------------


@pytest.fixture()
def model_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


def test_truncated_model_file(model_copy, synthetic_data_dir):
    path = model_copy / "model.keras"
    path.write_bytes(path.read_bytes()[:5000])
    # --engine keras: the run's model.keras itself (a run with a good model.tflite answers with that instead)
    _assert_clean_failure(
        _run(["evaluate", model_copy, "--data-dir", synthetic_data_dir, "--engine", "keras"]), 1, "cannot load model"
    )


def test_random_bytes_model_file(tmp_path, synthetic_data_dir):
    (tmp_path / "m.keras").write_bytes(os.urandom(2048))
    _assert_clean_failure(
        _run(["evaluate", tmp_path / "m.keras", "--dataset", "mnist", "--data-dir", synthetic_data_dir]),
        1,
        "cannot load model",
    )


def test_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    _assert_clean_failure(_run(["evaluate", tmp_path / "empty"]), 1, "is not a run directory")


def test_unsupported_model_format(tmp_path, synthetic_data_dir):
    (tmp_path / "model.txt").write_text("hello")
    _assert_clean_failure(
        _run(["evaluate", tmp_path / "model.txt", "--dataset", "mnist", "--data-dir", synthetic_data_dir]),
        1,
        "unsupported model format",
    )


def test_corrupt_run_config(model_copy, synthetic_data_dir):
    (model_copy / "config.json").write_text("{not json")
    _assert_clean_failure(_run(["evaluate", model_copy, "--data-dir", synthetic_data_dir]), 1, "not valid JSON")


def test_failed_evaluate_writes_no_image(model_copy, tmp_path):
    (model_copy / "model.keras").write_bytes(b"garbage")
    result = _run(["evaluate", model_copy, "--confusion-png", tmp_path / "cm.png", "--engine", "keras"])
    _assert_clean_failure(result, 1, "cannot load model")
    assert not (tmp_path / "cm.png").exists()


def test_lambda_model_is_refused_and_its_code_never_runs(tmp_path, synthetic_data_dir):
    import keras

    marker = tmp_path / "code-ran"
    inputs = keras.Input((28, 28, 1))
    code = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1] * 1.0")  # no closure: the path is in the code
    outputs = keras.layers.Lambda(code)(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(outputs))
    model = keras.Model(inputs, outputs)
    model.save(tmp_path / "evil.keras")
    marker.unlink(missing_ok=True)
    result = _run(["evaluate", tmp_path / "evil.keras", "--dataset", "mnist", "--data-dir", synthetic_data_dir])
    _assert_clean_failure(result, 1, "carries code")
    assert not marker.exists()
    result = _run(["predict", "--model", tmp_path / "evil.keras", "--preprocess", "mnist", tmp_path / "x.png"])
    assert result.exit_code == 1 and not marker.exists()


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["evaluate", "--split", "bogus"], "--split"),
        (["evaluate", "--top-k", "0"], "--top-k"),
        (["evaluate", "--format", "xml"], "--format"),
        (["evaluate", "--min-accuracy", "2"], "--min-accuracy"),
        (["evaluate", "/no/such/model.keras"], "does not exist"),
        (["predict", "--top-k", "0", "x.png"], "--top-k"),
        (["predict", "--preprocess", "bogus", "x.png"], "--preprocess"),
        (["predict", "--format", "yaml", "x.png"], "--format"),
        (["predict", "--files-from", "/no/such/list.txt"], "does not exist"),
        (["predict", "--model", "/no/such/run", "x.png"], "does not exist"),
    ],
)
def test_bad_evaluate_and_predict_options(args, fragment):
    _assert_clean_failure(_run(args), 2, fragment)


def test_no_trained_model_yet(tmp_path):
    _assert_clean_failure(_run(["evaluate"]), 1, "no trained model found")


# --- predict inputs -------------------------------------------------------------------------------


def _digit_png(path: Path) -> Path:
    image = Image.new("L", (64, 64), 255)
    ImageDraw.Draw(image).line([(15, 15), (48, 15), (30, 52)], fill=0, width=6)
    image.save(path)
    return path


def _bad_image(tmp_path: Path, kind: str) -> Path:
    good = _digit_png(tmp_path / "good.png")
    if kind == "zero-byte":
        (p := tmp_path / "empty.png").write_bytes(b"")
    elif kind == "not an image":
        (p := tmp_path / "text.png").write_text("hello, I am text")
    elif kind == "truncated png":
        (p := tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    elif kind == "truncated jpeg":
        Image.open(good).save(tmp_path / "full.jpg")
        (p := tmp_path / "cut.jpg").write_bytes((tmp_path / "full.jpg").read_bytes()[:200])
    elif kind == "1x1":
        Image.new("L", (1, 1), 0).save(p := tmp_path / "dot.png")
    elif kind == "blank":
        Image.new("RGB", (40, 40), (200, 200, 200)).save(p := tmp_path / "blank.png")
    elif kind == "missing":
        p = tmp_path / "missing.png"
    return p


@pytest.mark.parametrize(
    "kind, fragment",
    [
        ("zero-byte", "empty"),
        ("not an image", "not an image"),
        ("truncated png", "cut.png"),
        ("truncated jpeg", "cut.jpg"),
        ("1x1", "no content found"),
        ("blank", "no content found"),
        ("missing", "no such file"),
    ],
)
def test_bad_images_are_reported_and_the_good_one_predicted(tmp_path, trained_run, kind, fragment):
    bad = _bad_image(tmp_path, kind)
    result = _run(["predict", "--model", trained_run, tmp_path / "good.png", bad, "--format", "jsonl"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    records = [__import__("json").loads(line) for line in result.stdout.splitlines()]
    assert records[0]["error"] is None and records[1]["error"] and fragment in records[1]["error"]
    assert [line for line in result.stderr.splitlines() if line.startswith("Error: ")].__len__() == 1


def test_a_directory_named_like_an_image_is_not_an_input(tmp_path, trained_run):
    folder = tmp_path / "scans"
    folder.mkdir()
    _digit_png(folder / "good.png")
    (folder / "dir.png").mkdir()
    result = _run(["predict", "--model", trained_run, folder, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in __import__("json").loads(result.stdout)] == ["good.png"]


def test_decompression_bomb_guard(tmp_path, trained_run, monkeypatch):
    from lenet_cli.data import images

    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 50 * 50)
    Image.new("L", (100, 100), 255).save(tmp_path / "big.png")
    result = _run(["predict", "--model", trained_run, tmp_path / "big.png", "--format", "jsonl"])
    assert result.exit_code == 1 and "pixels" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["animated gif", "16-bit", "palette", "non-utf8 name"])
def test_awkward_but_valid_images_are_predicted(tmp_path, trained_run, kind):
    base = Image.open(_digit_png(tmp_path / "base.png"))
    if kind == "animated gif":
        frames = [base.convert("P"), Image.new("P", base.size, 0)]
        frames[0].save(p := tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    elif kind == "16-bit":
        Image.fromarray(np.asarray(base, np.uint16) * 257).save(p := tmp_path / "deep.png")
    elif kind == "palette":
        base.convert("P").save(p := tmp_path / "pal.png")
    else:
        p = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.png"))
        shutil.copy(tmp_path / "base.png", p)
    result = _run(["predict", "--model", trained_run, p, "--format", "tsv"])
    assert result.exit_code == 0, result.output
    if kind == "non-utf8 name":
        assert "caf\\xe9.png" in result.stdout


def test_debug_shows_the_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["--debug", "evaluate", "--runs-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and isinstance(result.exception, Exception)
    assert "no trained model found" in str(result.exception)
