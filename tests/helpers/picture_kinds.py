"""Pictures of digits and articles as people really make them, one generator per kind.

``lenet predict`` must read more than clean scans: a digit drawn with a fat
marker, a faint pencil line, a tiny scan blown up, a continental 1 or
crossed 7, a photo with another tone curve, grey paper under a soft shadow,
a heavily compressed JPEG, and (for Fashion) a product picture. Each kind
here turns a dataset image (``(28, 28)`` uint8, white on black) into the
bytes of such a file; ``continental`` draws its digit from strokes instead.

=============  ==============================================================
kind           what the file shows
=============  ==============================================================
bold           marker / fat brush: stroke up to 25-33 % of the digit's height (loops kept open), dark on white
thin           pencil: a 1-2 % stroke of grey graphite on white, grainy
lowres         a 10-16 px tall scan upscaled 8-20x, bilinear, blurred
blocks         an 8x8 block scan cropped to the digit, as the UCI digits were made, enlarged 8-12x bilinear
continental    a 1 with a long flag and a foot, or a crossed 7 (drawn strokes)
gamma          a photo on paper whose tone curve is ``luminance ** g``, g in 0.5..2
shadow         grey or near-white paper under a soft shadow
jpeg           a photo saved as JPEG at quality 30-70
styles         other writers' digits, drawn from strokes: closed-top and open 4, looped 2, flat-top 3, hooked 9, flag 1
product        Fashion article: dark on near-white, large, off-centre, tone curve, blur, noise
tones          a product picture under one of several other tone curves (gamma on darkness 0.4-2.5, contrast 0.5-0.7, an S-curve)
faint          a white article on a white background, at 3, 5 or 8 % contrast
=============  ==============================================================

Everything is deterministic given the seed, and uses numpy and Pillow only
(no fonts). Tests import it as ``from picture_kinds import render_kind``;
``bench/picture_kinds.py`` renders test-split images through it. The drawn
kinds (``continental``, ``styles``) take nothing from MNIST; none of these
pictures ever feeds training or the choice of a recipe.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

DIGIT_KINDS = ("bold", "thin", "lowres", "blocks", "continental", "gamma", "shadow", "jpeg")
"""Kinds of digit picture (``continental`` draws 1s and 7s; the others render any digit)."""

OTHER_WRITERS_KINDS = ("styles",)
"""Kinds of digit drawn in the styles of writers MNIST under-represents (each style knows its digit)."""

FASHION_KINDS = ("product", "tones", "faint")
"""Kinds of article picture."""

CONTINENTAL_LABELS = (1, 7)
"""The digits ``continental`` can draw."""

STYLES = (("closed-4", 4), ("open-4", 4), ("looped-2", 2), ("flat-top-3", 3), ("hooked-9", 9), ("flag-1", 1))
"""The writing styles of ``styles`` (``variant`` picks one), each with its digit."""

TONE_CURVES = ("gamma-0.4", "gamma-0.6", "gamma-1.6", "gamma-2.5", "contrast-0.5", "contrast-0.7", "s-curve")
"""The tone curves of ``tones``, applied to the article's darkness (``variant`` picks one)."""

FAINT_CONTRASTS = (0.03, 0.05, 0.08)
"""How much darker than the white background the body of a ``faint`` article is (``variant`` picks one)."""

VARIANTS = {"styles": STYLES, "tones": TONE_CURVES, "faint": FAINT_CONTRASTS}
"""The kinds whose pictures come in named variants, and the variants."""

WORK = 112
"""Side of the working field (4x the 28x28 grid) where strokes are thickened or thinned."""


