"""Finding the content of a picture: which side is ink, the paper's uneven lighting, and where the digit or article is."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lenet_cli.data.preprocess.image_ops import (
    block_design,
    border,
    centre_of_mass,
    label_runs,
    minus_block_median,
    otsu,
    quantile,
    resize,
    robust_deviation,
    subsample,
)
from lenet_cli.data.preprocess.settings import (
    FASHION_TRIM,
    MIN_CONTRAST,
    MIN_EXTENT,
    MIN_EXTENT_PIXELS,
    MNIST_BOX,
    MNIST_CENTRE,
    NEAR_PIECE_FRACTION,
    SIGNIFICANCE,
    SIZE,
    VISIBLE_CONTRAST,
    WORK_MAX_SIDE,
    blank_error,
)


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
    ring = border(luminance)
    background = quantile(ring, 0.5)
    sample = subsample(luminance, 256)
    values = np.sort(sample, axis=None)
    low, high = values[int(0.005 * (values.size - 1))], values[int(0.995 * (values.size - 1))]
    darker, lighter = background - float(low), float(high) - background
    if max(darker, lighter) >= MIN_CONTRAST and max(darker, lighter) >= 2 * min(darker, lighter):
        return darker > lighter
    darker, lighter = quantile(ring, 0.005) - float(low), float(high) - quantile(ring, 0.995)
    if max(darker, lighter) >= MIN_CONTRAST / 2 and max(darker, lighter) >= 2 * max(min(darker, lighter), 0.0):
        return darker > lighter
    small = subsample(luminance, 64)
    details = [minus_block_median(small, blocks) for blocks in (3, 4, 5)]
    darker = -float(np.mean([quantile(detail, 0.005) for detail in details]))
    lighter = float(np.mean([quantile(detail, 0.995) for detail in details]))
    if max(darker, lighter) >= MIN_CONTRAST / 2 and max(darker, lighter) >= 1.3 * min(darker, lighter):
        return darker > lighter
    return background > 0.5


def already_in_dataset_format(luminance: np.ndarray, mode: str) -> np.ndarray | None:
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
        com_y, com_x = centre_of_mass(luminance)
        if abs(com_y - MNIST_CENTRE) > 1.0 or abs(com_x - MNIST_CENTRE) > 1.0:
            return None
    else:
        if max(height, width) < SIZE - 2 or quantile(border(luminance), 0.5) > 2 / 255:
            return None
    return np.clip(luminance, 0.0, 1.0).astype(np.float32)


def ink_at_working_size(luminance: np.ndarray, invert: bool) -> np.ndarray:
    """Content-bright float32 image, reduced to at most WORK_MAX_SIDE pixels on the longest side."""
    if max(luminance.shape) > WORK_MAX_SIDE:
        scale = WORK_MAX_SIDE / max(luminance.shape)
        h, w = luminance.shape
        luminance = resize(luminance, max(1, round(h * scale)), max(1, round(w * scale)), Image.Resampling.BOX)
    ink = (1.0 - luminance) if invert else luminance
    return ink.astype(np.float32, copy=False)


@dataclass
class Content:
    signal: np.ndarray  # background removed, 0 = background, ~level = ink
    mask: np.ndarray  # bool, kept components only
    bbox: tuple[int, int, int, int]  # y0, y1, x0, x1 (exclusive ends)
    noise: float  # robust std of the background in `signal`
    threshold: float
    level: float  # typical ink value (80th percentile inside the mask)


def find_content(ink: np.ndarray, *, inverted: bool, digit: bool, name: str | None) -> Content:
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

    Content under :data:`MIN_CONTRAST` (a white shirt on white) is looked
    for by :func:`find_faint_content`; only a picture that is uniform, or
    noise, or specks, is refused.
    """
    background, noise = fit_background(ink, border_only=not digit)
    raw = ink - background
    paper_level = 1.0
    if inverted:
        paper = np.maximum(1.0 - background, 0.05)
        raw /= paper
        paper_level = quantile(paper, 0.5)
        noise /= paper_level
    signal = np.clip(raw, 0.0, 1.0)
    if float(signal.max(initial=0.0)) >= MIN_CONTRAST:
        found = pixel_content(signal, noise, digit)
        if found is not None:
            return found
    return find_faint_content(raw, paper_level, digit=digit, name=name)


