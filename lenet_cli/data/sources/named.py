"""The MNIST family by name: KMNIST, QMNIST and the EMNIST splits, from their official sources.

Each keeps MNIST's 28x28 IDX format with its own classes and quirks:

* KMNIST (cursive Japanese, 10 classes): the MNIST layout from CODH.
* QMNIST (MNIST's reconstructed 60,000-image test set): labels are IDX
  ``int32`` rows whose first column is the class.
* EMNIST (letters and digits, 10 to 62 classes): one 562 MB ``gzip.zip`` from
  NIST holds every split; it is downloaded once and each split's four files
  extracted from it. Its images are stored transposed (they are turned
  upright here) and the letters' labels start at 1 (shifted to 0 here).

Files are looked for like MNIST's (``--data-dir`` or ``$LENET_DATA_DIR``, then
the user cache), downloaded into the cache when absent, checked against the
published checksums, and moved into place atomically.
"""

from __future__ import annotations

import hashlib
import os
import string
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core.env import DATA_DIR_ENV, VERIFY_ENV
from lenet_cli.core.errors import DataError
from lenet_cli.data.dataset import Split
from lenet_cli.data.idx import (
    SPLIT_FILES,
    default_cache_dir,
    fetch_verified,
    load_idx_images,
    load_idx_labels,
    read_idx_body,
)
from lenet_cli.data.sources.common import Found, assemble, check_labels, fingerprint_files

QMNIST_LABELS_MAGIC = 0x0C02  # IDX: int32 data, two dimensions
DIGITS = tuple(string.digits)
UPPER = tuple(string.ascii_uppercase)
LOWER = tuple(string.ascii_lowercase)
MERGED_LOWER = tuple(
    "abdefghnqrt"
)  # the lowercase letters EMNIST's balanced and bymerge splits keep apart from their capitals


@dataclass(frozen=True)
class NamedDataset:
    """Where one named dataset comes from and how its files are read."""

    name: str
    title: str
    files: dict[str, tuple[str, str]]  # split (train | test) -> (images file, labels file)
    class_names: tuple[str, ...]
    labels_format: str = "idx1"  # idx1 (uint8) | idx2-int (QMNIST: int32 rows, column 0 is the class)
    transposed: bool = False  # EMNIST stores each image transposed
    label_offset: int = 0  # EMNIST letters: labels 1-26
    archive: str | None = None  # the key in ARCHIVES of a zip that holds the files


def _emnist(split: str, classes: tuple[str, ...], label_offset: int = 0) -> NamedDataset:
    stem = f"emnist-{split}"
    return NamedDataset(
        stem,
        f"EMNIST {split}",
        {
            "train": (f"{stem}-train-images-idx3-ubyte.gz", f"{stem}-train-labels-idx1-ubyte.gz"),
            "test": (f"{stem}-test-images-idx3-ubyte.gz", f"{stem}-test-labels-idx1-ubyte.gz"),
        },
        classes,
        transposed=True,
        label_offset=label_offset,
        archive="emnist",
    )


_MNIST_FILES = {"train": SPLIT_FILES["train"], "test": SPLIT_FILES["test"]}