def render_kind(
    kind: str,
    seed: int | Iterable[int],
    image28: np.ndarray | None = None,
    label: int | None = None,
    variant: int | None = None,
) -> bytes:
    """Render one picture of the given kind as the bytes of an image file.

    Args:
        kind: One of :data:`DIGIT_KINDS`, :data:`OTHER_WRITERS_KINDS` or :data:`FASHION_KINDS`.
        seed: Seed (an int or a tuple such as ``(seed, index)``) for every random choice.
        image28: ``(28, 28)`` uint8, white on black; needed by every kind but ``continental`` and ``styles``.
        label: For ``continental``: 1 or 7.
        variant: For ``styles``, ``tones`` and ``faint``: which of :data:`VARIANTS` (by index, wrapping);
            drawn from the seed when None.

    Returns:
        PNG bytes (JPEG for ``jpeg``).
    """
    rng = np.random.default_rng(seed)
    if kind in VARIANTS:
        choices = VARIANTS[kind]
        variant = int(rng.integers(len(choices))) if variant is None else variant % len(choices)
    if kind == "continental":
        if label not in CONTINENTAL_LABELS:
            raise ValueError(f"continental draws 1 and 7 only; received label {label!r}")
        return _photo(draw_continental(label, rng), rng)
    if kind == "styles":
        return _photo(draw_style(STYLES[variant][0], rng), rng)
    if image28 is None:
        raise ValueError(f"kind {kind!r} renders a dataset image; pass image28")
    field = upscale(image28, WORK)
    if kind == "bold":
        return _on_white(embolden(field, rng.uniform(0.25, 0.33)), rng)
    if kind == "thin":
        return _pencil(thin_strokes(field, radius=int(rng.integers(0, 2))), rng)
    if kind == "lowres":
        return _lowres_scan(field, rng)
    if kind == "blocks":
        return _block_scan(np.asarray(image28), rng)
    if kind == "gamma":
        return _photo(field, rng, gamma=float(np.exp(rng.uniform(np.log(0.5), np.log(2.0)))))
    if kind == "shadow":
        return _photo(field, rng, shadow=True)
    if kind == "jpeg":
        return _photo(field, rng, jpeg_quality=int(rng.integers(30, 71)))
    if kind == "product":
        return _product(np.asarray(image28, dtype=np.float32) / 255.0, rng)
    if kind == "tones":
        return _toned_product(np.asarray(image28, dtype=np.float32) / 255.0, rng, TONE_CURVES[variant])
    if kind == "faint":
        return _faint_article(np.asarray(image28, dtype=np.float32) / 255.0, rng, FAINT_CONTRASTS[variant])
    raise ValueError(
        f"unknown picture kind {kind!r}; choose one of {DIGIT_KINDS + OTHER_WRITERS_KINDS + FASHION_KINDS}"
    )


def label_of(kind: str, variant: int, label: int) -> int:
    """The true label of a picture of ``kind``: the drawn style's digit for ``styles``, else ``label``."""
    return STYLES[variant % len(STYLES)][1] if kind == "styles" else label


# --- strokes -----------------------------------------------------------------


