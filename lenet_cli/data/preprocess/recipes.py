"""Each dataset's own recipe for a 28x28 input: MNIST's 20x20 box centred by mass, Fashion-MNIST's trimmed 28x28, or none."""

from __future__ import annotations

import math

import numpy as np

from lenet_cli.data.preprocess.content import decide_invert, find_content
from lenet_cli.data.preprocess.image_ops import (
    centre_of_mass,
    dilate,
    grey_morph,
    quantile,
    resize,
    robust_deviation,
    sharpen,
)
from lenet_cli.data.preprocess.settings import (
    EDGE_INK_DEVIATIONS,
    EDGE_INK_FRACTION,
    EDGE_INK_LEVEL,
    FASHION_CONTENT_LEVEL,
    FASHION_PEAK_QUANTILE,
    MNIST_BOX,
    MNIST_CENTRE,
    PAPER_MARGIN,
    SIZE,
    STROKE_RANGE,
    VISIBLE_CONTRAST,
    blank_error,
)


def preprocess_none(luminance: np.ndarray, invert_setting: str, name: str | None) -> np.ndarray:
    out = luminance
    if decide_invert(luminance, invert_setting):
        out = 1.0 - out
    if out.shape != (SIZE, SIZE):
        out = resize(out, SIZE, SIZE)
    out = np.clip(out, 0.0, 1.0).astype(np.float32)
    if float(out.max() - out.min()) < VISIBLE_CONTRAST:
        raise blank_error(name, f"its contrast is below {VISIBLE_CONTRAST:.1%}")
    return out


def preprocess_mnist(ink: np.ndarray, inverted: bool, name: str | None) -> np.ndarray:
    content = find_content(with_paper_margin(ink), inverted=inverted, digit=True, name=name)
    y0, y1, x0, x1 = content.bbox
    floor = min(2.0 * content.noise, 0.5 * content.threshold)
    crop = content.signal[y0:y1, x0:x1]
    crop = np.clip((crop - floor) / max(content.level - floor, 1e-6), 0.0, 1.0)
    height, width = crop.shape
    radius = max(1, round(max(height, width) / 40))
    crop = crop * dilate(content.mask[y0:y1, x0:x1], radius)
    fit = MNIST_BOX / max(height, width)
    stroke = stroke_width(content.mask[y0:y1, x0:x1]) * fit
    if not STROKE_RANGE[0] <= stroke <= STROKE_RANGE[1]:
        crop = normalise_stroke(crop, fit, stroke)
        height, width = crop.shape
        fit = MNIST_BOX / max(height, width)
    digit = np.clip(resize(crop, max(1, round(height * fit)), max(1, round(width * fit))), 0.0, 1.0)
    return paste_by_centre_of_mass(digit, name)


def with_paper_margin(ink: np.ndarray) -> np.ndarray:
    """``ink`` inside a margin of its own paper when the digit touches the picture's edge; otherwise as it is.

    A digit cropped to its edges (a tight screenshot, an enlarged 8x8 scan)
    leaves the lighting surface little paper to stand on, and it bends into
    the ink. The digit touches the edge when more than
    :data:`EDGE_INK_FRACTION` of the border ring is darker than
    :data:`EDGE_INK_LEVEL` of the way from the ring's paper to the ink, and
    than :data:`EDGE_INK_DEVIATIONS` of the ring's noise; the margin, :data:`PAPER_MARGIN`
    of the longest side, carries the paper's level and grain (seeded, so the
    same picture always gives the same input). A picture with paper all
    round keeps its own border, whose shading the surface follows: a margin
    on every picture flattened soft shadows' gradients (39 % of them read
    instead of 99.6 %).
    """
    # the outermost pixels, not image_ops.border's 3 % ring: ink near the edge is no digit cut off by it
    ring = np.concatenate([ink[0], ink[-1], ink[1:-1, 0], ink[1:-1, -1]])
    paper = quantile(ring, 0.5)
    noise = robust_deviation(np.diff(ring), 0.0) / math.sqrt(2)  # from neighbours: ink on the ring is smooth
    on_ink = ring > paper + max(EDGE_INK_LEVEL * (quantile(ink, 0.99) - paper), EDGE_INK_DEVIATIONS * noise)
    if np.count_nonzero(on_ink) <= EDGE_INK_FRACTION * ring.size:
        return ink
    margin = max(1, round(PAPER_MARGIN * max(ink.shape)))
    padded = np.pad(ink.astype(np.float32), margin, constant_values=paper)
    if noise > 0:  # the paper's grain too, or the noise measured on the margin would let specks pass for ink
        frame = np.ones(padded.shape, dtype=bool)
        frame[margin:-margin, margin:-margin] = False
        padded[frame] += np.random.default_rng(0).normal(0.0, noise, int(frame.sum())).astype(np.float32)
    return padded


