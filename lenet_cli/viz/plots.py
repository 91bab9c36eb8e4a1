"""Pictures for people and for TensorBoard: confusion matrices, galleries, tiles.

Matplotlib is imported inside the functions that need it, so importing this
module costs only numpy. We draw on a ``matplotlib.figure.Figure`` with its own
``FigureCanvasAgg`` instead of going through pyplot: no global backend switch
(``matplotlib.use``), no global figure registry to leak into, no display, and
safe to call from a Keras callback on another thread.

PNGs come from the canvas's pixel buffer encoded by Pillow, so the image size
is exactly the figure size in pixels and pixel coordinates computed from the
axes transforms match the file.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

CONFUSION_FIGSIZE_INCHES = (8.0, 8.0)
CONFUSION_DPI = 100
CONFUSION_PNG_SIZE = (800, 800)
"""(width, height) in pixels of every confusion-matrix PNG."""

CONFUSION_CMAP = "Blues"
"""Sequential colormap: a higher row-normalised value is a darker cell."""

GALLERY_DPI = 100
GALLERY_CELL_SIZE = (150, 160)
"""(width, height) in pixels of one captioned image in a gallery PNG."""

_GALLERY_IMAGE_PX = 100
_GALLERY_MARGIN_PX = 6


@dataclass(frozen=True)
class ConfusionMatrixRender:
    """A rendered confusion matrix plus where each cell landed in the PNG.

    Attributes:
        png: The PNG file contents.
        cell_centers: ``(true_index, predicted_index)`` -> ``(x, y)`` pixel
            position of the cell centre, origin at the top-left of the PNG.
        cell_size: ``(width, height)`` of one cell in pixels.
    """

    png: bytes
    cell_centers: dict[tuple[int, int], tuple[float, float]] = field(repr=False)
    cell_size: tuple[float, float]


def row_normalize(matrix: np.ndarray) -> np.ndarray:
    """Divide each row by its sum so colour shows recall, not class size.

    Rows with zero support stay all zeros instead of becoming NaN.

    Args:
        matrix: Confusion matrix, rows true and columns predicted.

    Returns:
        ``float64`` array of the same shape with rows summing to 1 (or 0).
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    out = np.zeros_like(matrix)
    np.divide(matrix, totals, out=out, where=totals != 0)
    return out


def render_confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], title: str
) -> ConfusionMatrixRender:
    """Draw a labelled confusion-matrix heatmap and report where its cells are.

    Colour is the row-normalised matrix on a fixed 0..1 scale (so pictures
    from different epochs compare directly); each cell is annotated with its
    raw count in black or white, whichever contrasts with the cell.

    Args:
        matrix: Square count matrix, rows true and columns predicted.
        class_names: One name per row, in index order.
        title: Shown above the plot, e.g. ``"epoch 3 — validation accuracy 0.9121"``.

    Returns:
        A :class:`ConfusionMatrixRender`; the PNG is ``CONFUSION_PNG_SIZE``.

    Raises:
        ValueError: If the matrix is not square or the names do not match it.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(matrix)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.shape[0] == 0:
        raise ValueError(f"a confusion matrix must be square and non-empty. Received: shape {counts.shape}")
    num_classes = counts.shape[0]
    if len(class_names) != num_classes:
        raise ValueError(
            f"need one class name per confusion-matrix row. "
            f"Received: {len(class_names)} names for {num_classes} classes"
        )
    normalized = row_normalize(counts)
    cmap = colormaps[CONFUSION_CMAP]

    figure = Figure(figsize=CONFUSION_FIGSIZE_INCHES, dpi=CONFUSION_DPI, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(normalized, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of true class")

    ticks = np.arange(num_classes)
    axes.set_xticks(ticks, labels=[str(name) for name in class_names], rotation=45, ha="right", rotation_mode="anchor")
    axes.set_yticks(ticks, labels=[str(name) for name in class_names])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title(title)

    font_size = max(5.0, min(10.0, 100.0 / num_classes))
    for i in range(num_classes):
        for j in range(num_classes):
            red, green, blue, _ = cmap(normalized[i, j])
            luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
            axes.text(
                j,
                i,
                str(int(counts[i, j])),
                ha="center",
                va="center",
                fontsize=font_size,
                color="white" if luminance < 0.5 else "black",
            )

    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[:, :, :3]
    height = pixels.shape[0]
    to_display = axes.transData.transform
    centers = {}
    for i in range(num_classes):
        for j in range(num_classes):
            x, y = to_display((j, i))
            centers[(i, j)] = (float(x), float(height - y))
    (x0, y0), (x1, y1) = to_display([(-0.5, -0.5), (0.5, 0.5)])
    cell_size = (float(abs(x1 - x0)), float(abs(y1 - y0)))
    return ConfusionMatrixRender(png=png_bytes_from_array(pixels), cell_centers=centers, cell_size=cell_size)


def render_confusion_matrix_png(matrix: np.ndarray, class_names: Sequence[str], title: str) -> bytes:
    """The PNG of :func:`render_confusion_matrix`, for callers that only save or log it.

    Returns:
        PNG bytes of size ``CONFUSION_PNG_SIZE``.
    """
    return render_confusion_matrix(matrix, class_names, title).png


RELIABILITY_PNG_SIZE = (640, 640)


def render_reliability_png(bins: Sequence[dict], ece: float, title: str) -> bytes:
    """A reliability diagram: accuracy against confidence per bin, with the diagonal of perfect calibration.

    Args:
        bins: :func:`lenet_cli.core.metrics.calibration`'s bins.
        ece: their expected calibration error, shown in the legend.
        title: e.g. ``"mnist test"``.

    Returns:
        PNG bytes of size ``RELIABILITY_PNG_SIZE``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 6.4), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    filled = [b for b in bins if b["count"]]
    lowers = [b["lower"] for b in filled]
    widths = [b["upper"] - b["lower"] for b in filled]
    axes.bar(lowers, [b["accuracy"] for b in filled], width=widths, align="edge", color="#4c72b0", edgecolor="white",
             label=f"accuracy (ECE {ece:.2%})")
    axes.bar(lowers, [b["confidence"] - b["accuracy"] for b in filled], bottom=[b["accuracy"] for b in filled], width=widths,
             align="edge", color="#dd8452", alpha=0.45, edgecolor="white", label="gap to mean confidence")
    axes.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1, label="perfect calibration")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (top probability)")
    axes.set_ylabel("accuracy")
    axes.set_title(title)
    axes.legend(loc="upper left")
    canvas.draw()
    return png_bytes_from_array(np.asarray(canvas.buffer_rgba())[:, :, :3])


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

    pictures = _as_image_stack(images, normalize=False)
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
    tiles = _as_image_stack(images, normalize=normalize)
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


def _as_image_stack(images: np.ndarray, normalize: bool) -> np.ndarray:
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
