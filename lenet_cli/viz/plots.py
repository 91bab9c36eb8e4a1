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


def render_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str], title: str) -> ConfusionMatrixRender:
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

RELIABILITY_COLOURS = {"accuracy": "#4c72b0", "over": "#c0392b", "under": "#1e8449", "under_fill": "#c8e6d0"}
"""Accuracy bars; the gap where confidence exceeds accuracy (over-confident) and where accuracy exceeds it (under-confident)."""


@dataclass(frozen=True)
class ReliabilityBin:
    """One non-empty bin as the diagram draws it.

    ``solid`` is the plain accuracy-coloured bar (up to the lower of accuracy
    and confidence); the gap runs from there to the higher one, ``over`` when
    the mean confidence is the higher (an empty box hatched in red: the
    confidence the answers did not earn), ``under`` when the accuracy is (a
    pale green hatched box, the bar's top: accuracy the confidence did not claim).
    ``count`` is the number of answers in the bin, written above it.
    """

    lower: float
    width: float
    count: int
    accuracy: float
    confidence: float

    @property
    def solid(self) -> float:
        return min(self.accuracy, self.confidence)

    @property
    def top(self) -> float:
        return max(self.accuracy, self.confidence)

    @property
    def kind(self) -> str:
        return "over" if self.confidence > self.accuracy else "under"

    @property
    def label(self) -> str:
        return count_label(self.count)


def count_label(count: int) -> str:
    """A bin's count in at most four characters: ``12``, ``950``, ``4.5k``, ``12k``."""
    if count < 1000:
        return str(count)
    return f"{count / 1000:.1f}k" if count < 9950 else f"{count / 1000:.0f}k"


def reliability_bins(bins: Sequence[dict]) -> list[ReliabilityBin]:
    """The non-empty bins of :func:`lenet_cli.core.metrics.calibration`, as :func:`render_reliability_png` draws them."""
    return [
        ReliabilityBin(
            b["lower"], b["upper"] - b["lower"], int(b["count"]), float(b["accuracy"]), float(b["confidence"])
        )
        for b in bins
        if b["count"]
    ]


def build_reliability_figure(bins: Sequence[dict], ece: float, title: str):
    """The reliability diagram as a matplotlib ``Figure`` with an Agg canvas; see :func:`render_reliability_png`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    figure = Figure(
        figsize=(RELIABILITY_PNG_SIZE[0] / 100, RELIABILITY_PNG_SIZE[1] / 100), dpi=100, layout="constrained"
    )
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn = reliability_bins(bins)
    colours = RELIABILITY_COLOURS
    for b in drawn:
        axes.bar(
            b.lower, b.solid, width=b.width, align="edge", color=colours["accuracy"], edgecolor="white", linewidth=0.8
        )
        if b.kind == "over":
            axes.bar(
                b.lower,
                b.top - b.solid,
                bottom=b.solid,
                width=b.width,
                align="edge",
                facecolor="none",
                edgecolor=colours["over"],
                hatch="////",
                linewidth=1.0,
            )
        else:
            axes.bar(
                b.lower,
                b.top - b.solid,
                bottom=b.solid,
                width=b.width,
                align="edge",
                facecolor=colours["under_fill"],
                edgecolor=colours["under"],
                hatch="\\\\",
                linewidth=1.0,
            )
        axes.text(
            b.lower + b.width / 2,
            b.top + 0.012,
            b.label,
            ha="center",
            va="bottom",
            fontsize=7.5,
            color="0.25",
            rotation=90,
        )
    axes.plot([0, 1], [0, 1], color="0.3", linestyle="--", linewidth=1)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.12)  # room for the counts above a bin near 1
    axes.set_yticks(np.linspace(0.0, 1.0, 6))
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlabel("confidence (top probability), in 15 bins")
    axes.set_ylabel("accuracy")
    axes.set_title(f"{title}\nexpected calibration error {ece:.2%} · above each bin: its answers", fontsize=10)
    from matplotlib.lines import Line2D

    handles = [
        Patch(facecolor=colours["accuracy"], edgecolor="white", label="accuracy of the bin's answers"),
        Line2D([], [], color="0.3", linestyle="--", label="perfect calibration (accuracy = confidence)"),
        Patch(
            facecolor="none", edgecolor=colours["over"], hatch="////", label="over-confident: confidence above accuracy"
        ),
        Patch(
            facecolor=colours["under_fill"],
            edgecolor=colours["under"],
            hatch="\\\\",
            label="under-confident: accuracy above confidence",
        ),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=8, frameon=False)
    return figure


def render_reliability_png(bins: Sequence[dict], ece: float, title: str) -> bytes:
    """A reliability diagram: accuracy against confidence per bin, with the diagonal of perfect calibration.

    Each non-empty bin is an accuracy bar with its gap to the bin's mean
    confidence drawn so it reads without the legend: an empty red-hatched box
    above the bar where the answers were over-confident, the bar's top as a
    pale green hatched box where they were under-confident. The bin's count is
    written above it, so a bin of 12 answers is not read like one of 4,000.

    Args:
        bins: :func:`lenet_cli.core.metrics.calibration`'s bins.
        ece: their expected calibration error, shown in the title.
        title: e.g. ``"mnist test"``.

    Returns:
        PNG bytes of size ``RELIABILITY_PNG_SIZE``.
    """
    figure = build_reliability_figure(bins, ece, title)
    figure.canvas.draw()
    return png_bytes_from_array(np.asarray(figure.canvas.buffer_rgba())[:, :, :3])


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