def upscale(image28: np.ndarray, size: int) -> np.ndarray:
    """A dataset image as a float coverage field of ``size`` x ``size`` in [0, 1]."""
    ink = np.asarray(image28, dtype=np.float32) / 255.0
    image = Image.fromarray(ink).resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def digit_height(field: np.ndarray, level: float = 0.5) -> int:
    rows = np.nonzero((field >= level).any(axis=1))[0]
    return int(rows.max() - rows.min() + 1) if rows.size else 0


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a binary drawing: twice its area over its outline length."""
    padded = np.pad(mask, 1)
    edges = (padded[1:, 1:-1] != padded[:-1, 1:-1]).sum() + (padded[1:-1, 1:] != padded[1:-1, :-1]).sum()
    return 2.0 * float(mask.sum()) / max(float(edges), 1.0)


def disk_dilate(mask: np.ndarray, radius: float) -> np.ndarray:
    """Binary dilation by a disk (the union of shifted copies), same shape (pad first to grow)."""
    r = int(np.ceil(radius))
    if r <= 0:
        return mask.copy()
    padded = np.pad(mask, r)
    out = np.zeros_like(padded)
    h, w = mask.shape
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if dy * dy + dx * dx <= radius * radius + 0.25:
                out[r + dy : r + dy + h, r + dx : r + dx + w] |= mask
    return out[r : r + h, r : r + w]


def embolden(field: np.ndarray, fraction: float) -> np.ndarray:
    """Thicken the strokes towards ``fraction`` of the digit's (grown) height, as a marker would; anti-aliased.

    A writer with a fat marker leaves the loops of a 6, 8, 9 and the gaps
    of a 2, 3, 5 open (a fine pen's digit grown past that reads as another
    digit or as none), so the growth stops at the widest stroke that keeps
    the drawing's holes and fills at most 10 % more of its narrow gaps
    (the closing with that radius): a 1 or 7 reaches 25-33 %, an 8 less.
    """
    mask = field >= 0.5
    height, width0 = digit_height(field), stroke_width(mask)
    target = fraction * (height - width0) / (1.0 - fraction)
    margin = int(np.ceil(target))
    padded = np.pad(mask, margin)
    holes = count_holes(padded)
    best = padded
    for radius in np.arange(1.0, max(0.0, (target - width0) / 2) + 0.5, 1.0):
        grown = disk_dilate(padded, float(radius))
        closed = ~disk_dilate(~grown, float(radius))
        if count_holes(grown) != holes or (closed & ~padded).sum() > 0.1 * padded.sum():
            break
        best = grown
    return _smooth(best.astype(np.float32), 0.8)


def count_holes(mask: np.ndarray) -> int:
    """Background regions enclosed by the drawing (the outside excluded)."""
    from lenet_cli.data.preprocess.image_ops import label_runs

    labels = label_runs(np.pad(~mask, 1, constant_values=True))[3]
    return int(labels.max()) if labels.size else 0


def thin_strokes(field: np.ndarray, radius: int = 0) -> np.ndarray:
    """The strokes' centre lines (Zhang-Suen thinning), widened by ``radius`` pixels; anti-aliased."""
    skeleton = zhang_suen(field >= 0.5)
    if radius:
        skeleton = disk_dilate(skeleton, radius)
    return _smooth(skeleton.astype(np.float32), 0.6)


def zhang_suen(mask: np.ndarray) -> np.ndarray:
    """Thin a binary image to one-pixel lines (Zhang and Suen, 1984), vectorised."""
    image = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p = image
            n = [p[:-2, 1:-1], p[:-2, 2:], p[1:-1, 2:], p[2:, 2:], p[2:, 1:-1], p[2:, :-2], p[1:-1, :-2], p[:-2, :-2]]
            neighbours = sum(x.astype(np.int32) for x in n)
            transitions = sum(((n[i] == 0) & (n[(i + 1) % 8] == 1)).astype(np.int32) for i in range(8))
            if step == 0:
                c1, c2 = n[0] * n[2] * n[4], n[2] * n[4] * n[6]
            else:
                c1, c2 = n[0] * n[2] * n[6], n[0] * n[4] * n[6]
            remove = (
                (p[1:-1, 1:-1] == 1)
                & (neighbours >= 2)
                & (neighbours <= 6)
                & (transitions == 1)
                & (c1 == 0)
                & (c2 == 0)
            )
            if remove.any():
                image = image.copy()
                image[1:-1, 1:-1][remove] = 0
                changed = True
        if not changed:
            return image[1:-1, 1:-1].astype(bool)


