"""Tiny synthetic MNIST-format datasets, written as real IDX gzip files for the tests.

Each class draws a bright 6x6 block at its own position plus noise, so a
network learns it within one short epoch.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

FILE_NAMES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


def synthetic_images(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, size=(len(labels), 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 4)
        y, x = 3 + row * 8, 3 + col * 6
        images[i, y : y + 6, x : x + 6] = 200 + rng.integers(0, 55)
    return images


def idx_images_bytes(images: np.ndarray, magic: int = 2051, count: int | None = None) -> bytes:
    n = len(images) if count is None else count
    return struct.pack(">IIII", magic, n, 28, 28) + images.astype(np.uint8).tobytes()


def idx_labels_bytes(labels: np.ndarray, magic: int = 2049, count: int | None = None) -> bytes:
    n = len(labels) if count is None else count
    return struct.pack(">II", magic, n) + labels.astype(np.uint8).tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(payload)
    return path


def write_dataset(folder: Path, n_train: int = 600, n_test: int = 200, seed: int = 0) -> Path:
    """Write the four IDX files of a synthetic dataset into ``folder``."""
    rng = np.random.default_rng(seed)
    train_labels = rng.integers(0, 10, n_train).astype(np.uint8)
    test_labels = rng.integers(0, 10, n_test).astype(np.uint8)
    write_gz(folder / FILE_NAMES[0], idx_images_bytes(synthetic_images(train_labels, seed + 1)))
    write_gz(folder / FILE_NAMES[1], idx_labels_bytes(train_labels))
    write_gz(folder / FILE_NAMES[2], idx_images_bytes(synthetic_images(test_labels, seed + 2)))
    write_gz(folder / FILE_NAMES[3], idx_labels_bytes(test_labels))
    return folder
