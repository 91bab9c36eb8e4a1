"""Atomic file writes: a temporary name in the same directory, then a rename.

A process killed mid-write never leaves a half-written file under the final
name, and an existing file is replaced only by a complete new one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it into place on success.

    The temporary name keeps the final suffix (Keras and other writers look at
    the extension). On any exception the temporary file or directory is removed
    and ``final_path`` is left untouched.
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = final_path.suffix if suffix is None else suffix
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.stem}.", suffix=f".tmp{suffix}", dir=final_path.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    tmp_path.unlink()  # writers create it themselves (some write directories)
    try:
        yield tmp_path
        if not tmp_path.exists():
            raise FileNotFoundError(f"nothing was written to {tmp_path}")
        if final_path.is_dir() and not final_path.is_symlink():
            import shutil

            old = final_path.with_name(f".{final_path.name}.old-{os.getpid()}")
            os.replace(final_path, old)
            os.replace(tmp_path, final_path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp_path, final_path)
    except BaseException:
        if tmp_path.is_dir():
            import shutil

            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists():
            tmp_path.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically and return the path."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically and return the path."""
    return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")
