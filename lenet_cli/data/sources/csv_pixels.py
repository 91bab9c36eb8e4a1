"""Your own data as a CSV of pixels, the layout of Kaggle's "Digit Recognizer".

A header row ``label,pixel0,...,pixel783``, then one image a row: its class
index, then 784 values 0-255 row by row (0 = background). ``--dataset`` names
the file, or a folder holding ``train.csv`` (and a labelled ``test.csv``, if
any: Kaggle's has no labels, so it is ignored). Without a labelled test file a
fifth of each class is held back for testing, by a hash of the row number.
Class names come from a ``classes.txt`` beside the file, else are numbered.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lenet_cli.core.config import IMAGE_SIZE
from lenet_cli.core.errors import DataError
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.data.sources.common import (
    CLASSES_FILE,
    Found,
    assemble,
    check_labels,
    fingerprint_files,
    holdout_mask,
    numbered_classes,
    read_class_names,
)

PIXELS = IMAGE_SIZE * IMAGE_SIZE
COLUMNS = ("label", *(f"pixel{i}" for i in range(PIXELS)))


def _header(path: Path, first_line: str) -> tuple[str, ...]:
    return tuple(name.strip().strip('"') for name in first_line.strip().split(","))


def read_pixels_csv(path: Path, need_labels: bool = True) -> Split | None:
    """Read one CSV into uint8 images ``(n, 28, 28)`` and labels; None for an unlabelled file when labels are optional.

    Raises:
        DataError: missing, extra or misnamed columns, a non-numeric or out-of-range value, or no rows.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {str(path)!r} ({type(exc).__name__}); it must be a UTF-8 CSV file") from None
    first, _, body = text.partition("\n")
    columns = _header(path, first)
    if columns and columns[0] != "label" and not need_labels and columns[:1] == ("pixel0",):
        return None  # Kaggle's test.csv: pixels only
    if columns != COLUMNS:
        missing = [name for name in COLUMNS if name not in columns]
        extra = [name for name in columns if name not in COLUMNS]
        what = (
            (f"lacks column {missing[0]!r}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
            if missing
            else (f"has an unexpected column {extra[0]!r}" if extra else "has its columns in another order")
        )
        raise DataError(
            f"{str(path)!r} {what}; a pixel CSV has the header label,pixel0,...,pixel{PIXELS - 1} "
            f"(Kaggle's Digit Recognizer layout), then one 28x28 image a row"
        )
    if not body.strip():
        raise DataError(f"{str(path)!r} has a header but no rows")
    try:
        values = np.loadtxt(io.StringIO(body), delimiter=",", dtype=np.float64, ndmin=2)
    except ValueError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else "a value that is not a number"
        raise DataError(
            f"{str(path)!r} holds a row that is not {len(COLUMNS)} numbers ({detail}); every value must be a number"
        ) from None
    if values.shape[1] != len(COLUMNS):
        raise DataError(
            f"{str(path)!r} rows hold {values.shape[1]} values, expected {len(COLUMNS)} (label and {PIXELS} pixels)"
        )
    if not np.isfinite(values).all() or (values != np.round(values)).any():
        raise DataError(f"{str(path)!r} holds a value that is not a whole number; labels and pixels are integers")
    labels, pixels = values[:, 0], values[:, 1:]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(
            f"{str(path)!r} holds pixel value {pixels.min() if pixels.min() < 0 else pixels.max():g}; pixels must be 0-255"
        )
    if labels.min() < 0 or labels.max() > 255:
        raise DataError(
            f"{str(path)!r} holds label {labels.min() if labels.min() < 0 else labels.max():g}; labels must be 0-255"
        )
    return Split(pixels.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.uint8))


def csv_files(path: Path) -> tuple[Path, Path | None]:
    """The training CSV and a test CSV (None) for a file or a folder holding ``train.csv``."""
    if path.is_dir():
        test = path / "test.csv"
        return path / "train.csv", test if test.is_file() else None
    return path, None


def load_pixels_csv(
    path: Path,
    validation_size: int | None,
    train_limit: int | None,
    splits: Sequence[str],
    preprocess: str | None = None,
) -> Dataset:
    """Load a pixel CSV (or a folder with ``train.csv``) and split it.

    Raises:
        DataError: a malformed file, or labels outside ``classes.txt``.
    """
    train_path, test_path = csv_files(path)
    whole = read_pixels_csv(train_path)
    if whole is None:  # labels were required: read_pixels_csv raised instead
        raise AssertionError("read_pixels_csv returned no labelled split")
    test = read_pixels_csv(test_path, need_labels=False) if test_path is not None else None
    used = [train_path] + ([test_path] if test is not None and test_path is not None else [])
    if test is None:
        keys = [str(i) for i in range(len(whole))]
        held = holdout_mask(keys, whole.labels)
        train, test = Split(whole.images[~held], whole.labels[~held]), Split(whole.images[held], whole.labels[held])
    else:
        train = whole
    names = read_class_names(train_path.parent / CLASSES_FILE) or numbered_classes([train.labels, test.labels])
    for part, file in ((train, train_path), (test, test_path or train_path)):
        check_labels(part.labels, names, repr(str(file)))
    if len(names) < 2:
        raise DataError(f"{str(train_path)!r} has only {len(names)} class; a classifier needs at least two")
    return assemble(
        Found(
            str(path),
            path if path.is_dir() else path.parent,
            names,
            train,
            test,
            fingerprint_files(used),
            preprocess=preprocess or "mnist",
        ),
        validation_size,
        train_limit,
        splits,
    )
