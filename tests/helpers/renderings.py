"""Realistic renderings of 28x28 dataset images, for testing ``lenet predict``'s preprocessing.

A person does not feed the network MNIST rows: they photograph a digit
written on paper, or export a drawing with a transparent background. These
helpers turn a dataset image (uint8, white on black) into such a file, so
tests can check that preprocessing recovers what the network expects:

* dark ink on light, slightly tinted paper, with uneven lighting;
* the 28x28 field scaled to 80-320 px (articles: 200-600 px) and placed
  off-centre on a larger canvas;
* slightly blurred, with sensor noise and a few paper specks;
* saved as grayscale PNG, RGB PNG, JPEG, or an RGBA drawing whose ink is
  only in the alpha channel (colour uniformly black or white).

Everything is deterministic given the seed. Tests import it as
``from renderings import render_realistic`` (pytest puts ``tests/`` on
``sys.path``); it uses only numpy and Pillow.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

FORMATS = ("gray_png", "rgb_png", "jpeg", "alpha_png")
"""Every kind of file a rendering can be saved as."""

SUFFIXES = {"gray_png": ".png", "rgb_png": ".png", "jpeg": ".jpg", "alpha_png": ".png"}


def render_realistic(
    image28: np.ndarray, seed: int | Iterable[int], fmt: str = "gray_png", style: str = "mnist"
) -> bytes:
    """Render one dataset image as the bytes of a realistic image file.

    Args:
        image28: ``(28, 28)`` uint8, content white on black (dataset convention).
        seed: Seed (an int or a sequence such as ``(seed, index)``) for every random choice.
        fmt: One of :data:`FORMATS`.
        style: ``mnist`` (a digit written on paper, 80-320 px) or ``fashion``
            (a product photo, dark on white, 200-600 px).

    Returns:
        The encoded file (PNG or JPEG bytes).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown rendering format {fmt!r}; choose one of {FORMATS}")
    rng = np.random.default_rng(seed)
    ink = np.asarray(image28, dtype=np.float32) / 255.0
    size = int(rng.integers(80, 321)) if style == "mnist" else int(rng.integers(200, 601))
    field = _upscale(ink, size)
    canvas_h = int(size * rng.uniform(1.2, 2.2))
    canvas_w = int(size * rng.uniform(1.2, 2.2))
    top = int(rng.integers(0, canvas_h - size + 1))
    left = int(rng.integers(0, canvas_w - size + 1))
    coverage = np.zeros((canvas_h, canvas_w), dtype=np.float32)
    coverage[top : top + size, left : left + size] = field
    blur = float(rng.uniform(0.3, 1.2)) * size / 160
    coverage = _blur(coverage, blur)

    if fmt == "alpha_png":
        return _alpha_drawing(coverage, rng)

    lighting = _uneven_lighting(canvas_h, canvas_w, rng, strength=0.25 if style == "mnist" else 0.08)
    if style == "mnist":
        paper = np.array([1.0, 0.97, 0.90]) * rng.uniform(0.78, 0.95)
        ink_colour = np.array(rng.choice([[0.05, 0.05, 0.08], [0.08, 0.12, 0.45], [0.2, 0.2, 0.2]]))
    else:
        paper = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.92, 1.0)
        ink_colour = np.array([0.0, 0.0, 0.0])
    coverage = _add_specks(coverage, rng) if style == "mnist" else coverage
    cover = coverage[..., None]
    rgb = (paper * (1 - cover) + ink_colour * cover) * lighting[..., None]
    rgb += rng.normal(0.0, rng.uniform(0.005, 0.025), rgb.shape)
    rgb8 = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(rgb8)
    buffer = io.BytesIO()
    if fmt == "gray_png":
        image.convert("L").save(buffer, format="PNG")
    elif fmt == "rgb_png":
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=int(rng.integers(70, 96)))
    return buffer.getvalue()


def write_renderings(
    images: np.ndarray,
    out_dir: str | Path,
    seed: int = 0,
    formats: Iterable[str] = FORMATS,
    style: str = "mnist",
) -> list[Path]:
    """Render many dataset images to files, cycling through ``formats``.

    Image ``i`` is rendered with seed ``(seed, i)``, so any subset can be
    regenerated alone.

    Args:
        images: ``(N, 28, 28)`` uint8, white on black.
        out_dir: Folder to write ``00000.png``, ``00001.jpg``, ... into.
        seed: Base seed.
        formats: File kinds to cycle through.
        style: ``mnist`` or ``fashion`` (see :func:`render_realistic`).

    Returns:
        The paths written, in the order of ``images``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = tuple(formats)
    paths = []
    for index, image in enumerate(images):
        fmt = formats[index % len(formats)]
        path = out_dir / f"{index:05d}{SUFFIXES[fmt]}"
        path.write_bytes(render_realistic(image, (seed, index), fmt, style))
        paths.append(path)
    return paths


def _upscale(ink: np.ndarray, size: int) -> np.ndarray:
    image = Image.fromarray(ink).resize((size, size), Image.Resampling.BICUBIC)
    return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)


def _blur(values: np.ndarray, radius: float) -> np.ndarray:
    image = Image.fromarray(np.clip(np.rint(values * 255), 0, 255).astype(np.uint8))
    return np.asarray(image.filter(ImageFilter.GaussianBlur(radius)), dtype=np.float32) / 255.0


def _uneven_lighting(height: int, width: int, rng: np.random.Generator, strength: float) -> np.ndarray:
    """A smooth gradient plus an off-centre hot spot: a desk lamp, a phone's shadow."""
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * np.pi)
    gradient = np.cos(angle) * x + np.sin(angle) * y
    cy, cx = rng.uniform(-1, 1, 2)
    spot = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 1.5)
    light = 1.0 - strength * (0.5 + 0.5 * gradient) * rng.uniform(0.4, 1.0) + strength * 0.5 * (spot - 0.5)
    return np.clip(light, 0.3, 1.2)


def _add_specks(coverage: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A few dots of dust or pencil, one to three pixels across."""
    out = coverage.copy()
    h, w = out.shape
    for _ in range(int(rng.integers(0, 5))):
        y, x = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
        r = int(rng.integers(1, 3))
        out[y : y + r, x : x + r] = np.maximum(out[y : y + r, x : x + r], rng.uniform(0.3, 0.8))
    return out


def _alpha_drawing(coverage: np.ndarray, rng: np.random.Generator) -> bytes:
    """A drawing app's export: uniform black or white colour, strokes only in alpha."""
    colour = 0 if rng.random() < 0.5 else 255
    h, w = coverage.shape
    rgba = np.empty((h, w, 4), dtype=np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = np.clip(np.rint(coverage * 255), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    return buffer.getvalue()
