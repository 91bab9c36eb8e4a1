"""Refuse a ``.keras`` archive that would unpack to more than a model can need, before Keras opens it.

A ``.keras`` file is a ZIP archive (``config.json``, ``metadata.json``,
``model.weights.h5``). A ZIP bomb is a tiny archive whose members expand to
gigabytes; Keras would read them into memory. The central directory lists
every member's uncompressed size, and Python's ``zipfile`` never returns more
than that size for a member (a member that lies about it fails its CRC), so
adding those sizes up bounds what loading can unpack. Pure Python: no
TensorFlow is imported here.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from lenet_cli.core.errors import ModelError

MAX_UNPACKED_BYTES = 512 << 20
"""The most a ``.keras`` archive may unpack to: 512 MiB (the default lenet model unpacks to 12 MB)."""

MAX_MEMBERS = 10_000


def check_keras_archive(path: str | os.PathLike) -> None:
    """Raise :class:`ModelError` when ``path`` is a ZIP archive that unpacks to more than :data:`MAX_UNPACKED_BYTES`.

    Files that are not ZIP archives are left to Keras (which reports them).
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    if len(members) > MAX_MEMBERS:
        raise ModelError(
            f"refusing to load {str(path)!r}: the archive lists {len(members):,} files; a .keras model holds three"
        )
    total = sum(max(0, m.file_size) for m in members)
    if total > MAX_UNPACKED_BYTES:
        raise ModelError(
            f"refusing to load {str(path)!r}: it would unpack to {total:,} bytes, more than the "
            f"{MAX_UNPACKED_BYTES:,} a lenet model can need (a ZIP bomb or not a lenet model)"
        )
