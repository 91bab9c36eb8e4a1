"""The explanation sheet: one PNG per image showing what the network saw and why it answered.

Panels, each titled: the picture as given, the 28x28 input the network saw,
the top-k classes as bars, the attribution map over the input (diverging
colours centred at zero: red is evidence for the target class, blue against
it), the ``conv_1`` and ``conv_2`` feature maps for this input, and the
``conv_1`` filters. Matplotlib on its own Agg canvas, as in :mod:`lenet_cli.viz.plots`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lenet_cli.viz.plots import png_bytes_from_array, tile_images

SHEET_DPI = 100
SHEET_SIZE_INCHES = (15.0, 9.0)
SHEET_PNG_SIZE = (1500, 900)
"""(width, height) in pixels of every explanation sheet."""

ATTRIBUTION_CMAP = "RdBu_r"
"""Diverging: red for positive evidence, blue for negative, white at zero."""

FEATURE_CMAP = "magma"

PANEL_TITLES = ("original", "network input", "top-", "attribution", "conv_1 feature maps", "conv_2 feature maps", "conv_1 filters")
"""How each panel's title starts (tests look for them)."""

METHOD_NAMES = {"integrated-gradients": "Integrated Gradients", "occlusion": "Occlusion sensitivity"}


@dataclass
class SheetContent:
    """Everything one sheet shows.

    Attributes:
        name: The input as the user named it.
        model: The model file, as shown in the title.
        dataset: ``mnist`` or ``fashion`` (or None when unknown).
        original: The picture as given: ``(H, W)`` luminance or ``(H, W, 3|4)`` RGB(A), floats in [0, 1] or uint8.
        network_input: ``(28, 28)`` floats in [0, 1].
        class_names: Every class's name, by index.
        probabilities: ``(classes,)``.
        top_k: How many classes the bar chart lists.
        method: ``integrated-gradients`` or ``occlusion``.
        method_detail: e.g. ``"50 steps, black baseline"``.
        target: The class the attribution explains.
        attribution: ``(28, 28)``, positive = evidence for ``target``.
        completeness_gap: For Integrated Gradients: the relative gap, else None.
        conv_1_maps: ``(24, 24, 20)`` activations, or None (no Keras model).
        conv_2_maps: ``(10, 10, 50)`` activations, or None.
        conv_1_filters: ``(20, 5, 5)`` kernels, or None.
        unavailable_reason: Shown instead of the feature-map panels when they are None.
    """

    name: str
    model: str
    dataset: str | None
    original: np.ndarray
    network_input: np.ndarray
    class_names: Sequence[str]
    probabilities: np.ndarray
    top_k: int
    method: str
    method_detail: str
    target: int
    attribution: np.ndarray
    completeness_gap: float | None = None
    conv_1_maps: np.ndarray | None = None
    conv_2_maps: np.ndarray | None = None
    conv_1_filters: np.ndarray | None = None
    unavailable_reason: str = "feature maps need a .keras model"


def attribution_limit(attribution: np.ndarray) -> float:
    """The colour scale's half-range: the 99.5th percentile of |attribution| (one outlier pixel cannot wash the map out)."""
    magnitude = np.abs(np.asarray(attribution, dtype=np.float64)).ravel()
    if magnitude.size == 0 or magnitude.max() == 0:
        return 1.0
    limit = float(np.quantile(magnitude, 0.995))
    return limit if limit > 0 else float(magnitude.max())