def stroke_width(mask: np.ndarray) -> float:
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


def normalise_stroke(crop: np.ndarray, fit: float, stroke: float) -> np.ndarray:
    """Thin a marker's strokes, or thicken a pencil's, to the nearest width MNIST's writers used.

    Works at four times the 20x20 box: grey erosion or dilation by the
    difference, alternating 3x3 squares and crosses (close to a disk), then
    crops to the new extent so the digit still fills the box.
    """
    scale = 4
    h, w = crop.shape
    work = np.clip(resize(crop, max(1, round(h * fit * scale)), max(1, round(w * fit * scale))), 0.0, 1.0)
    target = min(max(stroke, STROKE_RANGE[0]), STROKE_RANGE[1])
    steps = round(abs(stroke - target) * scale / 2)
    reduce = np.minimum if stroke > target else np.maximum
    for step in range(steps):
        work = grey_morph(work, reduce, square=step % 2 == 0)
    rows, cols = np.nonzero(work > 0.05)
    if rows.size == 0:
        return crop
    return work[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def paste_by_centre_of_mass(digit: np.ndarray, name: str | None) -> np.ndarray:
    if float(digit.sum()) <= 0.0:
        raise blank_error(name, "the content vanished when scaled to 20x20")
    com_y, com_x = centre_of_mass(digit)
    height, width = digit.shape
    top = min(max(math.floor(MNIST_CENTRE - com_y + 0.5), 0), SIZE - height)
    left = min(max(math.floor(MNIST_CENTRE - com_x + 0.5), 0), SIZE - width)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    out[top : top + height, left : left + width] = digit
    return out


def preprocess_fashion(ink: np.ndarray, inverted: bool, name: str | None) -> np.ndarray:
    content = find_content(ink, inverted=inverted, digit=False, name=name)
    y0, y1, x0, x1 = content.bbox
    floor = 2.0 * content.noise
    crop = np.clip((content.signal[y0:y1, x0:x1] - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
    height, width = crop.shape
    fit = SIZE / max(height, width)
    new_h, new_w = min(SIZE, max(1, round(height * fit))), min(SIZE, max(1, round(width * fit)))
    article = np.clip(sharpen(resize(crop, new_h, new_w)), 0.0, 1.0)
    out = np.zeros((SIZE, SIZE), dtype=np.float32)
    top, left = (SIZE - new_h) // 2, (SIZE - new_w) // 2
    out[top : top + new_h, left : left + new_w] = article
    return match_fashion_darkness(out)


def match_fashion_darkness(out: np.ndarray) -> np.ndarray:
    """Stretch an article's darkness linearly until the 99th percentile of its content is full darkness.

    Every Fashion-MNIST training article reaches full darkness somewhere, but
    another camera does not promise that: a lighter tone curve, a white shirt
    on white, a grey product shot. On pictures rendered from the validation
    split this linear map lifted the default model from 91.4 % to 92.1 % on
    other tone curves and from 90.3 % to 92.3 % on white-on-white articles,
    changing neither product pictures nor the dataset's own images (already
    at full darkness); matching each picture's median or histogram to
    Fashion-MNIST's did no better (``python -m bench.fashion_tones``,
    bench/RESULTS.md). The map is linear, so the article's own shading,
    which tells a shirt from a coat, is kept.
    """
    content = out[out > FASHION_CONTENT_LEVEL]
    if content.size == 0:
        return out
    peak = float(np.quantile(content, FASHION_PEAK_QUANTILE))
    if peak <= 0.0:
        return out
    return np.clip(out / peak, 0.0, 1.0).astype(np.float32)
