"""Hostile sizes: files crafted to claim or unpack to gigabytes are refused before memory is allocated.

Each case runs the parser in its own process, which reports its peak resident
memory (``VmHWM``) as it exits; it must stay under 1 GB. The CLI cases check
the one-line error too.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.fault_helpers import error_line, lenet_env
from tests.helpers.idx_factory import FILE_NAMES, idx_labels_bytes, synthetic_images, write_gz

PEAK_LIMIT_KB = 1024 * 1024  # 1 GB


PEAK_MARKER = "LENET_PEAK_KB="
_REPORT_PEAK = f"""
import atexit
def _report_peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print("{PEAK_MARKER}" + line.split()[1], flush=True)
atexit.register(_report_peak)
"""


def _peak_rss_kb(code: str, timeout: float = 60) -> tuple[int, str]:
    """Run ``code`` in a fresh interpreter; return its peak resident memory (KiB) and its stdout.

    The child reports its own ``VmHWM`` at exit: that high-water mark belongs to
    the address space ``exec`` created, whereas ``ru_maxrss`` from ``wait4``
    also counts the copy of this (TensorFlow-sized) test process that ``fork``
    made before the ``exec``.
    """
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _REPORT_PEAK + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the parser hung")
    assert proc.returncode == 0, proc.stderr
    peaks = [int(line[len(PEAK_MARKER) :]) for line in proc.stdout.splitlines() if line.startswith(PEAK_MARKER)]
    assert len(peaks) == 1, proc.stdout
    return peaks[0], "\n".join(line for line in proc.stdout.splitlines() if not line.startswith(PEAK_MARKER))


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _multipage_tiff(pages: int, side: int = 8) -> bytes:
    """A little-endian TIFF with ``pages`` 8x8 grayscale pages sharing one strip (written by hand: Pillow takes minutes)."""
    pixels = np.zeros((side, side), np.uint8)
    pixels[2:6, 3:5] = 255
    strip = pixels.tobytes()
    header = b"II*\x00" + struct.pack("<I", 8 + len(strip))
    entries = [
        (256, 3, 1, side),
        (257, 3, 1, side),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8),
        (278, 3, 1, side),
        (279, 4, 1, len(strip)),
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    body = bytearray(header + strip)
    for page in range(pages):
        offset = len(body)
        next_ifd = offset + ifd_size if page < pages - 1 else 0
        body += struct.pack("<H", len(entries))
        for tag, kind, count, value in entries:
            body += struct.pack("<HHI", tag, kind, count) + (
                struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            )
        body += struct.pack("<I", next_ifd)
    return bytes(body)


def _zip_bomb(path: Path, unpacked: int) -> Path:
    """A .keras-named ZIP whose weights member inflates to ``unpacked`` bytes of zeros (a few MB on disk)."""
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", '{"keras_version": "3.15.0"}')
        archive.writestr("config.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(unpacked // len(chunk)):
                member.write(chunk)
    return path


def _refused(call: str, *setup: str) -> str:
    """Code that runs ``call``, expects a LenetError and prints its message."""
    return "\n".join(
        [
            *setup,
            "from lenet_cli.core.errors import LenetError",
            "try:",
            f"    {call}",
            "    print('ACCEPTED')",
            "except LenetError as exc:",
            "    print(exc)",
        ]
    )


def test_idx_header_claiming_a_billion_images(tmp_path):
    path = write_gz(tmp_path / "train-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 10**9, 28, 28) + bytes(784 * 3))
    peak, out = _peak_rss_kb(
        _refused(
            f"load_idx_images(Path({str(path)!r}))",
            "from pathlib import Path",
            "from lenet_cli.data.idx import load_idx_images",
        )
    )
    assert "claims 1,000,000,000 items" in out and peak < PEAK_LIMIT_KB


def test_idx_header_claiming_a_million_images_with_three(tmp_path):
    """Under the byte cap (784 MB), so only reading as the stream yields keeps memory small."""
    path = write_gz(tmp_path / "train-images-idx3-ubyte.gz", struct.pack(">IIII", 2051, 10**6, 28, 28) + bytes(784 * 3))
    peak, out = _peak_rss_kb(
        _refused(
            f"load_idx_images(Path({str(path)!r}))",
            "from pathlib import Path",
            "from lenet_cli.data.idx import load_idx_images",
        )
    )
    assert "truncated or padded: 2,368 bytes after gunzip, expected 784,000,016" in out and peak < 300 * 1024


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_train_refuses_the_billion_image_header_in_one_line(tmp_path):
    data = tmp_path / "data" / "mnist"
    labels = np.zeros(3, np.uint8)
    write_gz(data / FILE_NAMES[0], struct.pack(">IIII", 2051, 10**9, 28, 28) + synthetic_images(labels).tobytes())
    write_gz(data / FILE_NAMES[1], idx_labels_bytes(labels))
    write_gz(data / FILE_NAMES[2], struct.pack(">IIII", 2051, 3, 28, 28) + synthetic_images(labels).tobytes())
    write_gz(data / FILE_NAMES[3], idx_labels_bytes(labels))
    done = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "train", "--data-dir", str(tmp_path / "data"), "--quiet"],
        env=lenet_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "claims 1,000,000,000 items" in error_line(done.stderr)
    assert "tensorflow" not in done.stderr.lower()


@pytest.mark.parametrize(
    "width, height, expected",
    [
        (60000, 60000, "too many pixels (more than 40,000,000)"),
        (1, 100000, None),  # few pixels: decoded and fitted like any other picture
        (100000, 1, None),
    ],
)
def test_png_sizes(tmp_path, width, height, expected):
    path = tmp_path / "hostile.png"
    if expected:
        path.write_bytes(_png_header_only(width, height))
    else:
        from PIL import Image

        pixels = np.zeros((height, width), np.uint8)
        pixels.reshape(-1)[len(pixels.reshape(-1)) // 3 : 2 * len(pixels.reshape(-1)) // 3] = 255
        Image.fromarray(pixels).save(path)
    code = _refused(
        f"print(load_and_preprocess({str(path)!r}, PreprocessOptions(mode='mnist')).shape)",
        "from lenet_cli.data.preprocess import load_and_preprocess, PreprocessOptions",
    )
    peak, out = _peak_rss_kb(code)
    assert peak < PEAK_LIMIT_KB
    if expected:
        assert expected in out
    else:
        assert "(28, 28)" in out or "no content" in out, out


def test_tiff_with_ten_thousand_pages_reads_only_the_first(tmp_path):
    path = tmp_path / "pages.tif"
    path.write_bytes(_multipage_tiff(10_000))
    started = time.monotonic()
    peak, out = _peak_rss_kb(
        _refused(
            f"print(load_and_preprocess({str(path)!r}, PreprocessOptions(mode='mnist')).shape)",
            "from lenet_cli.data.preprocess import load_and_preprocess, PreprocessOptions",
        )
    )
    assert "(28, 28)" in out and peak < PEAK_LIMIT_KB
    assert time.monotonic() - started < 30


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    path = _zip_bomb(tmp_path_factory.mktemp("bomb") / "model.keras", 3 << 29)  # 1.6 GB of zeros
    assert path.stat().st_size < 20 << 20
    return path


@pytest.mark.slow
def test_zip_bomb_keras_model_is_refused_before_unpacking(bomb):
    peak, out = _peak_rss_kb(
        _refused(f"load_model_file({str(bomb)!r})", "from lenet_cli.model.network import load_model_file"), timeout=120
    )
    assert "it would unpack to 1,610,612,7" in out, out
    assert peak < PEAK_LIMIT_KB


@pytest.mark.slow
def test_zip_bomb_through_the_cli(tmp_path, bomb):
    image = tmp_path / "digit.png"
    image.write_bytes(_png_header_only(28, 28))
    done = subprocess.run(
        [sys.executable, "-m", "lenet_cli", "predict", str(image), "--model", str(bomb), "--preprocess", "mnist"],
        env=lenet_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "would unpack to" in error_line(done.stderr)
