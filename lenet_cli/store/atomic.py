"""Atomic file writes: a temporary name in the same directory, then a rename.

A process killed mid-write never leaves a half-written file under the final
name, and an existing file is replaced only by a complete new one. A write
that the system refuses (a full disk, a quota, a file-size limit, a read-only
or unwritable folder) removes the temporary file and raises
:class:`WriteFailed`, a :class:`~lenet_cli.core.errors.LenetError` that names the
final file and the cause, so every writer reports it in one line.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lenet_cli.core.errors import LenetError

_WHAT_TO_DO = {
    errno.ENOSPC: "free some space on that disk and run the command again",
    errno.EDQUOT: "free some space within your disk quota and run the command again",
    errno.EFBIG: "the file-size limit (ulimit -f) or the file system does not allow a file this large; raise the limit or write elsewhere",
    errno.EROFS: "the file system is read-only; write somewhere else",
    errno.EACCES: "you may not write there; fix the folder's permissions or write somewhere else",
    errno.EPERM: "you may not write there; fix the folder's permissions or write somewhere else",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EIO: "the disk reported an input/output error; check it and run the command again",
}


class WriteFailed(LenetError):
    """A file could not be written; nothing was left under its final name."""

    def __init__(self, path: str | os.PathLike, cause: OSError):
        self.path = Path(path)
        self.cause = cause
        code = errno.errorcode.get(cause.errno or 0, "")
        reason = cause.strerror or str(cause) or type(cause).__name__
        advice = _WHAT_TO_DO.get(cause.errno or 0, "check the disk and the folder, then run the command again")
        super().__init__(f"cannot write {str(self.path)!r}: {reason}{f' ({code})' if code else ''}; {advice}")


def write_failure(path: str | os.PathLike, cause: OSError) -> WriteFailed:
    """The :class:`WriteFailed` for ``path`` (for writers that do not go through :func:`atomic_path`)."""
    return WriteFailed(path, cause)


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final_path``; rename it into place on success.

    The temporary name keeps the final suffix (Keras and other writers look at
    the extension). On any exception the temporary file or directory is removed
    and ``final_path`` is left untouched.

    Raises:
        WriteFailed: the system refused a write (``OSError`` from the block or
            from the rename); the message names ``final_path`` and the cause.
    """
    final_path = Path(final_path)
    suffix = final_path.suffix if suffix is None else suffix
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.stem}.", suffix=f".tmp{suffix}", dir=final_path.parent)
    except OSError as exc:
        raise WriteFailed(final_path, exc) from None
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
    except BaseException as exc:
        _remove(tmp_path)
        failure = _os_error_in(exc) if isinstance(exc, Exception) and not isinstance(exc, LenetError) else None
        if failure is not None:
            raise WriteFailed(final_path, failure) from None
        raise


def _remove(tmp_path: Path) -> None:
    """Remove a temporary file or folder; never fails (removing needs no free space)."""
    import shutil

    with contextlib.suppress(OSError):
        if tmp_path.is_dir() and not tmp_path.is_symlink():
            shutil.rmtree(tmp_path, ignore_errors=True)
        elif tmp_path.exists() or tmp_path.is_symlink():
            tmp_path.unlink()


def _os_error_in(exc: BaseException) -> OSError | None:
    """The refused write behind ``exc``: an ``OSError`` with one of the errnos above, itself or wrapped by a library."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, OSError) and current.errno in _WHAT_TO_DO:
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


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
    """Write ``obj`` as indented, strict JSON to ``path`` atomically and return the path.

    NaN and infinities (a validation score without a validation split) become
    ``null``: Python would write ``NaN``, which is not JSON, and ``jq`` and
    other strict readers refuse the whole file.
    """
    return write_text_atomic(path, json.dumps(strict_json(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def strict_json(obj):
    """``obj`` with every non-finite float (in dicts, lists and tuples, however deep) replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: strict_json(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(value) for value in obj]
    return obj
