"""The reliability diagram: how far a model's confidence is from its accuracy, bin by bin.

``lenet evaluate --calibrate`` saves it and MLflow logs it. Matplotlib is
imported inside the functions that draw, so importing this module costs only
numpy; the figure has its own Agg canvas (:mod:`lenet_cli.viz.pixels` says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lenet_cli.viz.pixels import png_bytes_from_array

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
