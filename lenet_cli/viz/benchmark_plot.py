"""``lenet benchmark --plot``: accuracy against batch-1 latency, one labelled point per format.

The choice the plot serves is a trade: up and to the left is better. Each point's label carries the format's size
on disk, the third thing a person weighs. Drawn as :mod:`lenet_cli.viz.pixels` says: a ``Figure`` with its own Agg
canvas (no pyplot, no global state), encoded by Pillow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BENCHMARK_PNG_SIZE = (900, 600)
"""(width, height) in pixels of the plot."""


def label_offsets(rows: Sequence[dict]) -> list[tuple[int, dict, tuple[float, float]]]:
    """Where each point's label goes, in points from the point: formats that land close together (ONNX and LiteRT often
    do, and every float32 format has the same accuracy) get labels stacked above and below one another, not on top."""
    order = sorted(range(len(rows)), key=lambda i: rows[i]["latency_ms_p50"])
    placed: list[tuple[int, dict, tuple[float, float]]] = []
    cluster: list[int] = []
    for i in order:
        near = (
            cluster
            and rows[i]["latency_ms_p50"] / rows[cluster[-1]]["latency_ms_p50"] < 1.35
            and abs(rows[i]["accuracy"] - rows[cluster[-1]]["accuracy"]) < 0.0005
        )
        cluster = [*cluster, i] if near else [i]
        rank = len(cluster) - 1
        dy = (14 + 16 * (rank // 2)) * (1 if rank % 2 == 0 else -1)
        placed.append((i, rows[i], (12, dy)))
    return placed


def render_benchmark_png(rows: Sequence[dict], title: str) -> bytes:
    """Accuracy (y) against batch-1 latency p50 in ms (x, logarithmic), one labelled point per measured format.

    Args:
        rows: ``lenet benchmark``'s rows (:meth:`BenchmarkRow.to_json_dict`); those with ``error`` are listed
            under the axes instead of drawn.
        title: What was measured, e.g. ``"run mnist-20261127 on 10,000 mnist test images"``.

    Returns:
        PNG bytes of size :data:`BENCHMARK_PNG_SIZE`.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator

    from lenet_cli.core.units import human_size
    from lenet_cli.viz.pixels import png_bytes_from_array

    figure = Figure(figsize=(BENCHMARK_PNG_SIZE[0] / 100, BENCHMARK_PNG_SIZE[1] / 100), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    measured = [
        r
        for r in rows
        if r.get("error") is None and r.get("latency_ms_p50") is not None and r.get("accuracy") is not None
    ]
    for i, row in enumerate(measured):
        axes.scatter([row["latency_ms_p50"]], [row["accuracy"] * 100], s=60, color=f"C{i}", zorder=3)
    for i, row, (dx, dy) in label_offsets(measured):
        axes.annotate(
            f"{row['format']} ({human_size(row['size_bytes'])})",
            (row["latency_ms_p50"], row["accuracy"] * 100),
            textcoords="offset points",
            xytext=(dx, dy),
            fontsize=9,
            color=f"C{i}",
            va="center",
            arrowprops={"arrowstyle": "-", "color": f"C{i}", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 4},
        )
    if measured:
        xs = np.array([r["latency_ms_p50"] for r in measured])
        ys = np.array([r["accuracy"] * 100 for r in measured])
        axes.set_xscale("log")
        axes.set_xlim(xs.min() / 1.6, xs.max() * 2.5)  # room for the labels on the right
        spread = max(float(ys.max() - ys.min()), 0.2)
        axes.set_ylim(ys.min() - spread * 0.8, ys.max() + spread * 0.8)
        plain = FuncFormatter(lambda value, _: f"{value:g}")
        axes.xaxis.set_major_formatter(plain)
        axes.xaxis.set_minor_locator(LogLocator(base=10, subs=(2.0, 5.0)))  # 0.2, 0.5, 2, 5: labels that never collide
        axes.xaxis.set_minor_formatter(plain)
        axes.tick_params(axis="x", which="minor", labelsize=7)
    axes.grid(True, which="both", linewidth=0.4, alpha=0.5)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_xlabel("batch-1 latency, median (ms, log scale): left is faster")
    axes.set_ylabel("accuracy (%): up is better")
    axes.set_title(title, fontsize=10)
    failed = [r for r in rows if r.get("error") is not None]
    if failed:
        figure.text(
            0.01,
            0.005,
            "not measured: " + "; ".join(f"{r['format']} ({r['error']})" for r in failed)[:160],
            fontsize=7.5,
            color="0.35",
        )
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return png_bytes_from_array(np.asarray(canvas.buffer_rgba())[:, :, :3])