def draw_strokes(
    strokes: list[list[tuple[float, float]]], width: float, size: int = WORK, slant: float = 0.0
) -> np.ndarray:
    """Anti-aliased polylines with round ends on a ``size`` field.

    Args:
        strokes: Polylines in a unit box (x to the right, y down, the digit spans y 0..1).
        width: Stroke width as a fraction of the digit's height.
        size: Side of the field; the digit is 0.7 of it tall, centred.
        slant: Shear to the right, ``x += slant * (1 - y)``.
    """
    scale = 4
    big = size * scale
    height = 0.7 * big
    image = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(image)
    xs = [x + slant * (1 - y) for stroke in strokes for x, y in stroke]
    x_mid = (min(xs) + max(xs)) / 2
    pen = max(1, round(width * height))
    for stroke in strokes:
        points = [((x + slant * (1 - y) - x_mid) * height + big / 2, (y - 0.5) * height + big / 2) for x, y in stroke]
        draw.line(points, fill=255, width=pen, joint="curve")
        for px, py in (points[0], points[-1]):
            draw.ellipse([px - pen / 2, py - pen / 2, px + pen / 2, py + pen / 2], fill=255)
    small = image.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def continental_strokes(label: int, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """A 1 with a long flag and a foot, or a 7 crossed in the middle (with a small serif), jittered."""

    def j(s: float) -> float:
        return float(rng.uniform(-s, s))

    if label == 1:
        flag = rng.uniform(0.3, 0.5)
        stroke = [(-flag * 0.9 + j(0.04), flag * 0.8 + j(0.05)), (0.0, 0.0), (j(0.03), 1.0)]
        foot = rng.uniform(0.2, 0.3)
        return [stroke, [(-foot + j(0.03), 1.0 + j(0.02)), (foot + j(0.03), 1.0 + j(0.02))]]
    width = rng.uniform(0.5, 0.65)
    top = [(-width / 2 + j(0.02), 0.1 + j(0.04)), (-width / 2 + j(0.02), j(0.02)), (width / 2, j(0.02))]
    foot_x = -0.08 + j(0.08)
    stem = [top[-1], (foot_x, 1.0)]
    cross_y = rng.uniform(0.45, 0.55)
    cross_x = width / 2 + (foot_x - width / 2) * cross_y
    half = rng.uniform(0.16, 0.24)
    return [top + [stem[1]], [(cross_x - half, cross_y + j(0.03)), (cross_x + half, cross_y + j(0.03))]]


def draw_continental(label: int, rng: np.random.Generator) -> np.ndarray:
    """A continental 1 or 7 as a coverage field of :data:`WORK` pixels."""
    return draw_strokes(continental_strokes(label, rng), rng.uniform(0.07, 0.13), slant=rng.uniform(-0.05, 0.2))


def style_strokes(style: str, rng: np.random.Generator) -> list[list[tuple[float, float]]]:
    """Strokes of one of :data:`STYLES` in a unit box (the digit spans y 0..1), jittered."""

    def j(s: float) -> float:
        return float(rng.uniform(-s, s))

    def arc(
        cx: float, cy: float, rx: float, ry: float, start: float, end: float, steps: int = 14
    ) -> list[tuple[float, float]]:
        angles = np.linspace(np.radians(start), np.radians(end), steps)
        return [(cx + rx * float(np.cos(a)), cy + ry * float(np.sin(a))) for a in angles]

    if style == "closed-4":  # the diagonal meets the top of the stem: a closed triangle
        bar, stem_x = rng.uniform(0.6, 0.7), rng.uniform(0.08, 0.16)
        left = -0.3 + j(0.04)
        return [
            [(stem_x, 0.0), (left, bar + j(0.02)), (0.33 + j(0.04), bar + j(0.02))],
            [(stem_x, 0.0), (stem_x + j(0.03), 1.0)],
        ]
    if style == "open-4":  # two strokes that do not meet at the top
        bar, stem_x = rng.uniform(0.58, 0.68), rng.uniform(0.1, 0.18)
        return [
            [(-0.22 + j(0.04), 0.0), (-0.28 + j(0.03), bar), (0.32 + j(0.04), bar + j(0.02))],
            [(stem_x, 0.05 + j(0.04)), (stem_x + j(0.03), 1.0)],
        ]
    if style == "looped-2":  # the diagonal turns through a loop before the base
        r = rng.uniform(0.11, 0.14)
        cx, cy = -0.14 + j(0.02), 1.0 - r * 1.3
        top = arc(0.0, 0.25, 0.25 + j(0.02), 0.25, 200, 370)
        loop = arc(cx, cy, r, r, 0, -340, steps=20)
        return [top + loop + [(0.3 + j(0.04), cy + r * 0.9 + j(0.02))]]
    if style == "flat-top-3":  # a flat bar, a diagonal, then the lower bowl
        bowl = arc(0.02, 0.69, 0.26 + j(0.02), 0.3, -80, 150)
        return [[(-0.25 + j(0.03), 0.0), (0.25 + j(0.03), 0.0), bowl[0]] + bowl]
    if style == "hooked-9":  # a loop on a stem that curls to the left at the foot
        r = rng.uniform(0.2, 0.24)
        loop = arc(0.0, r, r, r, 0, 360, steps=22)
        tail = [(r, r), (r - 0.02, 0.62), (r - 0.07, 0.86), (0.0, 1.0), (-0.18 + j(0.04), 0.93 + j(0.03))]
        return [loop, tail]
    if style == "flag-1":  # a long flag, about 45 degrees down from the top, and no foot
        flag = rng.uniform(0.3, 0.45)
        return [[(-flag * 0.75 + j(0.04), flag * 0.8 + j(0.05)), (0.0, 0.0), (j(0.03), 1.0)]]
    raise ValueError(f"unknown writing style {style!r}; choose one of {[name for name, _ in STYLES]}")


def draw_style(style: str, rng: np.random.Generator) -> np.ndarray:
    """A digit in one of :data:`STYLES` as a coverage field of :data:`WORK` pixels: pen width 7-13 % of its height, slanted."""
    return draw_strokes(style_strokes(style, rng), rng.uniform(0.07, 0.13), slant=rng.uniform(-0.05, 0.2))


# --- pictures ----------------------------------------------------------------


def _smooth(values: np.ndarray, radius: float) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def _place(field: np.ndarray, rng: np.random.Generator, size_range=(120, 320)) -> np.ndarray:
    """The field scaled to a random size and placed off-centre on a larger canvas."""
    size = int(rng.integers(*size_range))
    scaled = np.clip(np.asarray(Image.fromarray(field).resize((size, size), Image.Resampling.BILINEAR)), 0.0, 1.0)
    canvas_h, canvas_w = int(size * rng.uniform(1.1, 1.8)), int(size * rng.uniform(1.1, 1.8))
    top, left = int(rng.integers(0, canvas_h - size + 1)), int(rng.integers(0, canvas_w - size + 1))
    coverage = np.zeros((canvas_h, canvas_w), dtype=np.float32)
    coverage[top : top + size, left : left + size] = scaled
    return coverage


def _encode(
    luminance: np.ndarray, rng: np.random.Generator, jpeg_quality: int | None = None, tint: bool = True
) -> bytes:
    lum = np.clip(luminance, 0.0, 1.0)
    if tint and rng.random() < 0.5:
        rgb = lum[..., None] * np.array([1.0, 0.98, 0.93], dtype=np.float32)
        image = Image.fromarray(np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8))
    else:
        image = Image.fromarray(np.clip(np.rint(lum * 255), 0, 255).astype(np.uint8))
    buffer = io.BytesIO()
    if jpeg_quality is not None:
        image.save(buffer, format="JPEG", quality=jpeg_quality)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _on_white(field: np.ndarray, rng: np.random.Generator) -> bytes:
    """A marker drawing: near-black ink on white, cropped close (a margin of 0-30 % of its height), light noise."""
    rows, cols = np.nonzero(field >= 0.5)
    margin = int(rng.uniform(0.0, 0.3) * (rows.max() - rows.min() + 1))
    y0, y1 = rows.min() - margin, rows.max() + margin + 1
    x0, x1 = cols.min() - margin, cols.max() + margin + 1
    crop = np.pad(field, margin)[y0 + margin : y1 + margin, x0 + margin : x1 + margin]
    height = int(rng.integers(100, 260))
    width = max(1, round(crop.shape[1] * height / crop.shape[0]))
    coverage = np.clip(np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR)), 0.0, 1.0)
    paper, ink = rng.uniform(0.93, 1.0), rng.uniform(0.0, 0.15)
    lum = paper * (1 - coverage) + ink * coverage + rng.normal(0, 0.01, coverage.shape)
    return _encode(lum, rng)


