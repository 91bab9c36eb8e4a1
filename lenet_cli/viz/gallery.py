"""A grid of captioned pictures, such as ``lenet evaluate``'s worst mistakes with their true and predicted classes.

Matplotlib is imported inside the function that draws, so importing this
module costs only numpy; the figure has its own Agg canvas
(:mod:`lenet_cli.viz.pixels` says why).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lenet_cli.viz.pixels import as_image_stack, png_bytes_from_array

GALLERY_DPI = 100
GALLERY_CELL_SIZE = (150, 160)
"""(width, height) in pixels of one captioned image in a gallery PNG."""
_GALLERY_IMAGE_PX = 100
_GALLERY_MARGIN_PX = 6


def render_gallery_png(images: np.ndarray, captions: Sequence[str], columns: int = 8) -> bytes:
    """Draw captioned grayscale images in a grid, e.g. the worst mistakes.

    Each image sits in a ``GALLERY_CELL_SIZE`` cell with its caption above it
    (e.g. ``"true: Shirt\\npred: T-shirt/top 0.97"``). The grid has
    ``min(columns, n)`` columns and ``ceil(n / columns)`` rows, so the PNG is
    exactly ``(cols * cell_width, rows * cell_height)`` pixels.

    Args:
        images: Shape ``(n, h, w)`` or ``(n, h, w, 1)``; floats in ``[0, 1]``
            or ``uint8``. Drawn with a fixed scale (black 0, white 1/255), not
            stretched per image, so faint digits look faint.
        captions: One caption per image; may contain newlines.
        columns: Maximum images per row.

    Returns:
        PNG bytes.

    Raises:
        ValueError: If there are no images, the captions do not match, or
            ``columns < 1``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pictures = as_image_stack(images, normalize=False)
    count = pictures.shape[0]
    if count == 0:
        raise ValueError("there are no images to draw in the gallery.")
    if len(captions) != count:
        raise ValueError(f"need one caption per image. Received: {len(captions)} captions for {count} images")
    if columns < 1:
        raise ValueError(f"columns must be at least 1. Received: {columns}")

    cols = min(columns, count)
    rows = math.ceil(count / cols)
    cell_w, cell_h = GALLERY_CELL_SIZE
    width_px, height_px = cols * cell_w, rows * cell_h
    figure = Figure(figsize=(width_px / GALLERY_DPI, height_px / GALLERY_DPI), dpi=GALLERY_DPI)
    canvas = FigureCanvasAgg(figure)
    for index in range(count):
        row, col = divmod(index, cols)
        left = col * cell_w + (cell_w - _GALLERY_IMAGE_PX) / 2
        bottom = height_px - (row + 1) * cell_h + _GALLERY_MARGIN_PX
        axes = figure.add_axes(
            (left / width_px, bottom / height_px, _GALLERY_IMAGE_PX / width_px, _GALLERY_IMAGE_PX / height_px)
        )
        axes.imshow(pictures[index], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_title(str(captions[index]), fontsize=8, pad=3)
    canvas.draw()
    return png_bytes_from_array(np.asarray(canvas.buffer_rgba())[:, :, :3])
