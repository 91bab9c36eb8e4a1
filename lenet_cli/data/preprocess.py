"""Turn a decoded image into the exact 28x28 input the network was trained on.

A LeNet trained on MNIST has only ever seen white strokes on a black
background, cropped to their bounding box, scaled to fit 20x20 and placed so
that their centre of mass sits at pixel (14, 14); Fashion-MNIST articles are
light on black, trimmed, scaled so the longest edge is 28 and centred. A
photo of a digit on paper looks nothing like that, so ``lenet predict``
re-creates each dataset's own recipe here (numpy and Pillow only, so predict
runs without TensorFlow):

* ``mnist``: find the ink (remove uneven lighting, Otsu threshold, drop
  specks), crop, fit into 20x20 keeping the aspect ratio, paste into 28x28
  by centre of mass.
* ``fashion``: find the article, trim, fit the longest edge to 28, sharpen
  lightly, centre.
* ``none``: grayscale, resize to 28x28, optionally invert.

Values follow the training convention ``pixel / 255``: float32 in ``[0, 1]``,
content bright on a dark background. A 28x28 image that already has the
dataset's layout (dark background; for ``mnist`` content within 20x20 with
its centre of mass within a pixel of (14, 14), for ``fashion`` content
spanning at least 26 pixels) is returned as it is, so exported dataset
samples and saved inputs predict exactly as in ``lenet evaluate``.

**Blank images.** An image in which no content can be found (a uniform
colour, noise only, or contrast below :data:`MIN_CONTRAST`) is never turned
into a confident-looking input: :func:`preprocess` raises
:class:`BlankImageError`, a :class:`~lenet_cli.core.errors.LenetError` whose
message starts with ``no content found``. :func:`preprocess_batch` can
instead record it per image (``PreprocessResult.blank``).
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lenet_cli.core.config import IMAGE_SIZE
from lenet_cli.core.config import INVERT_MODES as INVERT_CHOICES
from lenet_cli.core.config import PREPROCESS_MODES as MODES
from lenet_cli.core.errors import LenetError
from lenet_cli.data.images import (
    ImageSource,
    image_to_luminance,
    quote_name,
    read_image,
)
from lenet_cli.store.atomic import write_bytes_atomic

SIZE = IMAGE_SIZE
"""Side of the network's input, in pixels."""

MNIST_BOX = 20
"""MNIST digits were scaled to fit a 20x20 box inside the 28x28 field."""

MNIST_CENTRE = 14.0
"""Where MNIST puts the centre of mass, in pixel indices (t10k mean: 13.99, 14.01)."""

MIN_CONTRAST = 0.1
"""Content must differ from the background by at least this (10 % of full scale)."""

WORK_MAX_SIDE = 1024
"""Larger images are first reduced to this many pixels on the longest side (speed only)."""

MIN_EXTENT = 0.02
"""Content spans at least 2 % of the image's longest side (and 4 pixels); anything smaller is a speck."""

MIN_EXTENT_PIXELS = 4

NEAR_PIECE_FRACTION = 0.005
"""A piece beside the largest one counts when it has at least 0.5 % of its area."""

STROKE_RANGE = (1.6, 2.2)
"""Stroke widths (2 x area / outline, in pixels of the 20x20 box) left as they are: MNIST test digits' interquartile range (1.57-2.19)."""

FASHION_TRIM = 0.05
"""Fashion-MNIST trimmed edges within 5 % of the corner colour."""


