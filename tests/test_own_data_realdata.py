"""Own data from the real MNIST and Fashion-MNIST files: a picture folder against the same images as IDX, and a 3-class IDX folder.

Skipped (with the reason) when the real data is absent: set LENET_DATA_DIR or
place the files in ../shared/datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli
from lenet_cli.data.idx import load_idx_images, load_idx_labels
from tests.helpers.idx_factory import FILE_NAMES, idx_images_bytes, idx_labels_bytes, write_gz
from tests.helpers.real_data import REAL_DATA, requires_real_data

pytestmark = [requires_real_data, pytest.mark.realdata, pytest.mark.slow]

PICTURES = 3000  # MNIST test images turned into PNGs
HELD_BACK = 600  # of them, the test part
RECIPE = [
    "--epochs",
    "6",
    "--validation-size",
    "240",
    "--batch-size",
    "64",
    "--no-tensorboard",
    "--quiet",
    "--format",
    "json",
]


def render_on_paper(image: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """An MNIST digit as dark ink on white paper, scaled to 28-84 px with a margin: what a user's scan looks like."""
    size = int(rng.integers(28, 85))
    ink = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC)
    margin = int(rng.integers(0, size // 3 + 1))
    paper = Image.new("L", (size + 2 * margin, size + 2 * margin), 255)
    paper.paste(Image.fromarray(255 - np.asarray(ink)), (margin, margin))
    return paper


def train(args, out: Path) -> dict:
    result = CliRunner().invoke(cli, ["train", *args, "--output", str(out), "--runs-dir", str(out.parent / "runs")])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_picture_folder_of_mnist_digits_scores_like_the_same_images_as_idx(tmp_path):
    images = load_idx_images(REAL_DATA / "mnist" / FILE_NAMES[2])[:PICTURES]
    labels = load_idx_labels(REAL_DATA / "mnist" / FILE_NAMES[3])[:PICTURES]
    rng = np.random.default_rng(0)
    pictures = tmp_path / "digits"
    for index, (image, label) in enumerate(zip(images, labels)):
        part = "test" if index >= PICTURES - HELD_BACK else "train"
        folder = pictures / part / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        render_on_paper(image, rng).save(folder / f"{index:05d}.png")
    idx = tmp_path / "digits-idx"
    split = PICTURES - HELD_BACK
    write_gz(idx / FILE_NAMES[0], idx_images_bytes(images[:split]))
    write_gz(idx / FILE_NAMES[1], idx_labels_bytes(labels[:split]))
    write_gz(idx / FILE_NAMES[2], idx_images_bytes(images[split:]))
    write_gz(idx / FILE_NAMES[3], idx_labels_bytes(labels[split:]))

    from_pictures = train(["--dataset", str(pictures), *RECIPE], tmp_path / "pictures-run")
    from_idx = train(["--dataset", str(idx), *RECIPE], tmp_path / "idx-run")
    assert from_pictures["test_count"] == from_idx["test_count"] == HELD_BACK
    print(f"held-back accuracy: pictures {from_pictures['test_accuracy']:.4f}, IDX {from_idx['test_accuracy']:.4f}")
    assert from_idx["test_accuracy"] >= 0.9
    assert abs(from_pictures["test_accuracy"] - from_idx["test_accuracy"]) <= 0.03


def test_three_fashion_classes_as_an_idx_folder_predict_with_their_names(tmp_path):
    chosen = {1: "Trouser", 7: "Sneaker", 8: "Bag"}
    source = REAL_DATA / "fashion"
    folder = tmp_path / "three"
    parts = {}
    for images_name, labels_name, limit in (
        (FILE_NAMES[0], FILE_NAMES[1], 12000),
        (FILE_NAMES[2], FILE_NAMES[3], None),
    ):
        images, labels = load_idx_images(source / images_name)[:limit], load_idx_labels(source / labels_name)[:limit]
        keep = np.isin(labels, list(chosen))
        relabelled = np.searchsorted(sorted(chosen), labels[keep]).astype(np.uint8)
        write_gz(folder / images_name, idx_images_bytes(images[keep]))
        write_gz(folder / labels_name, idx_labels_bytes(relabelled))
        parts[images_name] = (images[keep], relabelled)
    (folder / "classes.txt").write_text("\n".join(chosen[k] for k in sorted(chosen)) + "\n")
    run = tmp_path / "run"
    metrics = train(
        [
            "--dataset",
            str(folder),
            "--preprocess",
            "fashion",
            "--epochs",
            "2",
            "--validation-size",
            "300",
            "--no-tensorboard",
            "--quiet",
            "--format",
            "json",
        ],
        run,
    )
    assert metrics["test_count"] == 3000 and metrics["test_accuracy"] >= 0.97

    test_images, test_labels = parts[FILE_NAMES[2]]
    pngs = []
    for i in range(30):
        pngs.append(tmp_path / f"article{i}.png")
        Image.fromarray(test_images[i]).save(pngs[-1])
    result = CliRunner().invoke(cli, ["predict", "-m", str(run), *map(str, pngs), "--format", "json"])
    assert result.exit_code == 0, result.output
    predicted = [record["label"] for record in json.loads(result.stdout)]
    names = [chosen[k] for k in sorted(chosen)]
    assert set(predicted) <= set(names)
    assert np.mean([p == names[y] for p, y in zip(predicted, test_labels[:30])]) >= 0.9
