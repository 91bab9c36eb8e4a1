"""What every kind of dataset shares: class lists, label checks, fingerprints and deterministic splits.

Pure numpy: nothing here imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core.config import OWN_DATA_VALIDATION_FRACTION, VALIDATION_SIZE
from lenet_cli.core.errors import BadValue, DataError
from lenet_cli.data.dataset import Dataset, Split

CLASSES_FILE = "classes.txt"
TEST_FRACTION = 0.2  # a folder or CSV without its own test part: a fifth of each class is held back for testing
MAX_CLASSES = 256  # labels are stored as uint8


def read_class_names(path: Path) -> tuple[str, ...] | None:
    """The class names in ``classes.txt`` (one per line, in label order), or None when there is no such file.

    Raises:
        DataError: the file is unreadable, empty, names a class twice, or lists more than 256.
    """
    if not path.is_file():
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"cannot read {str(path)!r} ({type(exc).__name__}); it must be UTF-8 text, one class name per line"
        ) from None
    names = tuple(line.strip() for line in lines if line.strip())
    if not names:
        raise DataError(f"{str(path)!r} lists no classes; write one class name per line, in label order (or delete it)")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"{str(path)!r} names class {repeated[0]!r} more than once; each line must name a different class"
        )
    if len(names) > MAX_CLASSES:
        raise DataError(f"{str(path)!r} lists {len(names)} classes; lenet trains on at most {MAX_CLASSES}")
    return names


def numbered_classes(labels: Iterable[np.ndarray]) -> tuple[str, ...]:
    """Class names "0".."K-1" for labels whose largest value is K-1 (a dataset without ``classes.txt``)."""
    top = max((int(part.max()) for part in labels if part.size), default=-1)
    return tuple(str(i) for i in range(top + 1))


def check_labels(labels: np.ndarray, class_names: Sequence[str], where: str) -> None:
    """Raise a one-line error when a label has no class (``where`` names the file)."""
    if labels.size and int(labels.max()) >= len(class_names):
        bad = int(labels.max())
        raise DataError(
            f"{where} holds label {bad}, outside the {len(class_names)} classes"
            f" ({', '.join(class_names[:5])}{', ...' if len(class_names) > 5 else ''}); "
            f"labels must be 0-{len(class_names) - 1}: fix the labels or add the missing names to {CLASSES_FILE}"
        )
    if labels.size and int(labels.min()) < 0:
        raise DataError(f"{where} holds label {int(labels.min())}; labels must not be negative")


def fingerprint_files(paths: Iterable[Path]) -> str:
    """sha256 over each file's name and contents: the run config's record of exactly which data it saw."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode("utf-8", "surrogateescape") + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def stable_rank(keys: Sequence[str]) -> np.ndarray:
    """A fixed pseudo-random order of ``keys`` (by the sha1 of each): the same on every machine and run."""
    hashes = [hashlib.sha1(key.encode("utf-8", "surrogateescape")).hexdigest() for key in keys]
    return np.array(sorted(range(len(keys)), key=lambda i: (hashes[i], keys[i])), dtype=np.int64)


def holdout_mask(keys: Sequence[str], labels: np.ndarray, fraction: float = TEST_FRACTION) -> np.ndarray:
    """Which items go to the test split: ``fraction`` of each class (at least one of a class of two or more), chosen by key hash.

    Keyed by name, so adding pictures moves few others between the splits.
    """
    mask = np.zeros(len(keys), dtype=bool)
    for label in np.unique(labels):
        members = np.nonzero(labels == label)[0]
        count = int(round(len(members) * fraction))
        if len(members) >= 2:
            count = min(max(count, 1), len(members) - 1)
        else:
            count = 0
        order = stable_rank([keys[int(i)] for i in members])
        mask[members[order[:count]]] = True
    return mask


def default_validation_size(train_count: int) -> int:
    """Own data without a validation_size: a tenth of its training images, at most 5,000."""
    return min(VALIDATION_SIZE, int(train_count * OWN_DATA_VALIDATION_FRACTION))


@dataclass(frozen=True)
class Found:
    """What a source read, before it is cut into splits: whole train and test parts, their classes and provenance.

    Attributes:
        name: the dataset's name (a named dataset's, or the path it was read from).
        source: the folder (or the file's folder) it came from, for messages.
        class_names: the label names, by index.
        train: the whole training part (None when the source has none, or it was not read).
        test: the whole test part.
        fingerprint: a digest of the files read (None: not recorded).
        preprocess: the input recipe the data needs (None: the default).
        skipped: ``(file, why)`` for each file the source passed over.
    """

    name: str
    source: Path
    class_names: Sequence[str]
    train: Split | None
    test: Split | None
    fingerprint: str | None
    preprocess: str | None = None
    skipped: Sequence[tuple[str, str]] = ()


def assemble(found: Found, validation_size: int | None, train_limit: int | None, splits: Sequence[str]) -> Dataset:
    """A :class:`Dataset` from whole train and test splits: validation is the first ``validation_size`` training images.

    Raises:
        BadValue: a validation size that leaves no training images.
    """
    train, test, source = found.train, found.test, found.source
    validation = None
    if train is not None and not {"train", "validation"} & set(splits):
        train = None  # only the test split was asked for
    if train is not None:
        n = len(train)
        if validation_size is None:
            validation_size = default_validation_size(n)
        if validation_size < 0 or validation_size >= n:
            raise BadValue(
                "validation_size",
                f"must be between 0 and {n - 1} (the training part of {str(source)!r} "
                f"holds {n} images), not {validation_size}",
            )
        validation = (
            Split(train.images[:validation_size], train.labels[:validation_size]) if "validation" in splits else None
        )
        rest = Split(train.images[validation_size:], train.labels[validation_size:])
        if train_limit is not None:
            rest = Split(rest.images[:train_limit], rest.labels[:train_limit])
        train = rest if "train" in splits else None
    if "test" not in splits:
        test = None
    elif test is not None and len(test) == 0:
        raise DataError(f"{str(source)!r} has no test images; add a test/ part, or more pictures per class")
    return Dataset(
        found.name,
        train,
        validation,
        test,
        source,
        classes=tuple(found.class_names),
        fingerprint=found.fingerprint,
        preprocess=found.preprocess,
        skipped=tuple(found.skipped),
    )


def display(path: os.PathLike | str) -> str:
    """A printable path (bytes that are not UTF-8 as escapes)."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")
