"""Pictures given as inputs: gather files, directories and stdin in order, and decode them in parallel chunks.

Each picture is preprocessed as the model's dataset was made
(:mod:`lenet_cli.data.preprocess`). Needs numpy and Pillow only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core.errors import DataError, LenetError
from lenet_cli.core.units import plural

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


def expand_inputs(
    paths: Sequence[str],
    recursive: bool = False,
    files_from: Iterable[str] = (),
    stdin_bytes=None,
    log: Callable[[str], None] | None = None,
) -> list[InputItem]:
    """Turn command-line inputs into an ordered list of files to classify.

    Directories contribute their image files (sorted; ``recursive`` descends),
    ``-`` is one image read from stdin (``stdin_bytes`` supplies it), and
    ``files_from`` lines are paths. Missing paths become error items, so the
    other inputs are still predicted. ``log`` is told how many sub-folders of
    a directory were not entered, when ``recursive`` is off: pictures there are
    not silently missing from the answers.
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
                entries = list(walker)
                found = sorted(p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            except OSError as exc:
                items.append(InputItem(name, path, error=f"cannot list directory {name!r}: {exc.strerror or exc}"))
                continue
            items.extend(InputItem(display_name(p), p) for p in found)
            skipped = 0 if recursive else sum(1 for p in entries if p.is_dir())
            if skipped and log is not None:
                log(f"did not enter {plural(skipped, 'sub-folder')} of {name!r} (recursive is off)")
        elif path.exists():
            items.append(InputItem(name, path))
        else:
            items.append(InputItem(name, path, error=f"cannot read {name!r}: no such file"))
    return items


def gather_inputs(
    inputs: Sequence[str],
    recursive: bool = False,
    files_from: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[InputItem]:
    """The ordered list of files to classify, from arguments, ``--files-from`` (a path or ``-``) and stdin.

    ``log`` receives a line per directory whose sub-folders were not entered (:func:`expand_inputs`).

    Raises:
        DataError: no image files among the inputs.
    """
    lines = []
    if files_from is not None:
        text = sys.stdin.buffer.read() if files_from == "-" else Path(files_from).read_bytes()
        lines = [line for line in text.decode("utf-8", "surrogateescape").splitlines() if line.strip()]
    items = expand_inputs(
        inputs, recursive=recursive, files_from=lines, stdin_bytes=lambda: sys.stdin.buffer.read(), log=log
    )
    if not items:
        raise DataError(
            "no image files found in the given inputs (directories are searched for .png, .jpg, .bmp, .gif, .tif, .webp; "
            "set recursive to descend into subfolders)"
        )
    return items


PARALLEL_MIN_ITEMS = 64  # below this, forking workers costs more than it saves
DECODE_CHUNK = 128  # images per worker task and per network call


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C to the parent, which stops them (no traceback per worker)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def decode_chunk(items: Sequence[InputItem], options) -> list[tuple[np.ndarray | None, str | None]]:
    """Read and preprocess each item: ``(array, None)``, or ``(None, one-line error)`` for a bad input."""
    from lenet_cli.data.preprocess import load_and_preprocess

    results: list[tuple[np.ndarray | None, str | None]] = []
    for item in items:
        if item.error:
            results.append((None, item.error))
            continue
        try:
            source = item.data if item.data is not None else item.path
            if source is None:
                raise DataError(f"cannot read {item.name!r}: it names no file")
            results.append((load_and_preprocess(source, options, name=item.name), None))
        except LenetError as exc:
            results.append((None, str(exc).splitlines()[0]))
    return results


def decode_workers() -> int:
    """The CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class ChunkDecoder:
    """Decode inputs chunk by chunk, in order: in worker processes, or in this one.

    Started *before* the model loads, the workers decode while TensorFlow
    imports and loads the model, which is most of a cold ``lenet predict``'s
    wall time with a ``.keras`` model; that is why they are forked early, from
    a process that has not loaded TensorFlow yet (forking after TensorFlow has
    started its thread pools is unsafe, so then, and for a handful of files,
    decoding stays in-process). The workers only run numpy and Pillow.
    """

    def __init__(self, items: Sequence[InputItem], options, workers: int | None = None, chunk_size: int = DECODE_CHUNK):
        self.options = options
        self.chunks = [list(items[i : i + chunk_size]) for i in range(0, len(items), chunk_size)]
        workers = decode_workers() if workers is None else workers
        self.pool = None
        self.futures = []
        if workers > 1 and len(items) >= PARALLEL_MIN_ITEMS and "tensorflow" not in sys.modules and hasattr(os, "fork"):
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("fork"), initializer=_ignore_sigint
            )
            self.futures = [self.pool.submit(decode_chunk, chunk, options) for chunk in self.chunks]

    @property
    def parallel(self) -> bool:
        return self.pool is not None

    def __iter__(self) -> Iterator[tuple[list[InputItem], list[tuple[np.ndarray | None, str | None]]]]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            for index, chunk in enumerate(self.chunks):
                if self.pool is None:
                    yield chunk, decode_chunk(chunk, self.options)
                    continue
                try:
                    results = self.futures[index].result()
                except BrokenProcessPool:
                    raise LenetError(
                        "an image-decoding worker process died (killed, or out of memory); "
                        "nothing was lost, run the command again, or with fewer files at a time"
                    ) from None
                yield chunk, results
        finally:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