@dataclass(frozen=True)
class PreprocessOptions:
    """How to turn an image into network input.

    Attributes:
        mode: ``mnist`` (digit: crop, 20x20 box, centre of mass), ``fashion``
            (article: trim, longest edge 28, centred) or ``none`` (grayscale
            and resize only).
        invert: ``auto`` inverts when the background is light (dark ink on
            paper, a product on white); ``always`` treats the image as dark
            content on a light background; ``never`` as light on dark.
    """

    mode: str = "mnist"
    invert: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise LenetError(f"unknown preprocessing mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.invert not in INVERT_CHOICES:
            raise LenetError(f"unknown invert setting {self.invert!r}; choose one of: {', '.join(INVERT_CHOICES)}")


class BlankImageError(LenetError):
    """No content was found: the image is uniform, noise only, or too low-contrast."""


@dataclass(frozen=True)
class PreprocessResult:
    """One input of :func:`preprocess_batch`: the 28x28 array, or the error that stopped it.

    Attributes:
        name: The source as shown in messages (quoted path, or ``'<stdin>'``).
        array: ``(28, 28)`` float32 in ``[0, 1]``, or ``None`` when ``error`` is set.
        error: The :class:`LenetError` (possibly a :class:`BlankImageError`), or ``None``.
    """

    name: str
    array: np.ndarray | None = None
    error: LenetError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def blank(self) -> bool:
        return isinstance(self.error, BlankImageError)


def preprocess(image, options: PreprocessOptions | None = None, *, name: str | None = None) -> np.ndarray:
    """Turn one decoded image into network input.

    Args:
        image: A Pillow image (any mode), or a numpy array: 2-D luminance
            (``uint8`` 0-255, ``uint16`` 0-65535, ``bool``, or float in
            ``[0, 1]``), or ``(H, W, 3|4)`` ``uint8`` RGB(A).
        options: Mode and inversion; defaults to ``PreprocessOptions()``.
        name: How to call the image in a blank-image message (a path or
            label; it is quoted and escaped for display).

    Returns:
        A float32 array of shape ``(28, 28)`` with values in ``[0, 1]``,
        content bright on black.

    Raises:
        BlankImageError: No content was found.
        LenetError: ``image`` is an array of a shape or dtype that is not an image.
    """
    options = options or PreprocessOptions()
    luminance = _as_luminance(image)
    if luminance.size == 0:
        raise _blank(name, "it has no pixels")
    if options.mode == "none":
        return _preprocess_none(luminance, options.invert, name)
    invert = decide_invert(luminance, options.invert)
    if luminance.shape == (SIZE, SIZE) and not invert:
        ready = _already_in_dataset_format(luminance, options.mode)
        if ready is not None:
            return ready
    ink = _ink_at_working_size(luminance, invert)
    if options.mode == "mnist":
        return _preprocess_mnist(ink, invert, name)
    return _preprocess_fashion(ink, invert, name)


def load_and_preprocess(source: ImageSource, options: PreprocessOptions | None = None, *, name: str | None = None) -> np.ndarray:
    """Read an image file (or its bytes) and preprocess it; errors name the file.

    Args:
        source: A path, or the bytes of an image file.
        options: Mode and inversion.
        name: How to call the source in messages; defaults to the path or ``<stdin>``.

    Returns:
        ``(28, 28)`` float32 in ``[0, 1]``.

    Raises:
        BlankImageError: No content was found.
        LenetError: The file cannot be read (see :func:`~lenet_cli.data.images.read_image`).
    """
    if name is None:
        name = "<stdin>" if isinstance(source, (bytes, bytearray, memoryview)) else os.fspath(source)
    luminance = read_image(source, name=name)
    return preprocess(luminance, options, name=name)


def preprocess_batch(
    sources: Iterable[ImageSource],
    options: PreprocessOptions | None = None,
    *,
    keep_going: bool = False,
) -> list[PreprocessResult]:
    """Read and preprocess many images, one result per source in order.

    Args:
        sources: Paths, or bytes of image files.
        options: Mode and inversion, shared by all.
        keep_going: Record a :class:`LenetError` (blank, unreadable) in the
            failing image's result and carry on, instead of raising it.

    Returns:
        One :class:`PreprocessResult` per source. Stack the good ones with
        ``np.stack([r.array for r in results if r.ok])``.

    Raises:
        LenetError: The first failure, unless ``keep_going``.
    """
    options = options or PreprocessOptions()
    results = []
    for source in sources:
        label = _label(source, None)
        try:
            array = load_and_preprocess(source, options)
        except LenetError as exc:
            if not keep_going:
                raise
            results.append(PreprocessResult(name=label, error=exc))
        else:
            results.append(PreprocessResult(name=label, array=array))
    return results


def to_uint8(array28: np.ndarray) -> np.ndarray:
    """The 8-bit image of a preprocessed input: ``round(x * 255)``, as the datasets store it."""
    return np.clip(np.rint(np.asarray(array28, dtype=np.float64) * 255.0), 0, 255).astype(np.uint8)


def save_preprocessed_png(array28: np.ndarray, path: str | os.PathLike) -> os.PathLike:
    """Write a preprocessed input as an exact 28x28 grayscale PNG, atomically.

    Reading it back and dividing by 255 gives the network input to within
    half a grey level, so people can see what the network saw and feed it
    back unchanged (such files pass through :func:`preprocess` as they are).

    Args:
        array28: ``(28, 28)`` values in ``[0, 1]``.
        path: Destination file; parent directories are created.

    Returns:
        The path written.

    Raises:
        LenetError: ``array28`` is not 28x28.
    """
    array28 = np.asarray(array28)
    if array28.shape != (SIZE, SIZE):
        raise LenetError(f"a preprocessed image must be {SIZE}x{SIZE}; received shape {array28.shape}")
    buffer = io.BytesIO()
    Image.fromarray(to_uint8(array28)).save(buffer, format="PNG")
    return write_bytes_atomic(path, buffer.getvalue())


def decide_invert(luminance: np.ndarray, setting: str = "auto") -> bool:
    """Whether an image is dark content on a light background and must be inverted.

    ``auto`` looks at which side of the background level the outliers lie:
    the background is the median of a thin border ring, and the content is
    whichever extreme (0.5th or 99.5th percentile) is further from it. When
    neither stands out (grey paper half in shadow: the lit part is as far
    above the border as the ink is below it), it asks which extreme lies
    further outside the whole range of the border's levels (shadowed and
    lit paper both reach the border; ink seldom does), then the same
    question of each pixel's difference from the median of its block (grids of 3x3,
    4x4 and 5x5 blocks, averaged), where smooth shadows mostly vanish and
    strokes remain. When nothing stands out there either, a
    bright border decides.

    Args:
        luminance: ``(H, W)`` luminance in ``[0, 1]``.
        setting: ``auto``, ``always`` or ``never``.

    Returns:
        True to invert.
    """
    if setting == "always":
        return True
    if setting == "never":
        return False
    ring = _border(luminance)
    background = _quantile(ring, 0.5)
    sample = _subsample(luminance, 256)
    values = np.sort(sample, axis=None)
    low, high = values[int(0.005 * (values.size - 1))], values[int(0.995 * (values.size - 1))]
    darker, lighter = background - float(low), float(high) - background
    if max(darker, lighter) >= MIN_CONTRAST and max(darker, lighter) >= 2 * min(darker, lighter):
        return darker > lighter
    darker, lighter = _quantile(ring, 0.005) - float(low), float(high) - _quantile(ring, 0.995)
    if max(darker, lighter) >= MIN_CONTRAST / 2 and max(darker, lighter) >= 2 * max(min(darker, lighter), 0.0):
        return darker > lighter
    small = _subsample(luminance, 64)
    details = [_minus_block_median(small, blocks) for blocks in (3, 4, 5)]
    darker = -float(np.mean([_quantile(detail, 0.005) for detail in details]))
    lighter = float(np.mean([_quantile(detail, 0.995) for detail in details]))
    if max(darker, lighter) >= MIN_CONTRAST / 2 and max(darker, lighter) >= 1.3 * min(darker, lighter):
        return darker > lighter
    return background > 0.5


# --- internals ---------------------------------------------------------------


def _label(source, name: str | None) -> str:
    if name is not None:
        return quote_name(name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return quote_name("<stdin>")
    return quote_name(source)


def _blank(name: str | None, why: str) -> BlankImageError:
    where = f" in {quote_name(name)}" if name else ""
    return BlankImageError(
        f"no content found{where}: {why} (a uniform or very faint image has nothing to classify; "
        "check the file, or raise its contrast)"
    )


def _as_luminance(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image.load()
        return image_to_luminance(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return image_to_luminance(Image.fromarray(array))
    if array.ndim != 2:
        raise LenetError(f"expected a 2-D grayscale array or (H, W, 3|4) uint8 RGB(A); received shape {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype == np.uint16:
        return array.astype(np.float32) * np.float32(1 / 65535)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
        if array.size and 0.0 <= array.min() and array.max() <= 1.0:
            return array
        array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0)
        if array.size and (array.min() < -1e-3 or array.max() > 1 + 1e-3):
            raise LenetError(
                f"float images must hold values in [0, 1]; received range [{array.min():g}, {array.max():g}]"
            )
        return np.clip(array, 0.0, 1.0)
    raise LenetError(f"unsupported array dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")


def _border(values: np.ndarray) -> np.ndarray:
    h, w = values.shape
    ring = max(1, round(0.03 * min(h, w)))
    if 2 * ring >= h or 2 * ring >= w:
        return values.ravel()
    return np.concatenate(
        [values[:ring].ravel(), values[-ring:].ravel(), values[ring:-ring, :ring].ravel(), values[ring:-ring, -ring:].ravel()]
    )


def _quantile(values: np.ndarray, q: float) -> float:
    """A cheap lower quantile (no interpolation): np.percentile costs more than the rest of a small image."""
    flat = values.ravel()
    k = int(q * (flat.size - 1))
    return float(np.partition(flat, k)[k])


def _minus_block_median(values: np.ndarray, blocks: int) -> np.ndarray:
    """Each pixel minus the median of its block (a ``blocks`` x ``blocks`` grid): the local background removed."""
    h, w = values.shape
    bh, bw = math.ceil(h / blocks), math.ceil(w / blocks)
    grid = np.pad(values, ((0, bh * blocks - h), (0, bw * blocks - w)), mode="edge")
    cells = grid.reshape(blocks, bh, blocks, bw).transpose(0, 2, 1, 3).reshape(blocks, blocks, bh * bw)
    median = np.median(cells, axis=2).astype(np.float32)
    return values - np.repeat(np.repeat(median, bh, axis=0), bw, axis=1)[:h, :w]


def _subsample(values: np.ndarray, max_side: int) -> np.ndarray:
    step = max(1, math.ceil(max(values.shape) / max_side))
    return values[::step, ::step]


def _preprocess_none(luminance: np.ndarray, invert_setting: str, name: str | None) -> np.ndarray:
    out = luminance
    if decide_invert(luminance, invert_setting):
        out = 1.0 - out
    if out.shape != (SIZE, SIZE):
        out = _resize(out, SIZE, SIZE)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    if float(out.max() - out.min()) < MIN_CONTRAST:
        raise _blank(name, f"its contrast is below {MIN_CONTRAST:.0%}")
    return out


def _already_in_dataset_format(luminance: np.ndarray, mode: str) -> np.ndarray | None:
    """Return a 28x28 image unchanged when it already follows the dataset's layout.

    Exported dataset samples (and our own saved inputs) then predict exactly
    as in ``lenet evaluate``; re-cropping them would only blur them.
    """
    rows, cols = np.nonzero(luminance > (2 / 255))
    if rows.size == 0:
        return None
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    if float(luminance.max()) < MIN_CONTRAST:
        return None
    if mode == "mnist":
        if max(height, width) > MNIST_BOX:
            return None
        com_y, com_x = _centre_of_mass(luminance)
        if abs(com_y - MNIST_CENTRE) > 1.0 or abs(com_x - MNIST_CENTRE) > 1.0:
            return None
    else:
        if max(height, width) < SIZE - 2 or _quantile(_border(luminance), 0.5) > 2 / 255:
            return None
    return np.clip(luminance, 0.0, 1.0).astype(np.float32)


def _ink_at_working_size(luminance: np.ndarray, invert: bool) -> np.ndarray:
    """Content-bright float32 image, reduced to at most WORK_MAX_SIDE pixels on the longest side."""
    if max(luminance.shape) > WORK_MAX_SIDE:
        scale = WORK_MAX_SIDE / max(luminance.shape)
        h, w = luminance.shape
        luminance = _resize(luminance, max(1, round(h * scale)), max(1, round(w * scale)), Image.Resampling.BOX)
    ink = (1.0 - luminance) if invert else luminance
    return ink.astype(np.float32, copy=False)


def _resize(values: np.ndarray, height: int, width: int, method=Image.Resampling.LANCZOS) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(image.resize((width, height), method), dtype=np.float32)


@dataclass
class _Content:
    signal: np.ndarray  # background removed, 0 = background, ~level = ink
    mask: np.ndarray  # bool, kept components only
    bbox: tuple[int, int, int, int]  # y0, y1, x0, x1 (exclusive ends)
    noise: float  # robust std of the background in `signal`
    threshold: float
    level: float  # typical ink value (80th percentile inside the mask)


def _find_content(ink: np.ndarray, *, inverted: bool, digit: bool, name: str | None) -> _Content:
    """Separate content from background, or raise BlankImageError.

    The background is a smooth surface fitted robustly to the image (so
    uneven lighting and grey paper disappear). A digit is what stands above
    it by more than the Otsu threshold (and four noise deviations), in
    connected pieces that are not specks. An article is everything more than
    5 % (and four noise deviations) from the background, as Fashion-MNIST
    trimmed, since a faint shirt beside dark trousers is still part of the
    picture; small pieces far away still count. Light paper is lit, so for
    inverted images the ink is measured relative to the local paper
    brightness (reflectance): ``1 - luminance / paper``.
    """
    background, noise = _fit_background(ink, border_only=not digit)
    signal = ink - background
    if inverted:
        paper = np.maximum(1.0 - background, 0.05)
        signal /= paper
        noise /= _quantile(paper, 0.5)
    signal = np.clip(signal, 0.0, 1.0)
    if float(signal.max(initial=0.0)) < MIN_CONTRAST:
        raise _blank(name, f"its contrast is below {MIN_CONTRAST:.0%}")
    if digit:
        threshold = max(_otsu(_subsample(signal, 256)), 4.0 * noise, MIN_CONTRAST / 2)
    else:
        threshold = max(4.0 * noise, FASHION_TRIM)
    mask = signal >= threshold
    mask, bbox = _drop_specks(mask, far_piece_fraction=0.25 if digit else 0.02)
    if bbox is None:
        raise _blank(name, "only noise or specks were found")
    level = _quantile(signal[mask], 0.8)
    if level < MIN_CONTRAST:
        raise _blank(name, f"its contrast is below {MIN_CONTRAST:.0%}")
    return _Content(signal, mask, bbox, noise, threshold, level)


def _fit_background(ink: np.ndarray, *, border_only: bool) -> tuple[np.ndarray, float]:
    """Robust low-order surface under the content, and the noise around it.

    Content is brighter than the background (after any inversion). The fit
    starts from the darkest 40 % of each of 4x4 blocks (background wherever
    a block is not mostly ink, and spread over the whole image even under
    uneven lighting), then refits a few times to the pixels within 2.5
    noise deviations of the surface. For digits a quadratic over the whole
    image follows uneven lighting; articles may cover most of the frame, so
    there a plane is fitted to the border.
    """
    h, w = ink.shape
    sample = _subsample(ink, 64)
    design, selected, full_terms = _background_model(h, w, border_only)
    terms = design.shape[1]
    if border_only:
        keep = _darkest_of_each_block(sample, selected, 0.4).ravel()
    else:
        keep = _paper_blocks(sample, selected).ravel()
    target = sample.ravel().astype(np.float64)
    selected = selected.ravel()
    if keep.sum() < terms:
        keep = selected
    coef = np.zeros(terms)
    noise = 0.0
    for _ in range(6):
        chosen = design[keep]
        normal = chosen.T @ chosen + 1e-9 * np.eye(terms)
        coef = np.linalg.solve(normal, chosen.T @ target[keep])
        residual = target - design @ coef
        kept = residual[keep]
        centre = _quantile(kept, 0.5)
        noise = 1.4826 * _quantile(np.abs(kept - centre), 0.5)
        new_keep = selected & (np.abs(residual - centre) <= max(2.5 * noise, 0.01))
        if new_keep.sum() < 4 * terms or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    background = np.zeros((h, w), dtype=np.float32)
    for c, t in zip(coef, full_terms):
        background += np.float32(c) * t
    return background, noise


@functools.lru_cache(maxsize=16)
def _background_model(h: int, w: int, border_only: bool):
    """Design matrix over the subsample grid, which pixels may be background, and the terms over the full image.

    Cached per image size: a batch of same-sized images builds it once.
    """
    step = max(1, math.ceil(max(h, w) / 64))
    v = (np.arange(0, h, step, dtype=np.float64) / max(h - 1, 1)) * 2 - 1
    u = (np.arange(0, w, step, dtype=np.float64) / max(w - 1, 1)) * 2 - 1
    vv, uu = np.meshgrid(v, u, indexing="ij")
    if border_only:
        terms = [np.ones_like(uu), uu, vv]
        selected = np.zeros(uu.shape, dtype=bool)
        ring = max(1, round(0.05 * min(uu.shape)))
        selected[:ring], selected[-ring:], selected[:, :ring], selected[:, -ring:] = True, True, True, True
    else:
        terms = [np.ones_like(uu), uu, vv, uu * uu, uu * vv, vv * vv]
        selected = np.ones(uu.shape, dtype=bool)
    if selected.sum() < 4 * len(terms):
        terms = terms[:1]
    design = np.stack([t.ravel() for t in terms], axis=1)
    v_full = (np.arange(h, dtype=np.float32) / max(h - 1, 1) * 2 - 1)[:, None]
    u_full = (np.arange(w, dtype=np.float32) / max(w - 1, 1) * 2 - 1)[None, :]
    full_terms = [np.float32(1.0), u_full, v_full, u_full * u_full, u_full * v_full, v_full * v_full][: len(terms)]
    for array in (design, selected, *full_terms[1:]):
        array.flags.writeable = False
    return design, selected, full_terms


def _darkest_of_each_block(sample: np.ndarray, selected: np.ndarray, fraction: float, blocks: int = 4) -> np.ndarray:
    """The selected pixels at or below the ``fraction`` quantile of their block (of a 4x4 grid)."""
    h, w = sample.shape
    bh, bw = math.ceil(h / blocks), math.ceil(w / blocks)
    grid = np.full((blocks * bh, blocks * bw), np.inf, dtype=np.float32)
    grid[:h, :w] = np.where(selected, sample, np.inf)
    cells = grid.reshape(blocks, bh, blocks, bw).transpose(0, 2, 1, 3).reshape(blocks, blocks, bh * bw)
    ordered = np.sort(cells, axis=2)
    valid = np.isfinite(ordered).sum(axis=2)
    k = np.maximum((fraction * (valid - 1)).astype(np.int64), 0)
    cut = np.take_along_axis(ordered, k[..., None], axis=2)[..., 0]
    cut = np.where(valid > 0, cut, -np.inf)
    cut_map = np.repeat(np.repeat(cut, bh, axis=0), bw, axis=1)[:h, :w]
    return selected & (sample <= cut_map)


def _paper_blocks(sample: np.ndarray, selected: np.ndarray, blocks: int = 8) -> np.ndarray:
    """The darkest 40 % of each block of an 8x8 grid, leaving out blocks that are mostly ink.

    A bold stroke (a marker, up to a third of the digit's height) in a
    tightly cropped picture fills whole blocks, whose darkest pixels are
    then ink. Each block's 40 % level is compared with a quadratic surface
    fitted to the lowest 30 % of all blocks' levels (trimmed least squares:
    ink only ever lies above the paper); blocks far above it are left out.
    """
    h, w = sample.shape
    bh, bw = math.ceil(h / blocks), math.ceil(w / blocks)
    rows, cols = math.ceil(h / bh), math.ceil(w / bw)
    grid = np.full((rows * bh, cols * bw), np.inf, dtype=np.float32)
    grid[:h, :w] = np.where(selected, sample, np.inf)
    cells = np.sort(grid.reshape(rows, bh, cols, bw).transpose(0, 2, 1, 3).reshape(rows, cols, bh * bw), axis=2)
    valid = np.isfinite(cells).sum(axis=2)
    k = np.maximum((0.4 * (valid - 1)).astype(np.int64), 0)
    cut = np.take_along_axis(cells, k[..., None], axis=2)[..., 0].astype(np.float64)
    usable = (valid > 0).ravel()
    if usable.sum() >= 12:
        design = _block_design(rows, cols)
        level = np.where(usable, cut.ravel(), 0.0)
        chosen = usable.copy()
        for _ in range(4):
            picked = design[chosen]
            coef = np.linalg.solve(picked.T @ picked + 1e-9 * np.eye(6), picked.T @ level[chosen])
            residual = level - design @ coef
            cutoff = _quantile(residual[usable], 0.3)
            now = usable & (residual <= cutoff)
            if np.array_equal(now, chosen):
                break
            chosen = now
        kept = residual[chosen]
        spread = 1.4826 * _quantile(np.abs(kept - _quantile(kept, 0.5)), 0.5)
        paper = (residual <= max(cutoff + 4 * spread, cutoff + 0.05)).reshape(rows, cols)
        cut = np.where(paper, cut, -np.inf)
    cut = np.where(valid > 0, cut, -np.inf)
    cut_map = np.repeat(np.repeat(cut, bh, axis=0), bw, axis=1)[:h, :w]
    return selected & (sample <= cut_map)


@functools.lru_cache(maxsize=16)
def _block_design(rows: int, cols: int) -> np.ndarray:
    """Quadratic terms over a grid of blocks (for :func:`_paper_blocks`)."""
    v, u = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    design = np.stack([np.ones(rows * cols), u.ravel(), v.ravel(), (u * u).ravel(), (u * v).ravel(), (v * v).ravel()], 1)
    design.flags.writeable = False
    return design


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold over 256 bins spanning ``[0, max]``."""
    top = float(values.max(initial=0.0))
    if top <= 0.0:
        return 0.0
    bins = np.minimum((values.ravel() * (255.0 / top)).astype(np.int32), 255)
    hist = np.bincount(bins, minlength=256).astype(np.float64)
    prob = hist / hist.sum()
    omega = np.cumsum(prob)
    mu = np.cumsum(prob * np.arange(256))
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu[-1] * omega - mu) ** 2 / (omega * (1.0 - omega))
    between[~np.isfinite(between)] = 0.0
    return (int(np.argmax(between)) + 1) * top / 255.0


def _drop_specks(mask: np.ndarray, far_piece_fraction: float) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Keep the largest connected piece and the pieces that plausibly belong with it.

    A piece stays if it is at least ``far_piece_fraction`` of the largest
    one's area, or if it is not tiny and lies within the largest piece's
    bounding box grown by a quarter on each side (a detached bar of a 5)
    and at least :data:`NEAR_PIECE_FRACTION` of the largest (noise on a
    white background clipped at full white can pass a low threshold in
    clusters, and would stretch the box). When even the largest piece spans less than :data:`MIN_EXTENT` of the
    image (and 4 pixels), there are only specks: the bounding box is None.
    """
    h, w = mask.shape
    rows, starts, ends, labels = _label_runs(mask)
    if rows.size == 0:
        return mask, None
    lengths = ends - starts
    count = int(labels.max()) + 1
    area = np.bincount(labels, weights=lengths, minlength=count)
    y0 = np.full(count, h)
    y1 = np.zeros(count, dtype=np.int64)
    x0 = np.full(count, w)
    x1 = np.zeros(count, dtype=np.int64)
    np.minimum.at(y0, labels, rows)
    np.maximum.at(y1, labels, rows + 1)
    np.minimum.at(x0, labels, starts)
    np.maximum.at(x1, labels, ends)
    largest = int(np.argmax(area))
    min_area = max(3.0, 2e-5 * h * w)
    extent = max(y1[largest] - y0[largest], x1[largest] - x0[largest])
    if area[largest] < min_area or extent < max(MIN_EXTENT_PIXELS, MIN_EXTENT * max(h, w)):
        return mask, None
    gy = 0.25 * (y1[largest] - y0[largest])
    gx = 0.25 * (x1[largest] - x0[largest])
    near = (
        (y0 >= y0[largest] - gy) & (y1 <= y1[largest] + gy) & (x0 >= x0[largest] - gx) & (x1 <= x1[largest] + gx)
    )
    keep = (area >= max(far_piece_fraction * area[largest], min_area)) | (near & (area >= max(min_area, NEAR_PIECE_FRACTION * area[largest])))
    keep_run = keep[labels]
    kept = np.zeros((h, w + 1), dtype=np.int8)
    kept[rows[keep_run], starts[keep_run]] = 1  # runs in a row are separated, so no index repeats
    kept[rows[keep_run], ends[keep_run]] = -1
    kept_mask = np.cumsum(kept, axis=1, dtype=np.int8)[:, :w] > 0
    bbox = (int(y0[keep].min()), int(y1[keep].max()), int(x0[keep].min()), int(x1[keep].max()))
    return kept_mask, bbox


def _label_runs(mask: np.ndarray):
    """8-connected components of a mask, as horizontal runs with a label each.

    Runs are found with numpy; runs in adjacent rows that touch are joined
    with a small union-find, so the cost follows the number of runs, not
    of pixels.
    """
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, ends = np.nonzero(edges == -1)
    n = rows.size
    if n == 0:
        return rows, starts, ends, np.zeros(0, dtype=np.int64)
    stride = w + 2
    start_key = rows * stride + starts
    end_key = rows * stride + ends
    prev = (rows - 1) * stride
    lo = np.searchsorted(end_key, prev + starts, side="left")
    hi = np.searchsorted(start_key, prev + ends, side="right")
    counts = np.maximum(hi - lo, 0)
    first = np.repeat(np.arange(n), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    second = np.repeat(lo, counts) + offsets
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(first.tolist(), second.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return rows, starts, ends, labels.ravel()


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def _preprocess_mnist(ink: np.ndarray, inverted: bool, name: str | None) -> np.ndarray:
    content = _find_content(ink, inverted=inverted, digit=True, name=name)
    y0, y1, x0, x1 = content.bbox
    floor = min(2.0 * content.noise, 0.5 * content.threshold)
    crop = content.signal[y0:y1, x0:x1]
    crop = np.clip((crop - floor) / max(content.level - floor, 1e-6), 0.0, 1.0)
    height, width = crop.shape
    radius = max(1, round(max(height, width) / 40))
    crop = crop * _dilate(content.mask[y0:y1, x0:x1], radius)
    fit = MNIST_BOX / max(height, width)
    stroke = _stroke_width(content.mask[y0:y1, x0:x1]) * fit
    if not STROKE_RANGE[0] <= stroke <= STROKE_RANGE[1]:
        crop = _normalise_stroke(crop, fit, stroke)
        height, width = crop.shape
        fit = MNIST_BOX / max(height, width)
    digit = np.clip(_resize(crop, max(1, round(height * fit)), max(1, round(width * fit))), 0.0, 1.0)
    return _paste_by_centre_of_mass(digit, name)


def _stroke_width(mask: np.ndarray) -> float:
    """Mean width of the strokes in a mask: twice its area over the length of its outline."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    edges = (
        np.count_nonzero(mask[1:] != mask[:-1])
        + np.count_nonzero(mask[:, 1:] != mask[:, :-1])
        + np.count_nonzero(mask[0])
        + np.count_nonzero(mask[-1])
        + np.count_nonzero(mask[:, 0])
        + np.count_nonzero(mask[:, -1])
    )
    return 2.0 * area / max(int(edges), 1)


def _normalise_stroke(crop: np.ndarray, fit: float, stroke: float) -> np.ndarray:
    """Thin a marker's strokes, or thicken a pencil's, to the nearest width MNIST's writers used.

    Works at four times the 20x20 box: grey erosion or dilation by the
    difference, alternating 3x3 squares and crosses (close to a disk), then
    crops to the new extent so the digit still fills the box.
    """
    scale = 4
    h, w = crop.shape
    work = np.clip(_resize(crop, max(1, round(h * fit * scale)), max(1, round(w * fit * scale))), 0.0, 1.0)
    target = min(max(stroke, STROKE_RANGE[0]), STROKE_RANGE[1])
    steps = round(abs(stroke - target) * scale / 2)
    reduce = np.minimum if stroke > target else np.maximum
    for step in range(steps):
        work = _grey_morph(work, reduce, square=step % 2 == 0)
    rows, cols = np.nonzero(work > 0.05)
    if rows.size == 0:
        return crop
    return work[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _grey_morph(values: np.ndarray, reduce, square: bool) -> np.ndarray:
    """One step of grey erosion (``np.minimum``) or dilation (``np.maximum``) over a 3x3 square or cross."""
    fill = 0.0
    padded = np.pad(values, 1, constant_values=fill)
    h, w = values.shape
    out = values.copy()
    shifts = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if square:
        shifts += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    for dy, dx in shifts:
        out = reduce(out, padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w])
    return out


def _paste_by_centre_of_mass(digit: np.ndarray, name: str | None) -> np.ndarray:
    if float(digit.sum()) <= 0.0:
        raise _blank(name, "the content vanished when scaled to 20x20")
    com_y, com_x = _centre_of_mass(digit)
    height, width = digit.shape
    top = min(max(math.floor(MNIST_CENTRE - com_y + 0.5), 0), SIZE - height)
    left = min(max(math.floor(MNIST_CENTRE - com_x + 0.5), 0), SIZE - width)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return out


def _centre_of_mass(values: np.ndarray) -> tuple[float, float]:
    total = float(values.sum(dtype=np.float64))
    if total <= 0.0:
        return (values.shape[0] - 1) / 2, (values.shape[1] - 1) / 2
    com_y = float(values.sum(axis=1, dtype=np.float64) @ np.arange(values.shape[0])) / total
    com_x = float(values.sum(axis=0, dtype=np.float64) @ np.arange(values.shape[1])) / total
    return com_y, com_x


_SHARPEN_KERNEL = np.exp(-0.5 * np.arange(-2, 3) ** 2)
_SHARPEN_KERNEL = (_SHARPEN_KERNEL / _SHARPEN_KERNEL.sum()).astype(np.float32)


def _sharpen(values: np.ndarray, amount: float = 0.5) -> np.ndarray:
    """Unsharp mask with a Gaussian of sigma 1, as Fashion-MNIST sharpened after resizing."""
    padded = np.pad(values, 2)
    blurred = sum(k * padded[:, i : i + values.shape[1]] for i, k in enumerate(_SHARPEN_KERNEL))
    blurred = sum(k * blurred[i : i + values.shape[0], :] for i, k in enumerate(_SHARPEN_KERNEL))
    return values + amount * (values - blurred)


def _preprocess_fashion(ink: np.ndarray, inverted: bool, name: str | None) -> np.ndarray:
    content = _find_content(ink, inverted=inverted, digit=False, name=name)
    y0, y1, x0, x1 = content.bbox
    floor = 2.0 * content.noise
    crop = np.clip((content.signal[y0:y1, x0:x1] - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
    height, width = crop.shape
    fit = SIZE / max(height, width)
    new_h, new_w = min(SIZE, max(1, round(height * fit))), min(SIZE, max(1, round(width * fit)))
    article = np.clip(_sharpen(_resize(crop, new_h, new_w)), 0.0, 1.0)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    out[top : top + new_h, left : left + new_w] = article
    return out


__all__: Sequence[str] = (
    "BlankImageError",
    "INVERT_CHOICES",
    "MODES",
    "PreprocessOptions",
    "PreprocessResult",
    "decide_invert",
    "load_and_preprocess",
    "preprocess",
    "preprocess_batch",
    "save_preprocessed_png",
    "to_uint8",
)
