"""Your own pictures, in the folder convention of Keras's ``image_dataset_from_directory`` and torchvision's ``ImageFolder``.

``DIR/train/<class>/*.png|jpg|...`` (and optionally ``DIR/test/<class>/...``),
or ``DIR/<class>/...`` split deterministically (a fifth of each class, chosen
by a hash of its file name, is held back for testing). The class names are
the sub-folder names, sorted.

Every picture goes through ``lenet predict``'s preprocessing (digit-like
``mnist`` or article-like ``fashion``), decoded once in worker processes; the
28x28 arrays are cached next to the data (``DIR/.lenet-cache/``), or in the
user cache when that folder is not writable, under a fingerprint of the
sources (paths, sizes, modification times) and the preprocessing, so a
second run starts at once. Unreadable and blank pictures are skipped and
listed; a class left with no usable picture is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core.errors import DataError, LenetError
from lenet_cli.data.dataset import Dataset, Split
from lenet_cli.data.idx import default_cache_dir
from lenet_cli.data.picture_inputs import IMAGE_EXTENSIONS
from lenet_cli.data.sources.common import Found, assemble, display, holdout_mask, stable_rank

CACHE_DIR = ".lenet-cache"
CACHE_VERSION = 1  # bump when the cached arrays' meaning changes


@dataclass(frozen=True)
class Picture:
    """One source picture: its path relative to the dataset folder, its class index, and its part (train | test)."""

    relative: str
    label: int
    part: str


def _class_folders(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise DataError(f"cannot list {display(folder)!r}: {exc.strerror or exc}") from None


def _pictures_in(folder: Path) -> list[Path]:
    try:
        return sorted(
            p
            for p in folder.rglob("*")
            if p.is_file()
            and p.suffix.lower() in IMAGE_EXTENSIONS
            and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        )
    except OSError as exc:
        raise DataError(f"cannot list {display(folder)!r}: {exc.strerror or exc}") from None


def is_picture_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like a picture folder (it has sub-folders)."""
    return folder.is_dir() and bool(_class_folders(folder))


def list_pictures(folder: Path) -> tuple[tuple[str, ...], list[Picture], bool]:
    """The class names, every picture, and whether the folder brings its own test part.

    Raises:
        DataError: no class folders, a class without pictures, or test classes unknown to train/.
    """
    has_train = (folder / "train").is_dir()
    layout = {"train": folder / "train", "test": folder / "test"} if has_train else {"train": folder}
    train_classes = _class_folders(layout["train"])
    if not train_classes:
        where = "train/" if has_train else ""
        raise DataError(
            f"{display(folder)!r} holds no class folders; put each class's pictures in {display(folder / where)}<class name>/"
        )
    names = tuple(p.name for p in train_classes)
    pictures: list[Picture] = []
    for part, root in layout.items():
        if part == "test" and not root.is_dir():
            continue
        for class_folder in _class_folders(root):
            if class_folder.name not in names:
                raise DataError(
                    f"{display(class_folder)!r} is a test class with no training folder; "
                    f"test/ may only use the classes of train/ ({', '.join(names)})"
                )
            found = _pictures_in(class_folder)
            if not found and part == "train":
                raise DataError(
                    f"class {class_folder.name!r} has no pictures in {display(class_folder)!r} "
                    f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add some or remove the folder"
                )
            label = names.index(class_folder.name)
            pictures += [Picture(p.relative_to(folder).as_posix(), label, part) for p in found]
    if len(names) < 2:
        raise DataError(
            f"{display(folder)!r} has only the class {names[0]!r}; a classifier needs at least two class folders"
        )
    return names, pictures, has_train and (folder / "test").is_dir()


def fingerprint(folder: Path, pictures: Sequence[Picture], names: Sequence[str], preprocess: str) -> str:
    """sha256 over every picture's path, class, size and modification time, the class list and the preprocessing."""
    digest = hashlib.sha256(
        json.dumps({"version": CACHE_VERSION, "classes": list(names), "preprocess": preprocess}).encode()
    )
    for picture in pictures:
        try:
            stat = (folder / picture.relative).stat()
            facts = f"{stat.st_size}:{stat.st_mtime_ns}"
        except OSError:
            facts = "unreadable"
        digest.update(
            f"{picture.relative}\0{picture.label}\0{picture.part}\0{facts}\n".encode("utf-8", "surrogateescape")
        )
    return digest.hexdigest()


def cache_candidates(folder: Path, key: str) -> list[Path]:
    """Where the decoded arrays are cached: next to the data first, else the user cache."""
    name = f"pictures-{key[:32]}.npz"
    return [folder / CACHE_DIR / name, default_cache_dir() / "pictures" / name]


