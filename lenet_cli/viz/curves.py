"""Several runs' validation curves on one chart, for ``lenet runs compare --plot``.

As in :mod:`lenet_cli.viz.pixels`: a ``Figure`` with its own Agg canvas (no
pyplot, no global state), matplotlib imported only when a chart is drawn, and
the PNG encoded from the canvas's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CURVES_PNG_SIZE = (900, 560)
"""(width, height) in pixels of the chart."""


def render_curves_png(
    series: Sequence[tuple[str, Sequence[int], Sequence[float | None]]], title: str, ylabel: str = "validation accuracy"
) -> bytes:
    """One line per run: ``(label, epochs, values)``; a run with no epochs yet is named in the legend with no line.

    The y axis spans the values drawn (with a margin), not 0..1: runs that differ
    by half a point would otherwise be one line.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from lenet_cli.viz.pixels import png_bytes_from_array

    figure = Figure(figsize=(CURVES_PNG_SIZE[0] / 100, CURVES_PNG_SIZE[1] / 100), dpi=100, layout="constrained")
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn: list[float] = []
    for label, epochs, values in series:
        points = [(e, float(v)) for e, v in zip(epochs, values) if v is not None and np.isfinite(v)]
        if not points:
            axes.plot([], [], label=f"{label} (no epochs)")
            continue
        xs, ys = zip(*points)
        axes.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, linewidth=1.5, label=label)
        drawn += ys
    if drawn:
        low, high = min(drawn), max(drawn)
        margin = max(0.005, (high - low) * 0.08)
        axes.set_ylim(max(0.0, low - margin), min(1.0, high + margin) if high <= 1.0 else high + margin)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.grid(True, color="0.9")
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlabel("epoch")
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, frameon=False, loc="lower right")
    canvas.draw()
    return png_bytes_from_array(np.asarray(canvas.buffer_rgba())[:, :, :3])