def pixel_content(signal: np.ndarray, noise: float, digit: bool) -> Content | None:
    """Content that stands at least :data:`MIN_CONTRAST` above the background, pixel by pixel, or None."""
    if digit:
        threshold = max(otsu(subsample(signal, 256)), 4.0 * noise, MIN_CONTRAST / 2)
    else:
        threshold = max(4.0 * noise, FASHION_TRIM)
    mask = signal >= threshold
    mask, bbox = drop_specks(mask, far_piece_fraction=0.25 if digit else 0.02)
    if bbox is None:
        return None
    level = quantile(signal[mask], 0.8)
    if level < MIN_CONTRAST:
        return None
    return Content(signal, mask, bbox, noise, threshold, level)


def find_faint_content(raw: np.ndarray, paper_level: float, *, digit: bool, name: str | None) -> Content:
    """Content fainter than :data:`MIN_CONTRAST`, found against the noise of the background, or BlankImageError.

    The picture is averaged over a square as wide as the smallest content
    may be (:data:`MIN_EXTENT` of its longest side), which divides pixel
    noise by about that width; the noise left is the robust deviation of
    the average on the border ring, where the background was fitted. Content
    is refused as uniform when its strongest part differs from the
    background by less than :data:`VISIBLE_CONTRAST` of full scale (in
    luminance, before the division by the paper), and as noise when it
    stands less than :data:`SIGNIFICANCE` deviations above it. It is cut at
    four deviations (and half the visible contrast), then at half its own
    level (a digit at Otsu's threshold), which parts specks the average ran
    together; a piece narrower than the smallest content grown by the
    averaging is a speck.

    Args:
        raw: Content-bright signal with the background removed (not clipped), reflectance where inverted.
        paper_level: What ``raw`` was divided by (the paper's median luminance; 1 when not inverted).
    """
    h, w = raw.shape
    width = max(3, round(MIN_EXTENT * max(h, w)))
    smooth = box_mean(raw, width)
    ring = border(smooth)
    noise = robust_deviation(ring)
    smooth = np.clip(smooth, 0.0, 1.0)
    visible = VISIBLE_CONTRAST / max(paper_level, 1e-6)  # in the units of ``raw``
    if float(smooth.max(initial=0.0)) < visible:
        raise blank_error(name, f"its contrast is below {VISIBLE_CONTRAST:.1%}")
    far = 0.25 if digit else 0.02
    threshold = max(4.0 * noise, visible / 2)
    mask, bbox = drop_specks(smooth >= threshold, far_piece_fraction=far, grow=width - 1)
    if (
        bbox is not None
    ):  # cut at half the content's own level (Otsu's for a digit): specks the average joined come apart
        level = quantile(smooth[mask], 0.8)
        threshold = max(threshold, otsu(subsample(smooth, 256)) if digit else level / 2)
        mask, bbox = drop_specks(smooth >= threshold, far_piece_fraction=far, grow=width - 1)
    if bbox is None:
        raise blank_error(name, "only noise or specks were found")
    level = quantile(smooth[mask], 0.8)
    if level < SIGNIFICANCE * noise:
        raise blank_error(name, "only noise or specks were found")
    return Content(smooth, mask, bbox, noise, threshold, level)


def box_mean(values: np.ndarray, width: int) -> np.ndarray:
    """The mean over a ``width`` x ``width`` square around each pixel (fewer pixels at the edges), by summed-area tables."""
    h, w = values.shape
    before, after = (width - 1) // 2, width // 2
    table = np.zeros((h + 1, w + 1), dtype=np.float64)
    table[1:, 1:] = np.cumsum(np.cumsum(values, axis=0, dtype=np.float64), axis=1)
    top = np.clip(np.arange(h) - before, 0, h)
    bottom = np.clip(np.arange(h) + after + 1, 0, h)
    left = np.clip(np.arange(w) - before, 0, w)
    right = np.clip(np.arange(w) + after + 1, 0, w)
    sums = table[bottom][:, right] - table[top][:, right] - table[bottom][:, left] + table[top][:, left]
    counts = (bottom - top)[:, None] * (right - left)[None, :]
    return (sums / counts).astype(np.float32)


