"""Classify image files: gather inputs, preprocess them as the model's dataset was made, predict in batches.

Returns plain records (one per input, in order); the CLI formats them. Needs
numpy and Pillow only, plus whatever runtime loads the model (TensorFlow for
``.keras``; onnxruntime or LiteRT for exported models).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from lenet_cli.errors import LenetError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
STDIN = "-"


def display_name(path: str | os.PathLike | bytes) -> str:
    """A printable form of a path; bytes that are not UTF-8 appear as ``\\xff`` escapes."""
    if isinstance(path, bytes):
        return path.decode("utf-8", "backslashreplace")
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


@dataclass
class InputItem:
    """One input: a path, or the bytes read from stdin."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    error: str | None = None  # set when the input could not even be listed


def expand_inputs(paths: Sequence[str], recursive: bool = False, files_from: Iterable[str] = (), stdin_bytes=None) -> list[InputItem]:
    """Turn command-line inputs into an ordered list of files to classify.

    Directories contribute their image files (sorted; ``recursive`` descends),
    ``-`` is one image read from stdin (``stdin_bytes`` supplies it), and
    ``files_from`` lines are paths. Missing paths become error items, so the
    other inputs are still predicted.
    """
    items: list[InputItem] = []
    for raw in list(paths) + [line for line in files_from]:
        if raw == STDIN:
            data = stdin_bytes() if callable(stdin_bytes) else stdin_bytes
            items.append(InputItem("<stdin>", data=data or b""))
            continue
        path = Path(raw)
        name = display_name(path)
        if path.is_dir():
            walker = path.rglob("*") if recursive else path.iterdir()
            try:
                found = sorted(p for p in walker if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            except OSError as exc:
                items.append(InputItem(name, path, error=f"cannot list directory {name!r}: {exc.strerror or exc}"))
                continue
            items.extend(InputItem(display_name(p), p) for p in found)
        elif path.exists():
            items.append(InputItem(name, path))
        else:
            items.append(InputItem(name, path, error=f"cannot read {name!r}: no such file"))
    return items


@dataclass
class Prediction:
    """The answer for one input (``error`` set and the rest empty when it failed)."""

    path: str
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[dict] = field(default_factory=list)
    error: str | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "index": self.index, "confidence": self.confidence, "top_k": self.top_k, "error": self.error}


def predict_items(
    items: list[InputItem],
    predict_fn,
    class_names: Sequence[str],
    preprocess_mode: str,
    invert: str = "auto",
    top_k: int = 3,
    batch_size: int = 512,
    save_preprocessed: Path | None = None,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per item, in order, decoding and predicting ``batch_size`` at a time."""
    from lenet_cli.preprocess import PreprocessOptions, load_and_preprocess, save_preprocessed_png

    options = PreprocessOptions(mode=preprocess_mode, invert=invert)
    k = max(1, min(top_k, len(class_names)))
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        arrays: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for item in chunk:
            if item.error:
                arrays.append(None)
                errors.append(item.error)
                continue
            try:
                source = item.data if item.data is not None else item.path
                array = load_and_preprocess(source, options, name=item.name)
            except LenetError as exc:
                arrays.append(None)
                errors.append(str(exc).splitlines()[0])
                continue
            arrays.append(array)
            errors.append(None)
            if save_preprocessed is not None:
                stem = Path(item.name).stem if item.path is not None else "stdin"
                save_preprocessed_png(array, save_preprocessed / f"{start + len(arrays) - 1:05d}_{stem}.png")
        good = [a for a in arrays if a is not None]
        probabilities = predict_fn(np.stack(good)[..., None].astype(np.float32)) if good else np.zeros((0, len(class_names)))
        row = 0
        for item, array, error in zip(chunk, arrays, errors):
            if array is None:
                yield Prediction(item.name, error=error)
                continue
            probs = probabilities[row]
            row += 1
            order = np.argsort(-probs, kind="stable")[:k]
            best = int(order[0])
            yield Prediction(
                item.name,
                label=class_names[best],
                index=best,
                confidence=float(probs[best]),
                top_k=[{"label": class_names[int(i)], "index": int(i), "confidence": float(probs[int(i)])} for i in order],
            )