def _pencil(field: np.ndarray, rng: np.random.Generator) -> bytes:
    """Grey graphite with grain on white paper."""
    coverage = _place(field, rng, (140, 320))
    grain = np.clip(rng.normal(0.85, 0.2, coverage.shape), 0.3, 1.0).astype(np.float32)
    coverage = coverage * grain
    paper, graphite = rng.uniform(0.88, 0.98), rng.uniform(0.3, 0.55)
    lum = paper * (1 - coverage) + graphite * coverage + rng.normal(0, 0.01, coverage.shape)
    return _encode(lum, rng)


def _lowres_scan(field: np.ndarray, rng: np.random.Generator) -> bytes:
    """A scan with the digit 10-16 px tall, quantised, then upscaled bilinear and blurred."""
    small = int(rng.integers(14, 23))  # the 28 grid at this size: digits of ~10-16 px
    coverage = np.asarray(Image.fromarray(field).resize((small, small), Image.Resampling.BOX), dtype=np.float32)
    pad = int(rng.integers(2, 8))
    coverage = np.pad(np.clip(coverage, 0, 1), pad)
    paper = rng.uniform(0.8, 0.97)
    lum = paper * (1 - coverage) + 0.1 * coverage + rng.normal(0, 0.02, coverage.shape)
    scan = np.clip(np.rint(lum * 255), 0, 255).astype(np.uint8)
    factor = float(rng.uniform(8, 20))
    size = (int(scan.shape[1] * factor), int(scan.shape[0] * factor))
    big = Image.fromarray(scan).resize(size, Image.Resampling.BILINEAR).filter(ImageFilter.GaussianBlur(factor * 0.4))
    return _encode(np.asarray(big, dtype=np.float32) / 255.0, rng, tint=False)


