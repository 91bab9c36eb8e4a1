"""Array operations on grayscale pictures (numpy and Pillow only): luminance, resizing, morphology, thresholds, connected runs."""

from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image

from lenet_cli.core.errors import DataError
from lenet_cli.data.images import (
    image_to_luminance,
)


def as_luminance(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        image.load()
        return image_to_luminance(image)
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return image_to_luminance(Image.fromarray(array))
    if array.ndim != 2:
        raise DataError(f"expected a 2-D grayscale array or (H, W, 3|4) uint8 RGB(A); received shape {array.shape}")
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
            raise DataError(
                f"float images must hold values in [0, 1]; received range [{array.min():g}, {array.max():g}]"
            )
        return np.clip(array, 0.0, 1.0)
    raise DataError(f"unsupported array dtype {array.dtype}; use uint8, uint16, bool or float in [0, 1]")


def border(values: np.ndarray) -> np.ndarray:
    h, w = values.shape
    ring = max(1, round(0.03 * min(h, w)))
    if 2 * ring >= h or 2 * ring >= w:
        return values.ravel()
    return np.concatenate(
        [
            values[:ring].ravel(),
            values[-ring:].ravel(),
            values[ring:-ring, :ring].ravel(),
            values[ring:-ring, -ring:].ravel(),
        ]
    )


def quantile(values: np.ndarray, q: float) -> float:
    """A cheap lower quantile (no interpolation): np.percentile costs more than the rest of a small image."""
    flat = values.ravel()
    k = int(q * (flat.size - 1))
    return float(np.partition(flat, k)[k])


def robust_deviation(values: np.ndarray, centre: float | None = None) -> float:
    """The standard deviation of Gaussian noise in ``values``, read off the median absolute deviation from ``centre``.

    ``centre`` defaults to the values' median. A robust scale ignores the ink
    or the article among the paper pixels it is measured on.
    """
    if centre is None:
        centre = quantile(values, 0.5)
    return 1.4826 * quantile(np.abs(values - centre), 0.5)


def minus_block_median(values: np.ndarray, blocks: int) -> np.ndarray:
    """Each pixel minus the median of its block (a ``blocks`` x ``blocks`` grid): the local background removed."""
    h, w = values.shape
    bh, bw = math.ceil(h / blocks), math.ceil(w / blocks)
    grid = np.pad(values, ((0, bh * blocks - h), (0, bw * blocks - w)), mode="edge")
    cells = grid.reshape(blocks, bh, blocks, bw).transpose(0, 2, 1, 3).reshape(blocks, blocks, bh * bw)
    median = np.median(cells, axis=2).astype(np.float32)
    return values - np.repeat(np.repeat(median, bh, axis=0), bw, axis=1)[:h, :w]


def subsample(values: np.ndarray, max_side: int) -> np.ndarray:
    step = max(1, math.ceil(max(values.shape) / max_side))
    return values[::step, ::step]


def resize(values: np.ndarray, height: int, width: int, method=Image.Resampling.LANCZOS) -> np.ndarray:
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))
    return np.asarray(image.resize((width, height), method), dtype=np.float32)


@functools.lru_cache(maxsize=16)
def block_design(rows: int, cols: int) -> np.ndarray:
    """Quadratic terms over a grid of blocks (for :func:`paper_blocks`)."""
    v, u = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, cols), indexing="ij")
    design = np.stack(
        [np.ones(rows * cols), u.ravel(), v.ravel(), (u * u).ravel(), (u * v).ravel(), (v * v).ravel()], 1
    )
    design.flags.writeable = False
    return design


def otsu(values: np.ndarray) -> float:
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


def label_runs(mask: np.ndarray):
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


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    for _ in range(radius):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def grey_morph(values: np.ndarray, reduce, square: bool) -> np.ndarray:
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


def centre_of_mass(values: np.ndarray) -> tuple[float, float]:
    total = float(values.sum(dtype=np.float64))
    if total <= 0.0:
        return (values.shape[0] - 1) / 2, (values.shape[1] - 1) / 2
    com_y = float(values.sum(axis=1, dtype=np.float64) @ np.arange(values.shape[0])) / total
    com_x = float(values.sum(axis=0, dtype=np.float64) @ np.arange(values.shape[1])) / total
    return com_y, com_x


_SHARPEN_KERNEL = np.exp(-0.5 * np.arange(-2, 3) ** 2)


_SHARPEN_KERNEL = (_SHARPEN_KERNEL / _SHARPEN_KERNEL.sum()).astype(np.float32)


def sharpen(values: np.ndarray, amount: float = 0.5) -> np.ndarray:
    """Unsharp mask with a Gaussian of sigma 1, as Fashion-MNIST sharpened after resizing."""
    padded = np.pad(values, 2)
    blurred = sum(k * padded[:, i : i + values.shape[1]] for i, k in enumerate(_SHARPEN_KERNEL))
    blurred = sum(k * blurred[i : i + values.shape[0], :] for i, k in enumerate(_SHARPEN_KERNEL))
    return values + amount * (values - blurred)