REGISTRY: dict[str, NamedDataset] = {
    spec.name: spec
    for spec in (
        NamedDataset("kmnist", "KMNIST", _MNIST_FILES, ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo")),
        NamedDataset(
            "qmnist",
            "QMNIST",
            {
                "train": ("qmnist-train-images-idx3-ubyte.gz", "qmnist-train-labels-idx2-int.gz"),
                "test": ("qmnist-test-images-idx3-ubyte.gz", "qmnist-test-labels-idx2-int.gz"),
            },
            DIGITS,
            labels_format="idx2-int",
        ),
        _emnist("digits", DIGITS),
        _emnist("mnist", DIGITS),
        _emnist("letters", LOWER, label_offset=1),  # each letter class holds both its capital and small forms
        _emnist("balanced", DIGITS + UPPER + MERGED_LOWER),
        _emnist("bymerge", DIGITS + UPPER + MERGED_LOWER),
        _emnist("byclass", DIGITS + UPPER + LOWER),
    )
}

# Official sources, tried in order (tests point them at local files).
URL_BASES: dict[str, tuple[str, ...]] = {
    "kmnist": ("https://codh.rois.ac.jp/kmnist/dataset/kmnist/", "http://codh.rois.ac.jp/kmnist/dataset/kmnist/"),
    "qmnist": ("https://raw.githubusercontent.com/facebookresearch/qmnist/master/",),
    "emnist": ("https://biometrics.nist.gov/cs_links/EMNIST/", "https://www.itl.nist.gov/iaui/vip/cs_links/EMNIST/"),
}
ARCHIVES = {"emnist": "gzip.zip"}  # key -> file name at the URL bases; members sit under gzip/
ARCHIVE_MEMBER_PREFIX = "gzip/"

# Published checksums: (algorithm, hex digest) per file.
CHECKSUMS: dict[str, dict[str, tuple[str, str]]] = {
    "kmnist": {
        "train-images-idx3-ubyte.gz": ("sha256", "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
        "train-labels-idx1-ubyte.gz": ("sha256", "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
        "t10k-images-idx3-ubyte.gz": ("sha256", "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
        "t10k-labels-idx1-ubyte.gz": ("sha256", "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
    },
    "qmnist": {
        "qmnist-train-images-idx3-ubyte.gz": ("md5", "ed72d4157d28c017586c42bc6afe6370"),
        "qmnist-train-labels-idx2-int.gz": ("md5", "0058f8dd561b90ffdd0f734c6a30e5e4"),
        "qmnist-test-images-idx3-ubyte.gz": ("md5", "1394631089c404de565df7b7aeaf9412"),
        "qmnist-test-labels-idx2-int.gz": ("md5", "5b5b05890a5e13444e108efe57b788aa"),
    },
    "emnist": {"gzip.zip": ("md5", "58c8d27c78d21e728a6bc7b3cc06412e")},
}


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, key: str) -> None:
    """Check a local file against its published checksum (skipped with ``LENET_VERIFY_CHECKSUMS=0``).

    Raises:
        DataError: the digest differs.
    """
    known = CHECKSUMS.get(key, {}).get(path.name)
    if known is None or os.environ.get(VERIFY_ENV, "1") == "0":
        return
    algorithm, expected = known
    found = _digest(path, algorithm)
    if found != expected:
        raise DataError(
            f"{str(path)!r} has the wrong checksum ({algorithm} {found[:12]}..., expected {expected[:12]}...); it is corrupt "
            f"or not the original file: delete it and fetch it again (or set {VERIFY_ENV}=0 for a deliberately modified dataset)"
        )


def download(
    key: str, name: str, target_dir: Path, log: Callable[[str], None] | None = None, timeout: float = 60.0
) -> Path:
    """Download ``name`` from ``key``'s URL bases, check its published checksum, then move it into place.

    A failed or corrupt download leaves no file behind.

    Raises:
        DataError: every source failed; the message says where to put the file by hand.
    """
    final, errors = fetch_verified(
        [base + name for base in URL_BASES[key]], target_dir / name, CHECKSUMS.get(key, {}).get(name), log, timeout
    )
    if final is not None:
        return final
    raise DataError(
        f"could not download {name} ({'; '.join(errors)}); on an offline machine copy it into {str(target_dir)!r}, "
        f"or set data_dir (or ${DATA_DIR_ENV}) to a folder holding it"
    )


def extract(archive: Path, names: Sequence[str], target_dir: Path) -> Path:
    """Copy ``names`` out of the zip ``archive`` (under ``gzip/``) into ``target_dir``, each atomically.

    Raises:
        DataError: the zip is damaged or lacks a member.
    """
    import zipfile

    target_dir.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = set(zipped.namelist())
            for name in names:
                if (target_dir / name).is_file():
                    continue
                member = ARCHIVE_MEMBER_PREFIX + name if ARCHIVE_MEMBER_PREFIX + name in members else name
                if member not in members:
                    raise DataError(
                        f"{str(archive)!r} has no {ARCHIVE_MEMBER_PREFIX + name}; it is not NIST's EMNIST gzip.zip"
                    )
                tmp = target_dir / f".{name}.{os.getpid()}.part"
                try:
                    with zipped.open(member) as source, open(tmp, "wb") as out:
                        while chunk := source.read(1 << 22):
                            out.write(chunk)
                    os.replace(tmp, target_dir / name)
                finally:
                    tmp.unlink(missing_ok=True)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{str(archive)!r} is not a valid zip file ({exc}); delete it and fetch it again") from None
    return target_dir


def locate(
    spec: NamedDataset, data_dir=None, log: Callable[[str], None] | None = None, files: Sequence[str] = ()
) -> Path:
    """The folder holding ``spec``'s ``files``: found, extracted from a local archive, or downloaded into the cache.

    Raises:
        DataError: an explicit data folder lacks them, or the download failed.
    """
    explicit = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or None
    cache = default_cache_dir()
    root = Path(explicit).expanduser() if explicit is not None else cache
    group = spec.archive or spec.name
    for candidate in (root / spec.name, root / group, root / group / "gzip", root):
        if all((candidate / name).is_file() for name in files):
            for name in files:
                verify_file(candidate / name, spec.name)
            return candidate
    if spec.archive is not None:
        archive_name = ARCHIVES[spec.archive]
        for candidate in (root / group / archive_name, root / archive_name, cache / group / archive_name):
            if candidate.is_file():
                return extract(candidate, files, cache / spec.name)
    if explicit is not None:
        origin = "data_dir" if data_dir is not None else f"${DATA_DIR_ENV}"
        wanted = f"{ARCHIVES[spec.archive]} or " if spec.archive else ""
        raise DataError(
            f"{spec.title} files missing in {str(root / spec.name)!r} (from {origin}): put {wanted}{', '.join(files)} there"
        )
    if spec.archive is not None:
        archive = download(spec.archive, ARCHIVES[spec.archive], cache / group, log=log, timeout=300.0)
        return extract(archive, files, cache / spec.name)
    target = cache / spec.name
    for name in files:
        if not (target / name).is_file():
            download(spec.name, name, target, log=log)
    return target


def load_qmnist_labels(path: Path) -> np.ndarray:
    """QMNIST's extended labels (IDX int32, ``(n, 8)``): the class is column 0.

    Raises:
        DataError: bad gzip, header or size.
    """

    def parse(header: bytes):
        magic, count, columns = struct.unpack(">III", header)
        if magic != QMNIST_LABELS_MAGIC or columns < 1:
            raise DataError(
                f"{str(path)!r} is not a QMNIST label file: magic {magic:#x}, {columns} columns (expected {QMNIST_LABELS_MAGIC:#x}, 8)"
            )
        return (count, columns), count * columns * 4

    shape, body = read_idx_body(path, 12, parse)
    return body.view(">i4").reshape(shape)[:, 0].astype(np.int64)


def _load_part(spec: NamedDataset, folder: Path, images_name: str, labels_name: str) -> Split:
    images = load_idx_images(folder / images_name)
    if spec.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    if spec.labels_format == "idx2-int":
        labels = load_qmnist_labels(folder / labels_name)
    else:
        labels = load_idx_labels(folder / labels_name, max_label=None).astype(np.int64)
    labels = labels - spec.label_offset
    if len(images) != len(labels):
        raise DataError(
            f"{str(folder / images_name)!r} holds {len(images)} images but {str(folder / labels_name)!r} holds {len(labels)} labels; "
            f"the two files must come from the same split"
        )
    check_labels(labels, spec.class_names, repr(str(folder / labels_name)))
    return Split(images, labels.astype(np.uint8))


def load_named(
    name: str,
    data_dir=None,
    validation_size: int | None = None,
    train_limit: int | None = None,
    log: Callable[[str], None] | None = None,
    splits: Sequence[str] = ("train", "validation", "test"),
):
    """Load a named dataset of the MNIST family (validation: the first ``validation_size`` training images, default 5,000).

    Raises:
        DataError: unavailable or invalid files.
    """
    from lenet_cli.core.config import VALIDATION_SIZE

    spec = REGISTRY[name]
    parts = sorted({"test" if split == "test" else "train" for split in splits})
    files = [file for part in parts for file in spec.files[part]]
    folder = locate(spec, data_dir, log=log, files=files)
    loaded = {part: _load_part(spec, folder, *spec.files[part]) for part in parts}
    return assemble(
        Found(
            name,
            folder,
            spec.class_names,
            loaded.get("train"),
            loaded.get("test"),
            fingerprint_files([folder / file for file in files]),
            preprocess="mnist",
        ),
        VALIDATION_SIZE if validation_size is None else validation_size,
        train_limit,
        splits,
    )
