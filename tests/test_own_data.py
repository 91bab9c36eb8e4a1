"""Your own data: tiny datasets of each kind (IDX + classes.txt, EMNIST-style, pictures, CSV) through train, predict, evaluate, export.

Each kind trains one epoch of a narrow network; the bad-dataset checks never
reach TensorFlow. The named datasets' download code runs against local
``file://`` copies.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli
from lenet_cli.core.errors import LenetError
from lenet_cli.data import idx as D
from lenet_cli.data import loader as L
from lenet_cli.data.sources import named
from lenet_cli.data.sources.picture_folder import CACHE_DIR
from tests.helpers.idx_factory import (
    FILE_NAMES,
    idx_images_bytes,
    idx_labels_bytes,
    synthetic_images,
    write_gz,
)

FAST = ["--epochs", "1", "--dense-units", "32", "--batch-size", "32", "--no-tensorboard", "--quiet", "--format", "json"]


def write_idx(
    folder: Path, train_labels, test_labels, seed=0, classes=None, transposed=False, label_offset=0, names=FILE_NAMES
):
    train_images, test_images = (
        synthetic_images(np.asarray(train_labels), seed),
        synthetic_images(np.asarray(test_labels), seed + 1),
    )
    if transposed:
        train_images, test_images = train_images.transpose(0, 2, 1), test_images.transpose(0, 2, 1)
    write_gz(folder / names[0], idx_images_bytes(train_images))
    write_gz(folder / names[1], idx_labels_bytes(np.asarray(train_labels) + label_offset))
    write_gz(folder / names[2], idx_images_bytes(test_images))
    write_gz(folder / names[3], idx_labels_bytes(np.asarray(test_labels) + label_offset))
    if classes is not None:
        (folder / "classes.txt").write_text("\n".join(classes) + "\n", encoding="utf-8")
    return folder


def labels(n, k, seed=0):
    return np.random.default_rng(seed).integers(0, k, n).astype(np.uint8)


def write_pictures(folder: Path, per_class=24, classes=("circle", "bar", "cross")):
    """Dark shapes on white at varied sizes, one folder per class; plus one broken and one blank picture."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(classes):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            size = int(rng.integers(30, 60))
            img = np.full((size, size), 255, np.uint8)
            c, r = size // 2, size // 3
            yy, xx = np.mgrid[:size, :size]
            if k == 0:
                img[np.abs(np.hypot(yy - c, xx - c) - r) < max(2, size // 12)] = 0
            elif k == 1:
                img[c - r : c + r, c - size // 12 : c + size // 12 + 1] = 0
            else:
                img[c - r : c + r, c - 2 : c + 3] = 0
                img[c - 2 : c + 3, c - r : c + r] = 0
            Image.fromarray(img).save(folder / name / f"{i:03d}.png")
    (folder / classes[1] / "broken.png").write_bytes(b"not a png")
    Image.fromarray(np.full((30, 30), 255, np.uint8)).save(folder / classes[2] / "blank.png")
    return folder


def write_csv(path: Path, labels_, images, header=None):
    header = header or ["label", *(f"pixel{i}" for i in range(784))]
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [",".join(header)] + [
        ",".join([str(int(y)), *map(str, x.reshape(-1).tolist())]) for y, x in zip(labels_, images)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def train(args, tmp_path, name="run"):
    out = tmp_path / name
    result = CliRunner().invoke(
        cli, ["train", *args, *FAST, "--output", str(out), "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.output
    return out, json.loads(result.stdout)


def predict_labels(run, pictures):
    result = CliRunner().invoke(cli, ["predict", "-m", str(run), *map(str, pictures), "--format", "json"])
    assert result.exit_code == 0, result.output
    return [record["label"] for record in json.loads(result.stdout)]


def evaluate(run, *extra):
    result = CliRunner().invoke(cli, ["evaluate", str(run), "--format", "json", "--top-k", "2", *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def logits_units(run) -> int:
    import keras

    from lenet_cli.model.network import load_model_file

    return int(load_model_file(run / "model.keras").get_layer("logits_layer").units) if keras else 0


# --- one epoch on each kind --------------------------------------------------------------------


@pytest.mark.slow
def test_idx_folder_with_classes_txt_trains_predicts_evaluates_and_exports(tmp_path):
    folder = write_idx(tmp_path / "symbols", labels(150, 3), labels(45, 3, 1), classes=["alpha", "beta", "gamma"])
    run, metrics = train(["--dataset", str(folder)], tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["alpha", "beta", "gamma"] and config["dataset"] == str(folder.resolve())
    assert len(config["data_fingerprint"]) == 64 and config["validation_size"] == 15  # a tenth of 150
    assert metrics["test_count"] == 45 and logits_units(run) == 3
    png = tmp_path / "beta.png"
    Image.fromarray(synthetic_images(np.array([1]), 5)[0]).save(png)
    assert predict_labels(run, [png])[0] in {"alpha", "beta", "gamma"}
    report = evaluate(run, "--confusion-png", str(tmp_path / "cm.png"))
    assert report["class_names"] == ["alpha", "beta", "gamma"] and np.array(report["confusion_matrix"]).shape == (3, 3)
    assert [row["label"] for row in report["per_class"]] == ["alpha", "beta", "gamma"]
    assert (tmp_path / "cm.png").stat().st_size > 0
    result = CliRunner().invoke(
        cli, ["export", str(run), "--to", "keras", "-o", str(tmp_path / "x" / "model.keras"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "x" / "model.keras.lenet.json").read_text())
    assert meta["class_names"] == ["alpha", "beta", "gamma"] and meta["output"].endswith("[N,3]")
    assert predict_labels(tmp_path / "x" / "model.keras", [png])[0] in {"alpha", "beta", "gamma"}


@pytest.mark.slow
def test_picture_folder_trains_with_folder_names_skips_bad_pictures_and_caches(tmp_path):
    folder = write_pictures(tmp_path / "shapes")
    run, metrics = train(["--dataset", str(folder), "--validation-size", "6"], tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["bar", "circle", "cross"] and config["preprocess"] == "mnist"
    skipped = (run / "skipped_pictures.tsv").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in skipped) == ["bar/broken.png", "cross/blank.png"]
    assert metrics["test_count"] == 15  # a fifth of each class of 24 (5) is held back for testing
    assert list((folder / CACHE_DIR).glob("pictures-*.npz"))
    labels_ = predict_labels(run, [folder / "bar" / "000.png", folder / "cross" / "001.png"])
    assert set(labels_) <= {"bar", "circle", "cross"}
    report = evaluate(run)
    assert np.array(report["confusion_matrix"]).shape == (3, 3) and report["count"] == 15


def test_second_load_of_a_picture_folder_comes_from_the_cache(tmp_path, monkeypatch):
    from lenet_cli.data.sources import picture_folder

    folder = write_pictures(tmp_path / "shapes", per_class=6)
    first = L.load_dataset(str(folder), validation_size=2)
    monkeypatch.setattr(
        picture_folder, "decode_pictures", lambda *a, **k: pytest.fail("decoded again despite the cache")
    )
    lines = []
    second = L.load_dataset(str(folder), validation_size=2, log=lines.append)
    assert np.array_equal(first.train.images, second.train.images) and first.fingerprint == second.fingerprint
    assert any("decoded before" in line for line in lines)
    (folder / "bar" / "new.png").write_bytes(
        (folder / "bar" / "000.png").read_bytes()
    )  # a new picture: a new fingerprint
    monkeypatch.undo()
    third = L.load_dataset(str(folder), validation_size=2)
    assert third.fingerprint != first.fingerprint


def test_single_level_split_is_deterministic_and_holds_every_class(tmp_path):
    folder = write_pictures(tmp_path / "shapes", per_class=10)
    a = L.load_dataset(str(folder), validation_size=3)
    b = L.load_dataset(str(folder), validation_size=3)
    assert np.array_equal(a.test.labels, b.test.labels) and np.array_equal(a.train.images, b.train.images)
    assert set(np.unique(a.test.labels)) == {0, 1, 2}


@pytest.mark.slow
def test_csv_of_pixels_trains_with_classes_txt(tmp_path):
    y = labels(160, 4, 3)
    path = write_csv(tmp_path / "digits" / "train.csv", y, synthetic_images(y, 4))
    (path.parent / "classes.txt").write_text("north\neast\nsouth\nwest\n")
    run, metrics = train(["--dataset", str(path)], tmp_path)
    config = json.loads((run / "config.json").read_text())
    assert config["class_names"] == ["north", "east", "south", "west"] and logits_units(run) == 4
    assert metrics["test_count"] == sum(int(round((y == k).sum() * 0.2)) for k in range(4))
    report = evaluate(run)
    assert report["class_names"] == ["north", "east", "south", "west"] and np.array(
        report["confusion_matrix"]
    ).shape == (4, 4)


@pytest.mark.slow
def test_emnist_letters_from_local_files_are_turned_upright_and_shifted_to_zero(tmp_path):
    spec = named.REGISTRY["emnist-letters"]
    names = (*spec.files["train"], *spec.files["test"])
    y_train, y_test = labels(200, 26, 5), labels(52, 26, 6)
    write_idx(
        tmp_path / "data" / "emnist-letters", y_train, y_test, seed=7, transposed=True, label_offset=1, names=names
    )
    data = L.load_dataset("emnist-letters", tmp_path / "data", validation_size=20)
    assert data.class_names[:3] == ("a", "b", "c") and len(data.class_names) == 26
    assert np.array_equal(data.test.images, synthetic_images(y_test, 8)) and np.array_equal(data.test.labels, y_test)
    run, _ = train(
        ["--dataset", "emnist-letters", "--data-dir", str(tmp_path / "data"), "--validation-size", "20"], tmp_path
    )
    assert logits_units(run) == 26
    assert json.loads((run / "config.json").read_text())["class_names"][25] == "z"


# --- bad datasets: one line, nothing written -----------------------------------------------------


def _error(call) -> str:
    with pytest.raises(LenetError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


def test_mismatched_counts(tmp_path):
    folder = write_idx(tmp_path / "d", labels(50, 3), labels(20, 3))
    write_gz(folder / FILE_NAMES[1], idx_labels_bytes(labels(49, 3)))
    assert "50 images but" in _error(lambda: L.load_dataset(str(folder)))


def test_label_outside_classes_txt(tmp_path):
    folder = write_idx(tmp_path / "d", labels(50, 4), labels(20, 4), classes=["a", "b", "c"])
    assert "outside the 3 classes" in _error(lambda: L.load_dataset(str(folder)))


def test_idx_images_that_are_not_28x28(tmp_path):
    folder = write_idx(tmp_path / "d", labels(50, 3), labels(20, 3))
    write_gz(folder / FILE_NAMES[0], struct.pack(">IIII", 2051, 50, 32, 32) + bytes(50 * 32 * 32))
    assert "32x32" in _error(lambda: L.load_dataset(str(folder)))


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "is empty" in _error(lambda: L.load_dataset(str(tmp_path / "empty")))


def test_class_folder_without_pictures(tmp_path):
    folder = write_pictures(tmp_path / "shapes", per_class=4)
    (folder / "ghost").mkdir()
    assert "'ghost' has no pictures" in _error(lambda: L.load_dataset(str(folder)))


def test_class_with_only_unusable_pictures(tmp_path):
    folder = write_pictures(tmp_path / "shapes", per_class=4)
    (folder / "blank").mkdir()
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(folder / "blank" / "grey.png")
    message = _error(lambda: L.load_dataset(str(folder), validation_size=1))
    assert "'blank' has no usable training pictures" in message
    assert not list(folder.glob(f"{CACHE_DIR}/*"))  # nothing cached for a refused dataset


@pytest.mark.parametrize(
    "header, row, fragment",
    [
        (["label", *(f"pixel{i}" for i in range(783))], None, "lacks column 'pixel783'"),
        (None, "3," + ",".join(["x"] * 784), "not 785 numbers"),
        (None, "3," + ",".join(["0"] * 700), "not 785 numbers"),
        (None, "3," + ",".join(["300"] * 784), "pixels must be 0-255"),
    ],
)
def test_bad_csv(tmp_path, header, row, fragment):
    y = labels(10, 2)
    path = write_csv(tmp_path / "d.csv", y, synthetic_images(y), header=header)
    if row is not None:
        path.write_text(path.read_text() + row + "\n")
    assert fragment in _error(lambda: L.load_dataset(str(path)))


def test_a_bad_dataset_is_one_line_on_the_command_line_and_leaves_no_run(tmp_path):
    folder = write_idx(tmp_path / "d", labels(50, 4), labels(20, 4), classes=["a", "b", "c"])
    result = CliRunner().invoke(cli, ["train", "--dataset", str(folder), *FAST, "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and result.output.startswith("Error: ")
    assert not (tmp_path / "runs").exists() or not any(p.is_dir() for p in (tmp_path / "runs").iterdir())
    usage = CliRunner().invoke(cli, ["train", "--dataset", str(tmp_path / "missing")])
    assert usage.exit_code == 2 and "neither a dataset name" in usage.output


# --- the named datasets' download code, against local files ----------------------------------------


def _serve_locally(monkeypatch, key: str, folder: Path, files) -> None:
    monkeypatch.setitem(named.URL_BASES, key, (folder.as_uri() + "/",))
    monkeypatch.setitem(
        named.CHECKSUMS, key, {name: ("md5", hashlib.md5((folder / name).read_bytes()).hexdigest()) for name in files}
    )


def test_kmnist_downloads_checks_and_names_its_classes(tmp_path, monkeypatch):
    source = write_idx(tmp_path / "mirror", labels(60, 10), labels(20, 10, 1))
    _serve_locally(monkeypatch, "kmnist", source, FILE_NAMES)
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "1")
    data = L.load_dataset("kmnist", validation_size=10, log=lambda m: None)
    assert data.class_names[:2] == ("o", "ki") and len(data.train) == 50 and len(data.test) == 20
    assert (D.default_cache_dir() / "kmnist" / FILE_NAMES[0]).is_file()
    (D.default_cache_dir() / "kmnist" / FILE_NAMES[3]).write_bytes(b"changed")  # now the cached copy is corrupt
    assert "wrong checksum" in _error(lambda: L.load_dataset("kmnist", validation_size=10))


def test_corrupt_download_leaves_nothing(tmp_path, monkeypatch):
    source = write_idx(tmp_path / "mirror", labels(60, 10), labels(20, 10, 1))
    _serve_locally(monkeypatch, "kmnist", source, FILE_NAMES)
    monkeypatch.setitem(named.CHECKSUMS, "kmnist", {FILE_NAMES[0]: ("md5", "0" * 32)})
    assert "checksum mismatch" in _error(lambda: L.load_dataset("kmnist"))
    assert not list((D.default_cache_dir() / "kmnist").glob(f"*{FILE_NAMES[0]}*"))


def test_qmnist_reads_its_int32_labels(tmp_path, monkeypatch):
    spec = named.REGISTRY["qmnist"]
    y_train, y_test = labels(40, 10), labels(30, 10, 1)
    source = tmp_path / "mirror"
    for (images_name, labels_name), y, seed in ((spec.files["train"], y_train, 1), (spec.files["test"], y_test, 2)):
        write_gz(source / images_name, idx_images_bytes(synthetic_images(y, seed)))
        extended = np.zeros((len(y), 8), dtype=">i4")
        extended[:, 0] = y
        extended[:, 1] = 7  # the other columns (writer, source...) are ignored
        write_gz(source / labels_name, struct.pack(">III", 0x0C02, len(y), 8) + extended.tobytes())
    _serve_locally(monkeypatch, "qmnist", source, [*spec.files["train"], *spec.files["test"]])
    data = L.load_dataset("qmnist", validation_size=10)
    assert np.array_equal(data.test.labels, y_test) and np.array_equal(data.validation.labels, y_train[:10])


def test_emnist_downloads_the_zip_once_and_extracts_each_split(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    y_train, y_test = labels(40, 10), labels(20, 10, 1)
    staging = tmp_path / "staging"
    with zipfile.ZipFile(mirror / "gzip.zip", "w") as archive:
        for split in ("digits", "mnist"):
            spec = named.REGISTRY[f"emnist-{split}"]
            names = (*spec.files["train"], *spec.files["test"])
            write_idx(staging, y_train, y_test, seed=3, transposed=True, names=names)
            for name in names:
                archive.write(staging / name, f"gzip/{name}")
    _serve_locally(monkeypatch, "emnist", mirror, ["gzip.zip"])
    fetched = []
    real_download = named.download
    monkeypatch.setattr(named, "download", lambda *a, **k: fetched.append(a[1]) or real_download(*a, **k))
    digits = L.load_dataset("emnist-digits", validation_size=5)
    mnist_like = L.load_dataset("emnist-mnist", validation_size=5)
    assert fetched == ["gzip.zip"]  # downloaded once, both splits extracted from it
    assert np.array_equal(digits.test.images, synthetic_images(y_test, 4)) and np.array_equal(
        mnist_like.test.labels, y_test
    )


@pytest.mark.slow
def test_a_two_class_model_works_with_every_commands_defaults(tmp_path):
    """``--top-k`` defaults to 3, or all of a model's classes when it has fewer: no command refuses its own default."""
    folder = write_pictures(tmp_path / "shapes")
    shutil.rmtree(folder / "cross")  # two classes left
    run, _ = train(["--dataset", str(folder)], tmp_path)
    picture = next((folder / "circle").glob("*.png"))
    predicted = CliRunner().invoke(cli, ["predict", "-m", str(run), str(picture), "--format", "json"])
    assert predicted.exit_code == 0, predicted.output
    assert [t["label"] for t in json.loads(predicted.stdout)[0]["top_k"]] in (["circle", "bar"], ["bar", "circle"])
    evaluated = CliRunner().invoke(cli, ["evaluate", str(run), "--format", "json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["top_k"] == 2
    explained = CliRunner().invoke(
        cli,
        [
            "explain",
            "-m",
            str(run),
            str(picture),
            "--method",
            "occlusion",
            "--output-dir",
            str(tmp_path / "sheets"),
            "--format",
            "json",
        ],
    )
    assert explained.exit_code == 0, explained.output
    asked = CliRunner().invoke(
        cli, ["predict", "-m", str(run), str(picture), "--top-k", "3"]
    )  # asked for, not defaulted: refused
    assert asked.exit_code == 2 and "3 is more than the model's 2 classes" in asked.stderr