def _block_scan(image28: np.ndarray, rng: np.random.Generator) -> bytes:
    """The UCI optical digits' recipe: the digit fitted into a 32x32 bitmap, ink counted in 4x4 blocks (0-16).

    The 8x8 counts are drawn dark on white, edge to edge (the digit fills the
    frame), and enlarged 8-12x with bilinear interpolation.
    """
    rows, cols = np.nonzero(image28 > 127)
    crop = image28[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = 32 / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    bitmap = np.zeros((32, 32), dtype=bool)
    top, left = (32 - height) // 2, (32 - width) // 2
    fitted = Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR)
    bitmap[top : top + height, left : left + width] = np.asarray(fitted) > 127
    counts = bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3))
    paper = np.clip(np.rint(255 - counts / 16 * 255), 0, 255).astype(np.uint8)
    side = int(rng.integers(64, 97))
    big = Image.fromarray(paper).resize((side, side), Image.Resampling.BILINEAR)
    return _encode(np.asarray(big, dtype=np.float32) / 255.0, rng, tint=False)


def _photo(
    field: np.ndarray,
    rng: np.random.Generator,
    gamma: float = 1.0,
    shadow: bool = False,
    jpeg_quality: int | None = None,
) -> bytes:
    """Ink on paper, blurred a little, unevenly lit, noisy; optionally a tone curve, a soft shadow, JPEG."""
    coverage = _place(field, rng)
    coverage = _smooth(coverage, rng.uniform(0.3, 1.2) * coverage.shape[0] / 250)
    h, w = coverage.shape
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    light = 1.0 - 0.15 * (0.5 + 0.5 * (np.cos(angle) * x + np.sin(angle) * y)) * rng.uniform(0.3, 1.0)
    if shadow:
        paper = rng.uniform(0.55, 0.97)
        a = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.6, 0.6)
        softness = rng.uniform(0.15, 0.5)
        inside = 1.0 / (1.0 + np.exp(-((np.cos(a) * x + np.sin(a) * y) - offset) / softness))
        light = light * (1.0 - rng.uniform(0.25, 0.5) * inside)
    else:
        paper = rng.uniform(0.8, 0.97)
    ink = rng.uniform(0.03, 0.2)
    lum = (paper * (1 - coverage) + ink * coverage) * light
    lum = np.clip(lum + rng.normal(0, rng.uniform(0.005, 0.02), lum.shape), 0.0, 1.0) ** gamma
    return _encode(lum, rng, jpeg_quality=jpeg_quality)


