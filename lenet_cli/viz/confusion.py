"""The confusion-matrix picture that ``lenet evaluate``, TensorBoard and MLflow show, and where its cells landed.

Matplotlib is imported inside the function that draws, so importing this
module costs only numpy; the figure has its own Agg canvas
(:mod:`lenet_cli.viz.pixels` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lenet_cli.viz.pixels import png_bytes_from_array

CONFUSION_FIGSIZE_INCHES = (8.0, 8.0)
CONFUSION_DPI = 100
CONFUSION_PNG_SIZE = (800, 800)
"""(width, height) in pixels of every confusion-matrix PNG."""
CONFUSION_CMAP = "Blues"
"""Sequential colormap: a higher row-normalised value is a darker cell."""


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
