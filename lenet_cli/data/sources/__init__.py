"""Every dataset lenet trains on besides MNIST and Fashion-MNIST, behind :func:`lenet_cli.data.idx.load_dataset`.

* :mod:`~lenet_cli.data.sources.named`: KMNIST, QMNIST and the EMNIST splits, by name.
* :mod:`~lenet_cli.data.sources.idx_folder`: a folder of the four MNIST-layout IDX files (+ ``classes.txt``).
* :mod:`~lenet_cli.data.sources.picture_folder`: a folder of pictures, one sub-folder per class.
* :mod:`~lenet_cli.data.sources.csv_pixels`: a CSV of pixels (Kaggle's Digit Recognizer layout).

Each returns the same :class:`lenet_cli.data.idx.Dataset`, with its class names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from lenet_cli.data.idx import Dataset
from lenet_cli.core.errors import LenetError


def dataset_kind(dataset: str) -> str:
    """``named``, ``idx``, ``csv`` or ``pictures``: how ``dataset`` (a name or a path) is read.

    Raises:
        LenetError: neither a known name nor an existing file or folder, or an empty folder.
    """
    from lenet_cli.core.config import NAMED_DATASETS

    if dataset in NAMED_DATASETS:
        return "named"
    path = Path(dataset).expanduser()
    if not path.exists():
        raise LenetError(f"--dataset {dataset!r} is neither a dataset name ({', '.join(NAMED_DATASETS)}) nor an existing file or folder")
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "csv"
        raise LenetError(f"--dataset {dataset!r} is a file but not a .csv; give a CSV of pixels, or a folder of IDX files or pictures")
    from lenet_cli.data.sources.idx_folder import is_idx_folder
    from lenet_cli.data.sources.picture_folder import is_picture_folder

    if is_idx_folder(path):
        return "idx"
    if (path / "train.csv").is_file():
        return "csv"
    if is_picture_folder(path):
        return "pictures"
    raise LenetError(f"--dataset folder {dataset!r} is empty: it holds no IDX files, no train.csv and no class folders of pictures "
                     f"(see README: Your own data)")


def load_other_dataset(dataset: str, data_dir=None, validation_size: int | None = None, train_limit: int | None = None,
                       log: Callable[[str], None] | None = None, splits: Sequence[str] = ("train", "validation", "test"),
                       preprocess: str | None = None, verify_checksums: bool = True) -> Dataset:
    """Load a named dataset of the MNIST family, or the user's own data at the path ``dataset``.

    Raises:
        LenetError: an unknown name, a missing path, or a bad dataset (one line saying what to fix).
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
    from lenet_cli.core.config import NAMED_DATASETS

    if dataset in NAMED_DATASETS:
        return dataset
    path = Path(dataset)
    stem = path.stem if path.suffix.lower() == ".csv" else path.name
    cleaned = "".join(c if c.isalnum() or c in "-_." else "-" for c in stem).strip("-.") or "data"
    return cleaned[:40]
