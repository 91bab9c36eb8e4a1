"""MNIST and Fashion-MNIST from their original IDX gzip files.

Look-up order for the data folder: ``--data-dir``, then ``$LENET_DATA_DIR``,
then a per-user cache (``$XDG_CACHE_HOME/lenet`` or ``~/.cache/lenet``). A data
folder holds ``mnist/`` and ``fashion/``; a folder that directly holds the four
files is accepted too. Missing files are downloaded from the datasets' official
mirrors into the cache, checksum-verified, and moved into place atomically.

Pure numpy: importing this module never loads TensorFlow.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lenet_cli.core.env import DATA_DIR_ENV, VERIFY_ENV
from lenet_cli.core.errors import BadValue, DataError
from lenet_cli.data.dataset import CLASS_NAMES, DATASET_TITLES, SPLITS, Dataset, Split

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# Official mirrors, tried in order.
MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
    ),
    "fashion": (
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}

# SHA-256 of the canonical files (their MD5s match the published ones).
SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion": {
        TRAIN_IMAGES: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        TRAIN_LABELS: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        TEST_IMAGES: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        TEST_LABELS: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}


def default_cache_dir() -> Path:
    """The per-user cache: ``$XDG_CACHE_HOME/lenet`` or ``~/.cache/lenet``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lenet"


def _dataset_folder(root: Path, dataset: str, files: tuple[str, ...] = FILE_NAMES) -> Path | None:
    """The folder under ``root`` holding ``dataset``'s ``files``, or None when they are not there."""
    for candidate in (root / dataset, root):
        if all((candidate / name).is_file() for name in files):
            return candidate
    return None


def split_files(splits) -> tuple[str, ...]:
    """The IDX files that the given splits are read from, in :data:`FILE_NAMES` order."""
    unknown = [s for s in splits if s not in SPLIT_FILES]
    if unknown:
        raise ValueError(f"unknown split {unknown[0]!r}; choose from {', '.join(SPLITS)}")
    needed = {name for split in splits for name in SPLIT_FILES[split]}
    return tuple(name for name in FILE_NAMES if name in needed)


def locate_dataset(
    dataset: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    log: Callable[[str], None] | None = None,
    files: tuple[str, ...] = FILE_NAMES,
) -> Path:
    """Find (or download) the folder holding ``dataset``'s IDX ``files`` (default: all four).

    Raises:
        BadValue: an unknown dataset name.
        DataError: the given folder lacks the files, or the download failed.
    """
    if dataset not in CLASS_NAMES:
        raise BadValue("dataset", f"unknown dataset {dataset!r}; choose one of: {', '.join(CLASS_NAMES)}")
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    if explicit is not None:
        root = Path(explicit).expanduser()
        origin = "data_dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        if not root.is_dir():
            raise DataError(
                f"data folder {str(root)!r} (from {origin}) does not exist; create it or point {origin} at the folder that holds {dataset}/"
            )
        if not os.access(root, os.R_OK | os.X_OK):
            raise DataError(f"data folder {str(root)!r} (from {origin}) is not readable; fix its permissions")
        folder = _dataset_folder(root, dataset, files)
        if folder is None:
            missing = [n for n in files if not (root / dataset / n).is_file()]
            raise DataError(
                f"{dataset} files missing in {str(root / dataset)!r} (from {origin}): {', '.join(missing)}; "
                f"copy the four original IDX .gz files there"
            )
        return folder
    cache = default_cache_dir()
    folder = _dataset_folder(cache, dataset, files)
    if folder is not None:
        return folder
    if not download:
        raise DataError(
            f"{dataset} not found in {str(cache / dataset)!r}; set data_dir (or ${DATA_DIR_ENV}) to a folder holding {dataset}/"
        )
    target = cache / dataset
    for name in files:
        if not (target / name).is_file():
            download_file(dataset, name, target, log=log)
    return target


