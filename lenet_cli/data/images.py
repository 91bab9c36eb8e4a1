"""Read image files into luminance arrays, with Pillow and numpy only.

``lenet predict`` must work where TensorFlow is not installed and must answer
every file a person points it at with either an array or a one-line
:class:`~lenet_cli.core.errors.DataError`, so this module never imports
TensorFlow, Keras or Click, and turns every way a file can be wrong (missing,
empty, not an image, truncated, too large) into such an error.

Every Pillow mode becomes the same thing: a float32 ``(H, W)`` array of
luminance in ``[0, 1]`` (0 black, 1 white). Deciding what is ink and what is
background is left to :mod:`lenet_cli.data.preprocess`; the only judgement made
here is for transparent images, whose ink may live in the alpha channel alone.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lenet_cli.core.errors import DataError

MAX_IMAGE_PIXELS = 40_000_000
"""Refuse images with more pixels than this (width x height) before decoding them.

A digit or an article needs a few thousand pixels; anything this large is a
mistake or a decompression bomb, and decoding it would take gigabytes.
"""

SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WebP")
"""The formats ``lenet predict`` promises to read (Pillow may read more)."""

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601-2, as Pillow's "L"

_SUFFIX_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".jpe": "JPEG",
    ".bmp": "BMP",
    ".dib": "BMP",
    ".gif": "GIF",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WebP",
}

# What Pillow raises on corrupt or truncated data varies by plugin.
_CORRUPT_DATA_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError)

ImageSource = str | os.PathLike | bytes | bytearray | memoryview


def quote_name(name: str | bytes | os.PathLike) -> str:
    """Quote a file name for a one-line message, escaping what a terminal cannot show.

    File names on POSIX are bytes; those that are not valid UTF-8 arrive as
    ``str`` with surrogate escapes (``os.fsdecode``). Printing those raises
    ``UnicodeEncodeError``, so undecodable bytes are shown as ``\\xff`` and
    control characters (a newline in a name) as escapes.

    Args:
        name: A path or name as ``str``, ``bytes`` or path-like.

    Returns:
        The name in single quotes, safe to print on one line.
    """
    name = os.fspath(name)
    if isinstance(name, bytes):
        text = name.decode("utf-8", "backslashreplace")
    else:
        try:
            text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:
            text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return f"'{text}'"


def read_image(source: ImageSource, name: str | None = None) -> np.ndarray:
    """Decode an image file (first frame only) into luminance, compositing any transparency.

    Args:
        source: A filesystem path (``str`` or path-like; names that are not
            UTF-8 arrive from ``sys.argv`` as surrogate-escaped ``str`` and
            work) or the raw bytes of an image file, for example read from
            standard input. ``bytes`` are always image data, never a path.
        name: How to call the source in error messages. Defaults to the path,
            or ``<stdin>`` for raw bytes.

    Returns:
        A float32 array of shape ``(H, W)`` with luminance in ``[0, 1]``
        (0 black, 1 white). See :func:`image_to_luminance` for how each mode
        and transparency are handled.

    Raises:
        DataError: The file is missing, unreadable, a directory, empty, not an
            image Pillow recognises, truncated or corrupt, larger than
            :data:`MAX_IMAGE_PIXELS`, or in a mode that cannot be converted.
            The message names the file and says what is wrong.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = quote_name(name if name is not None else "<stdin>")
        data = bytes(source)
        if not data:
            raise DataError(f"cannot read {label}: no data (0 bytes); pass an image file's contents")
        suffix = Path(name).suffix if name is not None else ""
        return _decode(io.BytesIO(data), label, suffix)

    path = os.fspath(source)
    label = quote_name(name if name is not None else path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"cannot read {label}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"cannot read {label}: it is a directory, not an image file") from None
    except PermissionError:
        raise DataError(f"cannot read {label}: permission denied (check the file's permissions)") from None
    except OSError as exc:
        raise DataError(f"cannot read {label}: {exc.strerror or exc}") from None
    with handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise DataError(f"cannot read {label}: it is a directory, not an image file")
        if stat.S_ISREG(info.st_mode) and info.st_size == 0:
            raise DataError(f"cannot read {label}: the file is empty (0 bytes)")
        return _decode(handle, label, os.path.splitext(os.fsdecode(path))[1])


def _decode(fp, label: str, suffix: str) -> np.ndarray:
    """Open, size-check and decode the first frame of ``fp``; map Pillow's failures to DataError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's notes on odd but readable files
            image: Image.Image = Image.open(fp)  # not closed here: we own ``fp``, and closing drops the pixels
            _check_pixel_count(image.size, label)
            image.load()
            bits = _bit_depth(image)
            image = _apply_exif_orientation(image)
    except UnidentifiedImageError:
        raise DataError(f"cannot read {label}: not an image file Pillow recognises ({_format_hint(suffix)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"cannot read {label}: too many pixels (more than {MAX_IMAGE_PIXELS:,}); "
            "downscale it first, e.g. to 2000 pixels on the longest side"
        ) from None
    except _CORRUPT_DATA_ERRORS as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"cannot read {label}: the file is truncated or corrupt (Pillow: {detail})") from None
    return image_to_luminance(image, bits=bits, label=label)


def _format_hint(suffix: str) -> str:
    expected = _SUFFIX_FORMATS.get(suffix.lower())
    if expected:
        return f"is it really a {expected}?"
    return "supported: " + ", ".join(SUPPORTED_FORMATS)


def _check_pixel_count(size: tuple[int, int], label: str) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"cannot read {label}: {width}x{height} is {width * height:,} pixels, more than the limit of "
            f"{MAX_IMAGE_PIXELS:,}; downscale it first, e.g. to 2000 pixels on the longest side"
        )


def _bit_depth(image: Image.Image) -> int | None:
    """Bits per sample of integer images wider than 8 bits, from the TIFF tag when there is one."""
    if not (image.mode == "I" or image.mode.startswith("I;16")):
        return None
    tags = getattr(image, "tag_v2", None)
    if tags is not None and 258 in tags:
        value = tags[258]
        value = value[0] if isinstance(value, tuple) else value
        if isinstance(value, int) and 1 <= value <= 32:
            return value
    return 16 if image.mode.startswith("I;16") else None


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate phone photos upright, as every image viewer shows them."""
    if image.format not in ("JPEG", "TIFF", "WEBP", "PNG", "MPO"):
        return image
    orientation = image.getexif().get(0x0112, 1)
    if orientation in (None, 1):
        return image
    return ImageOps.exif_transpose(image)


def image_to_luminance(image: Image.Image, *, bits: int | None = None, label: str = "the image") -> np.ndarray:
    """Convert a Pillow image of any mode to float32 luminance in ``[0, 1]``.

    Colour becomes luminance with Pillow's own weights (ITU-R 601-2), computed
    in floating point. 16-bit and 32-bit integer images are scaled by their
    bit depth rather than clipped to 8 bits (Pillow's ``convert("L")`` clips,
    which turns most 16-bit images white). Float images are taken as
    ``[0, 1]`` when they fit, as ``[0, 255]`` when they fit that, and are
    otherwise stretched from their minimum to their maximum.

    Transparent images are composited onto a background chosen to contrast
    with the ink (see :func:`composite_alpha`), so a drawing whose colour is
    uniformly black or white and whose strokes exist only in the alpha channel
    stays visible.

    Args:
        image: A loaded Pillow image.
        bits: Bits per sample for integer (``I``/``I;16``) images, when known.
        label: How to name the image in an error message.

    Returns:
        A float32 array of shape ``(H, W)``, 0 black and 1 white.

    Raises:
        DataError: The mode cannot be converted to RGB.
    """
    mode = image.mode
    if mode in ("La", "RGBa"):
        image, mode = image.convert(mode.upper()), mode.upper()
    if mode in ("P", "PA", "L", "RGB", "1") and (mode == "PA" or "transparency" in image.info):
        image, mode = image.convert("RGBA"), "RGBA"
    elif mode == "P":
        image, mode = image.convert("RGB"), "RGB"

    if mode == "1":
        return np.asarray(image, dtype=np.float32)
    if mode == "L":
        return np.asarray(image, dtype=np.float32) / np.float32(255)
    if mode == "I" or mode.startswith("I;16"):
        return _integer_to_unit(np.asarray(image), bits)
    if mode == "F":
        return _float_to_unit(np.asarray(image, dtype=np.float32))
    if mode == "LA":
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
        return composite_alpha(pixels[..., 0], pixels[..., 1])
    if mode == "RGBA":
        pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
        return composite_alpha(pixels[..., :3] @ _LUMA_WEIGHTS, pixels[..., 3])
    if mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError:
            raise DataError(
                f"cannot read {label}: unsupported image mode {mode!r}; save it as RGB or grayscale"
            ) from None
    pixels = np.asarray(image, dtype=np.float32) / np.float32(255)
    return np.clip(pixels @ _LUMA_WEIGHTS, 0.0, 1.0).astype(np.float32, copy=False)


def composite_alpha(luminance: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten a transparent image onto a background that contrasts with its ink.

    Transparent pixels have no colour of their own, and drawing apps often
    store strokes as alpha over uniformly black (or white) colour; flattening
    such a drawing onto the wrong background erases it. So the background is
    white when the visible pixels are dark on average (alpha-weighted mean
    luminance below 0.5) and black when they are light. A fully opaque image
    is returned unchanged; a fully transparent one becomes uniform white.

    Args:
        luminance: ``(H, W)`` colour luminance in ``[0, 1]``.
        alpha: ``(H, W)`` opacity in ``[0, 1]``.

    Returns:
        ``(H, W)`` float32 luminance in ``[0, 1]``.
    """
    luminance = luminance.astype(np.float32, copy=False)
    if alpha.size == 0 or float(alpha.min()) >= 1.0:
        return np.clip(luminance, 0.0, 1.0)
    weight = float(alpha.sum(dtype=np.float64))
    if weight <= 0.0:
        return np.ones_like(luminance, dtype=np.float32)
    ink_luminance = float((luminance * alpha).sum(dtype=np.float64)) / weight
    background = 1.0 if ink_luminance < 0.5 else 0.0
    flat = luminance * alpha + np.float32(background) * (1.0 - alpha)
    return np.clip(flat, 0.0, 1.0).astype(np.float32, copy=False)


def _integer_to_unit(values: np.ndarray, bits: int | None) -> np.ndarray:
    values = values.astype(np.float64)
    if bits is None:
        low, high = float(values.min(initial=0)), float(values.max(initial=0))
        if low >= 0 and high <= 65535:
            bits = 16
        elif low >= 0 and high <= 2**32 - 1:
            bits = 32
        else:
            return _stretch(values)
    return np.clip(values / float(2**bits - 1), 0.0, 1.0).astype(np.float32)


def _float_to_unit(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if low >= 0.0 and high <= 1.0:
        return values
    if low >= 0.0 and high <= 255.0:
        return (values / np.float32(255)).astype(np.float32)
    return _stretch(values)


def _stretch(values: np.ndarray) -> np.ndarray:
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.float32)
    return ((values - low) / (high - low)).astype(np.float32)