def attribution_overlay(network_input: np.ndarray, attribution: np.ndarray, limit: float | None = None) -> np.ndarray:
    """RGB ``(28, 28, 3)``: the input in dim grey, coloured by the attribution where it is strong.

    Each pixel blends from the grey input towards the diverging colour of its
    attribution in proportion to ``|a| / limit``, so the strokes stay visible
    and weak evidence does not hide them.
    """
    from matplotlib import colormaps

    limit = attribution_limit(attribution) if limit is None else limit
    scaled = np.clip(np.asarray(attribution, dtype=np.float64) / limit, -1.0, 1.0)
    colour = colormaps[ATTRIBUTION_CMAP]((scaled + 1.0) / 2.0)[..., :3]
    grey = 0.15 + 0.55 * np.clip(np.asarray(network_input, dtype=np.float64), 0.0, 1.0)
    weight = np.abs(scaled)[..., None] ** 0.7
    return (1.0 - weight) * grey[..., None] + weight * colour


def build_explanation_figure(content: SheetContent):
    """The sheet as a matplotlib ``Figure`` (with an Agg canvas attached); see :func:`render_explanation_png`."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = [str(n) for n in content.class_names]
    probabilities = np.asarray(content.probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, kind="stable")[: max(1, min(content.top_k, len(names)))]
    predicted = int(order[0])
    method_name = METHOD_NAMES.get(content.method, content.method)

    figure = Figure(figsize=SHEET_SIZE_INCHES, dpi=SHEET_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    dataset = f" ({content.dataset})" if content.dataset else ""
    figure.suptitle(
        f"{_short(content.name, 60)}: predicted '{names[predicted]}' ({probabilities[predicted]:.1%})\n"
        f"model {_short(content.model, 60)}{dataset} · {method_name} for '{names[content.target]}'",
        fontsize=12,
    )
    grid = figure.add_gridspec(2, 4, height_ratios=[1.0, 1.0], width_ratios=[1.0, 1.0, 1.15, 1.2])
    _draw_inputs(figure, grid, content)
    _draw_attribution(figure, grid[0, 2], content, method_name, names[content.target])
    _draw_top_k(figure.add_subplot(grid[0, 3]), names, probabilities, order, content.target)
    _draw_network(figure, grid, content)
    return figure


def _draw_inputs(figure, grid, content: SheetContent) -> None:
    """The picture as given, and the 28x28 input the network saw."""
    axes = figure.add_subplot(grid[0, 0])
    original = np.asarray(content.original)
    if original.ndim == 2:
        axes.imshow(original, cmap="gray", vmin=0, vmax=255 if original.dtype == np.uint8 else 1.0)
    else:
        axes.set_facecolor("#d8d8d8")
        axes.imshow(original)
    axes.set_title(f"original: {_short(content.name)}\n{original.shape[1]}×{original.shape[0]} px, as given", fontsize=10)
    _no_ticks(axes)

    axes = figure.add_subplot(grid[0, 1])
    axes.imshow(content.network_input, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    preprocessing = f", preprocessed as {content.dataset}" if content.dataset else ""
    axes.set_title(f"network input\n28×28{preprocessing}", fontsize=10)
    _no_ticks(axes)


def _draw_attribution(figure, spec, content: SheetContent, method_name: str, target_name: str) -> None:
    """The attribution over the dimmed input, red for the class and blue against it, with its colour bar."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes = figure.add_subplot(spec)
    limit = attribution_limit(content.attribution)
    axes.imshow(attribution_overlay(content.network_input, content.attribution, limit), interpolation="nearest")
    gap = "" if content.completeness_gap is None else f"\ncompleteness gap {content.completeness_gap:.1%}"
    axes.set_title(f"attribution: {method_name} for '{target_name}'\n{content.method_detail}{gap}", fontsize=10)
    _no_ticks(axes)
    bar = figure.colorbar(ScalarMappable(Normalize(-limit, limit), colormaps[ATTRIBUTION_CMAP]), ax=axes, shrink=0.85, pad=0.02)
    bar.set_label(f"← against '{target_name}'    for '{target_name}' →", fontsize=9)
    bar.ax.tick_params(labelsize=8)


