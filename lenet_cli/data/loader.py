"""The one entry point for data: a dataset name, or the path of the user's own data, becomes a :class:`Dataset`.

Names of the MNIST family and the three layouts of one's own data (an IDX
folder, a picture folder, a CSV of pixels) are told apart here, and each is
read by its module under :mod:`lenet_cli.data.sources` (MNIST and
Fashion-MNIST by :mod:`lenet_cli.data.idx`). Pure numpy: no TensorFlow.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from lenet_cli.core.config import NAMED_DATASETS, VALIDATION_SIZE
from lenet_cli.core.errors import BadValue, DataError
from lenet_cli.data.dataset import CLASS_NAMES, SPLITS, Dataset, Split


def load_dataset(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    validation_size: int | None = 5000,
    train_limit: int | None = None,
    verify_checksums: bool = True,
    log: Callable[[str], None] | None = None,
    splits: tuple[str, ...] = SPLITS,
    preprocess: str | None = None,
) -> Dataset:
    """Load, validate and split one dataset: the one entry point for every kind of data.

    ``dataset`` is a name (mnist, fashion, kmnist, qmnist, emnist-*) or the
    path of the user's own data: a folder of four IDX files, a folder of
    pictures, or a CSV of pixels (:mod:`lenet_cli.data.sources`). ``preprocess``
    is how pictures become 28x28 inputs (picture folders only). A
    ``validation_size`` of None holds out 5,000 images of a named dataset, a
    tenth of one's own.

    The validation split is the *first* ``validation_size`` training images,
    as TensorFlow's original MNIST feeder held them out; ``train_limit`` then
    trims the rest, so the validation set does not change with the limit.

    Only the files the requested ``splits`` come from are located, downloaded
    and read: ``splits=("test",)`` needs just the two t10k files, and the
    training files may be absent. Splits not requested are None.

    Raises:
        DataError: files missing or invalid, or a split size that does not fit.
    """
    if dataset not in CLASS_NAMES:
        return load_other_dataset(
            dataset,
            data_dir,
            validation_size=validation_size,
            train_limit=train_limit,
            log=log,
            splits=splits,
            preprocess=preprocess,
            verify_checksums=verify_checksums,
        )
    if validation_size is None:
        validation_size = VALIDATION_SIZE
    from lenet_cli.data.idx import load_mnist_family

    return load_mnist_family(dataset, data_dir, validation_size, train_limit, verify_checksums, log, splits)


def load_split(
    dataset: str, split: str, data_dir=None, validation_size: int | None = 5000, log=None, preprocess: str | None = None
) -> tuple[Split, Path]:
    """Load one split only, reading only its files (``test``: the two t10k files)."""
    data = load_dataset(
        dataset, data_dir, validation_size=validation_size, log=log, splits=(split,), preprocess=preprocess
    )
    return data.split(split), data.source


def dataset_kind(dataset: str) -> str:
    """``named``, ``idx``, ``csv`` or ``pictures``: how ``dataset`` (a name or a path) is read.

    Raises:
        BadValue: neither a known name nor an existing file or folder (``field`` is ``dataset``).
        DataError: an empty folder.
    """
    if dataset in NAMED_DATASETS:
        return "named"
    path = Path(dataset).expanduser()
    if not path.exists():
        raise BadValue(
            "dataset",
            f"{dataset!r} is neither a dataset name ({', '.join(NAMED_DATASETS)}) nor an existing file or folder",
        )
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise BadValue(
            "dataset",
            f"{dataset!r} is a file but not a .csv; give a CSV of pixels, or a folder of IDX files or pictures",
        )
    from lenet_cli.data.sources.idx_folder import is_idx_folder
    from lenet_cli.data.sources.picture_folder import is_picture_folder

    if is_idx_folder(path):
        return "idx"
    if (path / "train.csv").is_file():
        return "csv"
    if is_picture_folder(path):
        return "pictures"
    raise DataError(
        f"dataset folder {dataset!r} is empty: it holds no IDX files, no train.csv and no class folders of pictures "
        f"(see README: Your own data)"
    )


def load_other_dataset(
    dataset: str,
    data_dir=None,
    validation_size: int | None = None,
    train_limit: int | None = None,
    log: Callable[[str], None] | None = None,
    splits: Sequence[str] = ("train", "validation", "test"),
    preprocess: str | None = None,
    verify_checksums: bool = True,
) -> Dataset:
    """Load a named dataset of the MNIST family, or the user's own data at the path ``dataset``.

    Raises:
        DataError: an unknown name, a missing path, or a bad dataset (one line saying what to fix).
    """
    kind = dataset_kind(dataset)
    if kind == "named":
        from lenet_cli.data.sources.named import load_named

        return load_named(dataset, data_dir, validation_size, train_limit, log=log, splits=splits)
    path = Path(dataset).expanduser().resolve()
    if kind == "idx":
        from lenet_cli.data.sources.idx_folder import load_idx_folder

        return load_idx_folder(path, validation_size, train_limit, splits, preprocess=preprocess)
    if kind == "csv":
        from lenet_cli.data.sources.csv_pixels import load_pixels_csv

        return load_pixels_csv(path, validation_size, train_limit, splits, preprocess=preprocess)
    from lenet_cli.data.sources.picture_folder import load_picture_folder

    return load_picture_folder(path, validation_size, train_limit, splits, preprocess=preprocess, log=log)


def run_name(dataset: str) -> str:
    """A short name for run folders: the dataset's name, or its folder's (or CSV file's) name."""
    if dataset in NAMED_DATASETS:
        return dataset
    path = Path(dataset)
    stem = path.stem if path.suffix.lower() == ".csv" else path.name
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.") or "data"
    return cleaned[:40]