def _product(article: np.ndarray, rng: np.random.Generator, gamma: float | None = None) -> bytes:
    """A Fashion article as a product picture: dark on near-white, large, off-centre, tone curve, blur, noise."""
    coverage = _article_coverage(article, rng)
    background = rng.uniform(0.92, 1.0)
    lum = background * (1.0 - coverage)
    drawn = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
    gamma = drawn if gamma is None else gamma
    lum = np.clip(lum + rng.normal(0, rng.uniform(0.005, 0.02), lum.shape), 0.0, 1.0) ** gamma
    return _encode(lum, rng, tint=False)


def _article_coverage(article: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The article's darkness at 250-600 px, off-centre on a canvas 5-60 % larger, blurred as a lens would."""
    size = int(rng.integers(250, 601))
    scaled = np.clip(np.asarray(Image.fromarray(article).resize((size, size), Image.Resampling.BICUBIC)), 0.0, 1.0)
    canvas_h, canvas_w = int(size * rng.uniform(1.05, 1.6)), int(size * rng.uniform(1.05, 1.6))
    top, left = int(rng.integers(0, canvas_h - size + 1)), int(rng.integers(0, canvas_w - size + 1))
    coverage = np.zeros((canvas_h, canvas_w), dtype=np.float32)
    coverage[top : top + size, left : left + size] = scaled
    return _smooth(coverage, rng.uniform(0.5, 1.5) * size / 200)


def tone_curve(name: str, darkness: np.ndarray) -> np.ndarray:
    """One of :data:`TONE_CURVES` applied to darkness in [0, 1] (0 stays 0: the background keeps its colour)."""
    kind, _, value = name.partition("-")
    if kind == "gamma":
        return darkness ** float(value)
    if kind == "contrast":
        return darkness * float(value)
    if kind == "s":
        return darkness * darkness * (3.0 - 2.0 * darkness)  # smoothstep: darker darks, lighter lights
    raise ValueError(f"unknown tone curve {name!r}; choose one of {TONE_CURVES}")


def _toned_product(article: np.ndarray, rng: np.random.Generator, curve: str) -> bytes:
    """A product picture whose camera maps the article's darkness through ``curve``; blur and noise as ``product``."""
    coverage = tone_curve(curve, np.clip(_article_coverage(article, rng), 0.0, 1.0))
    background = rng.uniform(0.92, 1.0)
    lum = background * (1.0 - coverage) + rng.normal(0, rng.uniform(0.005, 0.02), coverage.shape)
    return _encode(lum, rng, tint=False)


def _faint_article(article: np.ndarray, rng: np.random.Generator, contrast: float) -> bytes:
    """A white article on a white background, most of it ``contrast`` below the background; light noise, PNG or JPEG.

    The article's darkness is scaled so that its 90th percentile (over the article's own pixels) is ``contrast``:
    the body of a white shirt, not one dark seam, is what is that much darker than the background.
    """
    coverage = _article_coverage(article, rng)
    body = coverage[coverage > 0.05]
    coverage = np.clip(coverage / max(float(np.quantile(body, 0.9)) if body.size else 1.0, 1e-6), 0.0, 1.0)
    background = rng.uniform(0.95, 1.0)
    lum = background * (1.0 - contrast * coverage) + rng.normal(0, rng.uniform(0.002, 0.008), coverage.shape)
    return _encode(lum, rng, jpeg_quality=int(rng.integers(80, 96)) if rng.random() < 0.5 else None, tint=False)