def _draw_top_k(axes, names, probabilities, order, target: int) -> None:
    """The top-k classes as bars with their confidences, the explained class in red."""
    shown = order[::-1]
    colours = ["#c0392b" if int(i) == target else "#4a6fa5" for i in shown]
    positions = np.arange(len(shown))
    axes.barh(positions, probabilities[shown], color=colours, height=0.6)
    axes.set_yticks(positions, labels=[names[int(i)] for i in shown], fontsize=10)
    axes.set_xlim(0.0, 1.18)
    axes.set_xticks([0.0, 0.5, 1.0], labels=["0 %", "50 %", "100 %"], fontsize=8)
    for y, i in zip(positions, shown):
        axes.text(probabilities[int(i)] + 0.02, y, f"{probabilities[int(i)]:.1%}", va="center", fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    axes.set_title(f"top-{len(order)} classes (confidence)", fontsize=10)


def _draw_network(figure, grid, content: SheetContent) -> None:
    """The bottom row: conv_1 and conv_2 feature maps and the conv_1 filters, or why they are unavailable."""
    if content.conv_1_maps is None or content.conv_2_maps is None or content.conv_1_filters is None:
        axes = figure.add_subplot(grid[1, :])
        axes.text(0.5, 0.5, f"conv_1 feature maps, conv_2 feature maps, conv_1 filters: unavailable\n({content.unavailable_reason})",
                  ha="center", va="center", fontsize=12, color="#555555", transform=axes.transAxes)
        axes.set_title("conv_1 feature maps · conv_2 feature maps · conv_1 filters", fontsize=10)
        _no_ticks(axes)
        for spine in axes.spines.values():
            spine.set_visible(False)
        return
    maps_1 = np.moveaxis(np.asarray(content.conv_1_maps), -1, 0)
    maps_2 = np.moveaxis(np.asarray(content.conv_2_maps), -1, 0)
    filters = np.asarray(content.conv_1_filters)
    panels = [
        (grid[1, 0:2], tiled_rgb(maps_1, 5, 2, FEATURE_CMAP),
         f"conv_1 feature maps ({len(maps_1)}, {maps_1.shape[1]}×{maps_1.shape[2]}), each scaled to its own maximum"),
        (grid[1, 2], tiled_rgb(maps_2, 10, 1, FEATURE_CMAP),
         f"conv_2 feature maps ({len(maps_2)}, {maps_2.shape[1]}×{maps_2.shape[2]})"),
        (grid[1, 3], tiled_rgb(filters, 5, 1, "gray"),
         f"conv_1 filters ({len(filters)}, {filters.shape[1]}×{filters.shape[2]}), white = positive weight"),
    ]
    for spec, tiles, title in panels:
        axes = figure.add_subplot(spec)
        axes.imshow(tiles, interpolation="nearest")
        axes.set_title(title, fontsize=10)
        _no_ticks(axes)
        for spine in axes.spines.values():
            spine.set_visible(False)


def tiled_rgb(stack: np.ndarray, columns: int, pad: int, cmap: str) -> np.ndarray:
    """Tile ``(n, h, w)`` maps, each stretched to [0, 1], coloured by ``cmap``, with white gaps between them."""
    from matplotlib import colormaps

    tiles = tile_images(stack, columns=columns, pad=pad, normalize=True)
    inside = tile_images(np.ones_like(stack, dtype=np.float32), columns=columns, pad=pad, normalize=False, pad_value=0.0) > 0.5
    rgb = colormaps[cmap](tiles)[..., :3]
    rgb[~inside] = 1.0
    return rgb


def render_explanation_png(content: SheetContent) -> bytes:
    """The sheet as PNG bytes, exactly :data:`SHEET_PNG_SIZE` pixels."""
    figure = build_explanation_figure(content)
    figure.canvas.draw()
    return png_bytes_from_array(np.asarray(figure.canvas.buffer_rgba())[:, :, :3])


def _no_ticks(axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _short(name: str, limit: int = 40) -> str:
    return name if len(name) <= limit else "…" + name[-(limit - 1):]
