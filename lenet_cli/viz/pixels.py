"""Image arrays to PNG files and grids: the numpy and Pillow ground every picture of :mod:`lenet_cli.viz` stands on.

The pictures are drawn on a ``matplotlib.figure.Figure`` with its own
``FigureCanvasAgg`` instead of going through pyplot: no global backend switch
(``matplotlib.use``), no global figure registry to leak into, no display, and
safe to call from a Keras callback on another thread. Their PNGs come from the
canvas's pixel buffer encoded by :func:`png_bytes_from_array`, so the image
size is exactly the figure size in pixels and pixel coordinates computed from
the axes transforms match the file.

Nothing here imports matplotlib: :func:`tile_images` lays out TensorBoard's
image grids with numpy alone.
"""

from __future__ import annotations

import io
import math

import numpy as np


def png_bytes_from_array(array: np.ndarray) -> bytes:
    """Encode a grayscale or colour image array as PNG with Pillow.

    Args:
        array: ``(h, w)``, ``(h, w, 1)``, ``(h, w, 3)`` or ``(h, w, 4)``;
            ``uint8`` as is, or floats in ``[0, 1]`` (clipped, then scaled to
            0..255 and rounded).

    Returns:
        PNG bytes (mode ``L``, ``RGB`` or ``RGBA``).

    Raises:
        ValueError: If the shape or dtype is not one of the above.
    """
    from PIL import Image

    pixels = np.asarray(array)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] in (3, 4))):
        raise ValueError(f"an image must be (h, w) or (h, w, 1|3|4). Received: shape {np.asarray(array).shape}")
    if np.issubdtype(pixels.dtype, np.floating):
        pixels = np.rint(np.clip(np.nan_to_num(pixels), 0.0, 1.0) * 255.0).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        raise ValueError(f"an image must be uint8 or float in [0, 1]. Received: dtype {pixels.dtype}")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, format="PNG")
    return buffer.getvalue()


def tile_images(
    images: np.ndarray,
    columns: int | None = None,
    pad: int = 1,
    normalize: bool = True,
    pad_value: float = 0.5,
) -> np.ndarray:
    """Lay a stack of small images out as one grayscale grid (numpy only).

    Used for TensorBoard images: sample inputs, or the first convolution's
    filters (pass ``np.moveaxis(kernel[:, :, 0, :], -1, 0)`` for a Keras
    ``(h, w, 1, filters)`` kernel).

    Args:
        images: Shape ``(n, h, w)`` or ``(n, h, w, 1)``, float or integer.
        columns: Tiles per row; defaults to ``ceil(sqrt(n))``.
        pad: Pixels between neighbouring tiles (none around the border).
        normalize: If true, stretch each image independently to ``[0, 1]``
            (a constant image becomes all zeros), which is what filters need.
            If false, ``uint8`` is divided by 255 and floats are clipped to
            ``[0, 1]``.
        pad_value: Grey level of the gaps and of unused grid slots; mid-grey
            stands out against both black and white tiles.

    Returns:
        ``float32`` array of shape ``(rows * h + (rows - 1) * pad,
        cols * w + (cols - 1) * pad)`` with values in ``[0, 1]``, where
        ``cols = min(columns, n)`` and ``rows = ceil(n / cols)``.

    Raises:
        ValueError: If there are no images, or ``columns < 1`` or ``pad < 0``.
    """
    tiles = as_image_stack(images, normalize=normalize)
    count, tile_h, tile_w = tiles.shape
    if count == 0:
        raise ValueError("there are no images to tile.")
    if columns is None:
        columns = math.ceil(math.sqrt(count))
    if columns < 1:
        raise ValueError(f"columns must be at least 1. Received: {columns}")
    if pad < 0:
        raise ValueError(f"pad must be zero or more. Received: {pad}")
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    grid = np.full(
        (rows * tile_h + (rows - 1) * pad, cols * tile_w + (cols - 1) * pad),
        np.float32(min(max(pad_value, 0.0), 1.0)),
        dtype=np.float32,
    )
    for index in range(count):
        row, col = divmod(index, cols)
        top, left = row * (tile_h + pad), col * (tile_w + pad)
        grid[top : top + tile_h, left : left + tile_w] = tiles[index]
    return grid


def as_image_stack(images: np.ndarray, normalize: bool) -> np.ndarray:
    """Turn ``(n, h, w[, 1])`` uint8/float images into float32 ``(n, h, w)`` in ``[0, 1]``."""
    stack = np.asarray(images)
    if stack.ndim == 4 and stack.shape[3] == 1:
        stack = stack[..., 0]
    if stack.ndim != 3 or stack.shape[1] == 0 or stack.shape[2] == 0:
        raise ValueError(
            f"images must have shape (n, h, w) or (n, h, w, 1). Received: shape {np.asarray(images).shape}"
        )
    if normalize:
        values = stack.astype(np.float32)
        low = values.min(axis=(1, 2), keepdims=True)
        span = values.max(axis=(1, 2), keepdims=True) - low
        out = np.zeros_like(values)
        np.divide(values - low, span, out=out, where=span > 0)
        return out
    if stack.dtype == np.uint8:
        return stack.astype(np.float32) / np.float32(255.0)
    return np.clip(stack.astype(np.float32), 0.0, 1.0)