def fetch_verified(
    urls,
    final: Path,
    checksum: tuple[str, str] | None = None,
    log: Callable[[str], None] | None = None,
    timeout: float = 30.0,
) -> tuple[Path | None, list[str]]:
    """Try each URL in turn: stream it to a temporary file while hashing it, check ``(algorithm, hexdigest)``, rename into place.

    A failed or corrupt download leaves no file behind under either name.

    Returns:
        ``(final, [])`` once a URL succeeded, else ``(None, one reason per URL)``.
    """
    import hashlib
    import urllib.error  # here, not at the top: urllib.request costs ~30 ms of every cold start
    import urllib.request

    final.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in urls:
        tmp = final.parent / f".{final.name}.{os.getpid()}.part"
        try:
            if log:
                log(f"downloading {url}")
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                digest = hashlib.new(checksum[0] if checksum else "sha256")
                while chunk := response.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            if checksum and digest.hexdigest() != checksum[1]:
                raise ValueError(
                    f"checksum mismatch ({checksum[0]} {digest.hexdigest()[:12]}..., expected {checksum[1][:12]}...)"
                )
            os.replace(tmp, final)
            return final, []
        except (OSError, urllib.error.URLError, ValueError) as exc:
            errors.append(f"{url}: {getattr(exc, 'reason', None) or exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    return None, errors


def download_file(
    dataset: str,
    name: str,
    target_dir: Path,
    mirrors: tuple[str, ...] | None = None,
    log: Callable[[str], None] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download one IDX file from the dataset's mirrors, verify its SHA-256, then move it into place atomically.

    Raises:
        DataError: every mirror failed; the message says where to put the file by hand.
    """
    expected = SHA256.get(dataset, {}).get(name)
    urls = [mirror + name for mirror in (mirrors if mirrors is not None else MIRRORS[dataset])]
    final, errors = fetch_verified(urls, target_dir / name, ("sha256", expected) if expected else None, log, timeout)
    if final is not None:
        return final
    raise DataError(
        f"could not download {dataset}/{name} ({'; '.join(errors)}); on an offline machine copy the four "
        f"original IDX .gz files into {str(target_dir)!r}, or set data_dir (or ${DATA_DIR_ENV}) to a folder holding {dataset}/"
    )


SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": (TRAIN_IMAGES, TRAIN_LABELS),
    "validation": (TRAIN_IMAGES, TRAIN_LABELS),  # held out from the training files
    "test": (TEST_IMAGES, TEST_LABELS),
}


def identify_file(digest: str) -> tuple[str, str] | None:
    """Which known canonical file has this SHA-256, as (dataset, file name), or None."""
    for dataset, files in SHA256.items():
        for name, known in files.items():
            if known == digest:
                return dataset, name
    return None


def _verify_checksum(path: Path, dataset: str | None) -> None:
    expected = SHA256.get(dataset, {}).get(path.name) if dataset is not None else None
    if dataset is None or expected is None or os.environ.get(VERIFY_ENV, "1") == "0":
        return
    import hashlib  # here: only loading a dataset needs it, not a cold `lenet predict`

    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except PermissionError:
        raise DataError(f"cannot read {str(path)!r}: permission denied; fix its permissions") from None
    if digest == expected:
        return
    known = identify_file(digest)
    if known is not None:
        other, name = known
        wanted, found = DATASET_TITLES[dataset], DATASET_TITLES[other]
        if other != dataset:
            raise DataError(
                f"these are {found} files, not {wanted}: {str(path)!r} is {found}'s genuine {name}; "
                f"point data_dir (or ${DATA_DIR_ENV}) at a folder whose {dataset}/ holds {wanted}'s files, or use dataset {other!r}"
            )
        raise DataError(
            f"{str(path)!r} is {wanted}'s genuine {name}, saved under the wrong name; rename the files so that each has its original name"
        )
    raise DataError(
        f"{str(path)!r} has the wrong checksum (sha256 {digest[:12]}..., expected {expected[:12]}...); "
        f"it is corrupt or not the original file: delete it and fetch it again (or set {VERIFY_ENV}=0 for a deliberately modified dataset)"
    )


MAX_IDX_BYTES = 1 << 30
"""The most pixel or label bytes one IDX file may claim (MNIST's training images are 47 MB).

The header's count is checked against this before anything is allocated, and
the body is read in chunks as the gzip stream yields it, so a header claiming
10^9 images, or a gzip bomb, is refused without gigabytes of memory.
"""


def read_idx_body(path: Path, header_size: int, parse_header) -> tuple[tuple[int, ...], np.ndarray]:
    """Read an IDX file's header, check it with ``parse_header(header) -> (shape, body_bytes)``, then read exactly its body.

    Raises:
        DataError: bad gzip, a short header, a claim over :data:`MAX_IDX_BYTES`, or a body of another size.
    """
    try:
        with gzip.open(path, "rb") as handle:
            header = handle.read(header_size)
            if len(header) < header_size:
                raise DataError(
                    f"{str(path)!r} is truncated: {len(header)} bytes is shorter than the {header_size}-byte IDX header; fetch it again"
                )
            shape, body_size = parse_header(header)
            if body_size > MAX_IDX_BYTES:
                raise DataError(
                    f"{str(path)!r} claims {shape[0]:,} items ({body_size:,} bytes), more than lenet reads "
                    f"({MAX_IDX_BYTES:,} bytes); it is corrupt or not an MNIST-format file"
                )
            body = bytearray()
            while len(body) <= body_size:
                chunk = handle.read(min(1 << 22, body_size + 1 - len(body)))
                if not chunk:
                    break
                body += chunk
    except PermissionError:
        raise DataError(f"cannot read {str(path)!r}: permission denied; fix its permissions") from None
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise DataError(
            f"{str(path)!r} is not a valid gzip file ({exc}); the download is truncated or corrupt: delete it and fetch it again"
        ) from None
    if len(body) != body_size:
        found = f"more than {header_size + body_size:,}" if len(body) > body_size else f"{header_size + len(body):,}"
        raise DataError(
            f"{str(path)!r} is truncated or padded: {found} bytes after gunzip, expected {header_size + body_size:,} "
            f"for {shape[0]:,} items; fetch it again"
        )
    return shape, np.frombuffer(bytes(body), dtype=np.uint8)


def load_idx_images(path: Path, expected_count: int | None = None) -> np.ndarray:
    """Read an IDX3 image file (magic 2051) into a uint8 array ``(n, 28, 28)``.

    Raises:
        DataError: bad gzip, magic number, shape or size.
    """

    def parse(header: bytes):
        magic, count, rows, cols = struct.unpack(">IIII", header)
        if magic != IMAGES_MAGIC:
            raise DataError(
                f"{str(path)!r} is not an IDX image file: magic number {magic}, expected {IMAGES_MAGIC}; check you did not swap images and labels"
            )
        if (rows, cols) != (28, 28):
            raise DataError(f"{str(path)!r} holds {rows}x{cols} images, expected 28x28")
        if expected_count is not None and count != expected_count:
            raise DataError(
                f"{str(path)!r} says it holds {count} images, expected {expected_count}; fetch the original file again"
            )
        return (count, rows, cols), count * rows * cols

    shape, pixels = read_idx_body(path, 16, parse)
    return pixels.reshape(shape)


def load_idx_labels(path: Path, expected_count: int | None = None, max_label: int | None = 9) -> np.ndarray:
    """Read an IDX1 label file (magic 2049) into a uint8 array ``(n,)`` of values 0-``max_label`` (None: any byte).

    Raises:
        DataError: bad gzip, magic number, size or label value.
    """

    def parse(header: bytes):
        magic, count = struct.unpack(">II", header)
        if magic != LABELS_MAGIC:
            raise DataError(
                f"{str(path)!r} is not an IDX label file: magic number {magic}, expected {LABELS_MAGIC}; check you did not swap images and labels"
            )
        if expected_count is not None and count != expected_count:
            raise DataError(
                f"{str(path)!r} says it holds {count} labels, expected {expected_count}; fetch the original file again"
            )
        return (count,), count

    _, labels = read_idx_body(path, 8, parse)
    if max_label is not None and labels.size and labels.max() > max_label:
        raise DataError(f"{str(path)!r} holds label {int(labels.max())}; labels must be 0-{max_label}")
    return labels


def load_idx_pair(folder: Path, images_name: str, labels_name: str, dataset: str | None) -> Split:
    for name in (images_name, labels_name):
        _verify_checksum(folder / name, dataset)
    images = load_idx_images(folder / images_name)
    labels = load_idx_labels(folder / labels_name)
    if len(images) != len(labels):
        raise DataError(
            f"{str(folder / images_name)!r} holds {len(images)} images but {str(folder / labels_name)!r} holds {len(labels)} labels; "
            f"the two files must come from the same split"
        )
    return Split(images, labels)


def load_mnist_family(
    dataset: str,
    data_dir,
    validation_size: int,
    train_limit: int | None,
    verify_checksums: bool,
    log: Callable[[str], None] | None,
    splits: tuple[str, ...],
) -> Dataset:
    """MNIST or Fashion-MNIST from their four IDX files, split as :func:`lenet_cli.data.loader.load_dataset` describes."""
    files = split_files(splits)
    folder = locate_dataset(dataset, data_dir, log=log, files=files)
    checksum_name = dataset if verify_checksums else None
    train = validation = test = None
    if TRAIN_IMAGES in files:
        full_train = load_idx_pair(folder, TRAIN_IMAGES, TRAIN_LABELS, checksum_name)
        n = len(full_train)
        if validation_size < 0 or validation_size >= n:
            raise BadValue(
                "validation_size",
                f"must be between 0 and {n - 1} (the training file holds {n} images), not {validation_size}",
            )
        if "validation" in splits:
            validation = Split(full_train.images[:validation_size], full_train.labels[:validation_size])
        if "train" in splits:
            train = Split(full_train.images[validation_size:], full_train.labels[validation_size:])
            if train_limit is not None:
                train = Split(train.images[:train_limit], train.labels[:train_limit])
    if "test" in splits:
        test = load_idx_pair(folder, TEST_IMAGES, TEST_LABELS, checksum_name)
    from lenet_cli.data.sources.common import fingerprint_files

    return Dataset(
        dataset,
        train,
        validation,
        test,
        folder,
        fingerprint=fingerprint_files([folder / name for name in files]),
        preprocess=dataset,
    )