def fit_background(ink: np.ndarray, *, border_only: bool) -> tuple[np.ndarray, float]:
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
    sample = subsample(ink, 64)
    design, selected, full_terms = background_model(h, w, border_only)
    terms = design.shape[1]
    if border_only:
        keep = darkest_of_each_block(sample, selected, 0.4).ravel()
    else:
        keep = paper_blocks(sample, selected).ravel()
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
        centre = quantile(kept, 0.5)
        noise = robust_deviation(kept, centre)
        new_keep = selected & (np.abs(residual - centre) <= max(2.5 * noise, 0.01))
        if new_keep.sum() < 4 * terms or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    background = np.zeros((h, w), dtype=np.float32)
    for c, t in zip(coef, full_terms):
        background += np.float32(c) * t
    return background, noise


@functools.lru_cache(maxsize=16)
def background_model(h: int, w: int, border_only: bool):
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


def darkest_of_each_block(sample: np.ndarray, selected: np.ndarray, fraction: float, blocks: int = 4) -> np.ndarray:
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


def paper_blocks(sample: np.ndarray, selected: np.ndarray, blocks: int = 8) -> np.ndarray:
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
        design = block_design(rows, cols)
        level = np.where(usable, cut.ravel(), 0.0)
        chosen = usable.copy()
        for _ in range(4):
            picked = design[chosen]
            coef = np.linalg.solve(picked.T @ picked + 1e-9 * np.eye(6), picked.T @ level[chosen])
            residual = level - design @ coef
            cutoff = quantile(residual[usable], 0.3)
            now = usable & (residual <= cutoff)
            if np.array_equal(now, chosen):
                break
            chosen = now
        kept = residual[chosen]
        spread = robust_deviation(kept)
        paper = (residual <= max(cutoff + 4 * spread, cutoff + 0.05)).reshape(rows, cols)
        cut = np.where(paper, cut, -np.inf)
    cut = np.where(valid > 0, cut, -np.inf)
    cut_map = np.repeat(np.repeat(cut, bh, axis=0), bw, axis=1)[:h, :w]
    return selected & (sample <= cut_map)


def drop_specks(
    mask: np.ndarray, far_piece_fraction: float, grow: int = 0
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Keep the largest connected piece and the pieces that plausibly belong with it.

    A piece stays if it is at least ``far_piece_fraction`` of the largest
    one's area, or if it is not tiny and lies within the largest piece's
    bounding box grown by a quarter on each side (a detached bar of a 5)
    and at least :data:`NEAR_PIECE_FRACTION` of the largest (noise on a
    white background clipped at full white can pass a low threshold in
    clusters, and would stretch the box). When even the largest piece spans less than :data:`MIN_EXTENT` of the
    image (and 4 pixels), there are only specks: the bounding box is None. ``grow`` pixels are added to
    that minimum where the mask comes from an average over ``grow + 1`` pixels, which widens every speck by ``grow``.
    """
    h, w = mask.shape
    rows, starts, ends, labels = label_runs(mask)
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
    if area[largest] < min_area or extent < max(MIN_EXTENT_PIXELS, MIN_EXTENT * max(h, w)) + grow:
        return mask, None
    gy = 0.25 * (y1[largest] - y0[largest])
    gx = 0.25 * (x1[largest] - x0[largest])
    near = (y0 >= y0[largest] - gy) & (y1 <= y1[largest] + gy) & (x0 >= x0[largest] - gx) & (x1 <= x1[largest] + gx)
    keep = (area >= max(far_piece_fraction * area[largest], min_area)) | (
        near & (area >= max(min_area, NEAR_PIECE_FRACTION * area[largest]))
    )
    keep_run = keep[labels]
    kept = np.zeros((h, w + 1), dtype=np.int8)
    kept[rows[keep_run], starts[keep_run]] = 1  # runs in a row are separated, so no index repeats
    kept[rows[keep_run], ends[keep_run]] = -1
    kept_mask = np.cumsum(kept, axis=1, dtype=np.int8)[:, :w] > 0
    bbox = (int(y0[keep].min()), int(y1[keep].max()), int(x0[keep].min()), int(x1[keep].max()))
    return kept_mask, bbox