def _read_cache(paths: Sequence[Path]) -> tuple[dict, Path] | None:
    for path in paths:
        if path.is_file():
            try:
                with np.load(path, allow_pickle=False) as stored:
                    return {key: stored[key] for key in stored.files}, path
            except (OSError, ValueError, KeyError, EOFError):
                continue  # a damaged cache is decoded again
    return None


def _write_cache(paths: Sequence[Path], arrays: dict) -> Path | None:
    from lenet_cli.store.atomic import write_bytes_atomic

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(path, buffer.getvalue())
            return path
        except (OSError, LenetError):
            continue
    return None


def decode_pictures(
    folder: Path, pictures: Sequence[Picture], preprocess: str, workers: int | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Preprocess every picture as ``lenet predict`` does, in worker processes.

    Returns:
        ``(uint8 images (n, 28, 28), which pictures decoded (bool, n), [(path, why) for each skipped])``.
    """
    from lenet_cli.data.picture_inputs import ChunkDecoder, InputItem
    from lenet_cli.data.preprocess import PreprocessOptions, to_uint8

    items = [InputItem(picture.relative, folder / picture.relative) for picture in pictures]
    images = np.zeros((len(items), 28, 28), dtype=np.uint8)
    usable = np.zeros(len(items), dtype=bool)
    skipped: list[tuple[str, str]] = []
    index = 0
    for chunk, results in ChunkDecoder(items, PreprocessOptions(mode=preprocess), workers=workers):
        for item, (array, error) in zip(chunk, results):
            if array is None:
                skipped.append((item.name, error or "unreadable"))
            else:
                images[index] = to_uint8(array)
                usable[index] = True
            index += 1
    return images, usable, skipped


def load_picture_folder(
    folder: Path,
    validation_size: int | None,
    train_limit: int | None,
    splits: Sequence[str],
    preprocess: str | None = None,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Decode (or read from the cache) a picture folder and split it.

    The training pictures are put in a fixed pseudo-random order (by a hash of
    their names), so the validation split (the first ``validation_size``)
    holds every class.

    Raises:
        DataError: an empty folder, a class without (usable) pictures, or a bad layout.
    """
    preprocess = preprocess or "mnist"
    names, pictures, has_test = list_pictures(folder)
    key = fingerprint(folder, pictures, names, preprocess)
    candidates = cache_candidates(folder, key)
    found = _read_cache(candidates)
    if found is not None:
        cached, cache_path = found
        images, usable = cached["images"], cached["usable"]
        skipped = [tuple(row) for row in cached["skipped"].tolist()] if cached["skipped"].size else []
        if log:
            log(f"{len(pictures):,} pictures of {len(names)} classes, decoded before: {display(cache_path)}")
    else:
        if log:
            log(
                f"decoding {len(pictures):,} pictures of {len(names)} classes in {display(folder)} ({preprocess} preprocessing)"
            )
        images, usable, skipped = decode_pictures(folder, pictures, preprocess)
    labels = np.array([p.label for p in pictures], dtype=np.uint8)
    parts = np.array([p.part for p in pictures])
    counts = np.bincount(labels[usable & (parts == "train")], minlength=len(names))
    empty = [names[i] for i in np.nonzero(counts == 0)[0]]
    if empty:
        raise DataError(
            f"class {empty[0]!r} has no usable training pictures (all {int((labels == names.index(empty[0])).sum())} "
            f"were unreadable or blank); fix or remove {display(folder / ('train' if has_test or (folder / 'train').is_dir() else '') / empty[0])!r}"
        )
    if found is None:
        stored = _write_cache(
            candidates, {"images": images, "usable": usable, "skipped": np.array(skipped, dtype=str).reshape(-1, 2)}
        )
        if stored is None and log:
            log("could not cache the decoded pictures (no writable folder); the next run decodes them again")
    if skipped and log:
        log(
            f"skipped {len(skipped)} of {len(pictures):,} pictures (unreadable or blank), e.g. {skipped[0][0]}: {skipped[0][1]}"
        )
    keys = [p.relative for p in pictures]
    if has_test:
        is_test = parts == "test"
    else:
        is_test = holdout_mask(keys, labels)
    train_index = np.nonzero(usable & ~is_test)[0]
    train_index = train_index[stable_rank([keys[i] for i in train_index])]
    test_index = np.nonzero(usable & is_test)[0]
    train = Split(images[train_index], labels[train_index])
    test = Split(images[test_index], labels[test_index])
    return assemble(
        Found(
            str(folder),
            folder,
            names,
            train,
            test,
            key,
            preprocess=preprocess,
            skipped=skipped,
        ),
        validation_size,
        train_limit,
        splits,
    )
