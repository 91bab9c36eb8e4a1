"""Your own data in the MNIST layout: a folder of the four IDX files, with an optional ``classes.txt``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lenet_cli.core.errors import DataError
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.data.idx import (
    FILE_NAMES,
    SPLIT_FILES,
    TEST_IMAGES,
    TEST_LABELS,
    TRAIN_IMAGES,
    TRAIN_LABELS,
    load_idx_images,
    load_idx_labels,
)
from lenet_cli.data.sources.common import (
    CLASSES_FILE,
    Found,
    assemble,
    check_labels,
    fingerprint_files,
    numbered_classes,
    read_class_names,
)


def is_idx_folder(folder: Path) -> bool:
    """Whether ``folder`` holds MNIST-layout IDX files (at least the training pair)."""
    return (folder / TRAIN_IMAGES).is_file() and (folder / TRAIN_LABELS).is_file()


def load_pair(folder: Path, images_name: str, labels_name: str) -> Split:
    """One images/labels pair, any label value; the counts must agree.

    Raises:
        DataError: a bad file (not IDX, not 28x28, truncated) or mismatched counts.
    """
    images = load_idx_images(folder / images_name)
    labels = load_idx_labels(folder / labels_name, max_label=None)
    if len(images) != len(labels):
        raise DataError(
            f"{str(folder / images_name)!r} holds {len(images)} images but {str(folder / labels_name)!r} holds "
            f"{len(labels)} labels; the two files must come from the same split"
        )
    return Split(images, labels)


def load_idx_folder(
    folder: Path,
    validation_size: int | None,
    train_limit: int | None,
    splits: Sequence[str],
    preprocess: str | None = None,
) -> Dataset:
    """Load the folder's IDX files; the classes come from ``classes.txt``, else are numbered 0..max label.

    Raises:
        DataError: a missing file, a bad file, mismatched counts, or a label outside the class list.
    """
    needed = {name for split in splits for name in SPLIT_FILES[split]}
    missing = [name for name in FILE_NAMES if name in needed and not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{str(folder)!r} lacks {', '.join(missing)}; an IDX dataset folder holds the four MNIST-layout files "
            f"({', '.join(FILE_NAMES)}) and optionally {CLASSES_FILE}"
        )
    train = load_pair(folder, TRAIN_IMAGES, TRAIN_LABELS) if needed & {TRAIN_IMAGES} else None
    test = load_pair(folder, TEST_IMAGES, TEST_LABELS) if TEST_IMAGES in needed else None
    names = read_class_names(folder / CLASSES_FILE)
    if names is None:
        names = numbered_classes([part.labels for part in (train, test) if part is not None])
    for part, file_name in ((train, TRAIN_LABELS), (test, TEST_LABELS)):
        if part is not None:
            check_labels(part.labels, names, repr(str(folder / file_name)))
    if len(names) < 2:
        raise DataError(f"{str(folder)!r} has only {len(names)} class; a classifier needs at least two")
    files = [folder / name for name in FILE_NAMES if name in needed]
    return assemble(
        Found(
            str(folder),
            folder,
            names,
            train,
            test,
            fingerprint_files(files),
            preprocess=preprocess or "mnist",
        ),
        validation_size,
        train_limit,
        splits,
    )
