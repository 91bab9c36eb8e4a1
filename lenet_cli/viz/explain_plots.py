"""The explanation sheet: one PNG per image showing what the network saw and why it answered.

Panels, each titled: the picture as given, the 28x28 input the network saw,
the top-k classes as bars (and the explained class, when it is not among
them), the attribution map over the input (diverging colours centred at
zero: red is evidence for the target class, blue against it), and, for a
Keras model, the ``conv_1`` and ``conv_2`` feature maps for this input and the
``conv_1`` filters. A model without feature maps gets a one-row sheet: no
empty panels. Matplotlib on its own Agg canvas, as in :mod:`lenet_cli.viz.pixels`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lenet_cli.viz.pixels import png_bytes_from_array, tile_images

SHEET_DPI = 100
SHEET_SIZE_INCHES = (15.0, 9.0)
SHEET_PNG_SIZE = (1500, 900)
"""(width, height) in pixels of a sheet with feature maps (a Keras model)."""

COMPACT_SHEET_SIZE_INCHES = (15.0, 5.4)
COMPACT_SHEET_PNG_SIZE = (1500, 540)
"""(width, height) in pixels of a sheet without them (an exported model): one row of panels."""

ATTRIBUTION_CMAP = "RdBu_r"
"""Diverging: red for positive evidence, blue for negative, white at zero."""

FEATURE_CMAP = "magma"

PANEL_TITLES = (
    "original",
    "network input",
    "top-",
    "attribution",
    "conv_1 feature maps",
    "conv_2 feature maps",
    "conv_1 filters",
)
"""How each panel's title starts (tests look for them)."""

METHOD_NAMES = {"integrated-gradients": "Integrated Gradients", "occlusion": "Occlusion sensitivity"}

UNRELIABLE = "unreliable"
"""The word the sheet's title and the attribution panel use for a map whose completeness gap stayed too large."""

TITLE_FONT_SIZE = 12
PANEL_FONT_SIZE = 10
TARGET_COLOUR = "#c0392b"
OTHER_COLOUR = "#4a6fa5"


@dataclass
class SheetContent:
    """Everything one sheet shows.

    Attributes:
        name: The input as the user named it.
        model: The model file, as shown in the title.
        dataset: ``mnist`` or ``fashion`` (or None when unknown).
        original: The picture as given: ``(H, W)`` luminance or ``(H, W, 3|4)`` RGB(A), floats in [0, 1] or uint8
            (a thumbnail of it is enough).
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
        unavailable_reason: Why the feature-map panels are left out when they are None.
        original_size: ``(width, height)`` of the picture file, when ``original`` is a thumbnail of it.
        logit_difference: For Integrated Gradients: logit(input) - logit(baseline) of ``target``, what the map should sum to.
        attribution_reliable: For Integrated Gradients: False when the gap stayed above ``gap_limit`` at the most steps.
        gap_limit: The gap above which the map is not trusted (e.g. 0.05).
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
    unavailable_reason: str = "they need a .keras model"
    original_size: tuple[int, int] | None = None
    logit_difference: float | None = None
    attribution_reliable: bool | None = None
    gap_limit: float | None = None

    @property
    def has_feature_maps(self) -> bool:
        return self.conv_1_maps is not None and self.conv_2_maps is not None and self.conv_1_filters is not None


def sheet_png_size(content: SheetContent) -> tuple[int, int]:
    """The sheet's ``(width, height)`` in pixels: two rows with feature maps, one without."""
    return SHEET_PNG_SIZE if content.has_feature_maps else COMPACT_SHEET_PNG_SIZE


def shorten_middle(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, its middle replaced by '…' (both ends say the most)."""
    if len(text) <= limit:
        return text
    if limit < 2:
        return "…"[:limit]
    back = (limit - 1) // 2
    return text[: limit - 1 - back] + "…" + (text[-back:] if back else "")


def shorten_path(path: str, limit: int) -> str:
    """``path`` in at most ``limit`` characters: the file name whole where it fits, the middle of its folders elided.

    ``pictures/2024/holiday/kitchen/trousers.jpg`` at 30 becomes
    ``pictures…/kitchen/trousers.jpg``: the file name is what a reader
    looks for, the start of the path says where it is. A file name longer than
    ``limit`` alone loses its own middle and keeps its extension.
    """
    if len(path) <= limit:
        return path
    head, sep, name = path.rpartition("/")
    tail = sep + name
    room = limit - 1 - len(tail)  # characters left for the folders, beside '…'
    if not sep or room < 2:
        return shorten_middle(name, limit)
    back = room // 2
    return head[: room - back] + "…" + (head[len(head) - back :] if back else "") + tail


def bar_classes(probabilities: np.ndarray, top_k: int, target: int) -> list[int]:
    """The classes the bar chart lists, most confident first: the top k, then the explained class if it is not among them.

    ``--target Sandal`` on trousers explains a class the network barely
    considers; its bar is what the reader came to compare.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    order = [int(i) for i in np.argsort(-probabilities, kind="stable")[: max(1, min(top_k, len(probabilities)))]]
    return order if target in order else order + [int(target)]


def class_rank(probabilities: np.ndarray, index: int) -> int:
    """1 for the most confident class (ties in index order, as the chart sorts them)."""
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")
    return int(np.nonzero(order == index)[0][0]) + 1


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
    predicted = int(np.argmax(probabilities))
    method_name = METHOD_NAMES.get(content.method, content.method)
    full = content.has_feature_maps

    figure = Figure(
        figsize=SHEET_SIZE_INCHES if full else COMPACT_SHEET_SIZE_INCHES, dpi=SHEET_DPI, layout="constrained"
    )
    FigureCanvasAgg(figure)
    dataset = f" ({content.dataset})" if content.dataset else ""
    width = figure.bbox.width * 0.96
    figure.suptitle(
        _fit_name(
            figure,
            content.name,
            width,
            TITLE_FONT_SIZE,
            lambda name: f"{name}: predicted '{names[predicted]}' ({probabilities[predicted]:.1%})",
        )
        + "\n"
        + _fit_name(
            figure,
            content.model,
            width,
            TITLE_FONT_SIZE,
            lambda model: f"model {model}{dataset} · {method_name} for '{names[content.target]}'{_verdict(content)}",
        ),
        fontsize=TITLE_FONT_SIZE,
    )
    grid = figure.add_gridspec(2 if full else 1, 4, width_ratios=[1.0, 1.0, 1.15, 1.2])
    _draw_inputs(figure, grid, content)
    _draw_attribution(figure, grid[0, 2], content, method_name, names[content.target])
    _draw_top_k(figure.add_subplot(grid[0, 3]), names, probabilities, content.top_k, content.target)
    if full:
        _draw_network(figure, grid, content)
    notes = (
        [] if full else [f"conv_1 and conv_2 feature maps and conv_1 filters not shown: {content.unavailable_reason}"]
    )
    if content.completeness_gap is not None:
        notes.append(gap_legend(content, names[content.target]))
    if notes:
        figure.supxlabel(_literal("\n".join(notes)), fontsize=9, color="#555555")
    return figure


def _draw_inputs(figure, grid, content: SheetContent) -> None:
    """The picture as given (its file's size in pixels, however small it is drawn), and the 28x28 input the network saw."""
    axes = figure.add_subplot(grid[0, 0])
    original = np.asarray(content.original)
    if original.ndim == 2:
        axes.imshow(original, cmap="gray", vmin=0, vmax=255 if original.dtype == np.uint8 else 1.0)
    else:
        axes.set_facecolor("#d8d8d8")
        axes.imshow(original)
    width, height = content.original_size or (original.shape[1], original.shape[0])
    title = _fit_name(
        figure, content.name, _column_width(figure, grid, 0), PANEL_FONT_SIZE, lambda name: f"original: {name}"
    )
    axes.set_title(f"{title}\n{width}×{height} px, as given", fontsize=PANEL_FONT_SIZE)
    _no_ticks(axes)

    axes = figure.add_subplot(grid[0, 1])
    axes.imshow(content.network_input, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    preprocessing = f", preprocessed as {content.dataset}" if content.dataset else ""
    axes.set_title(f"network input\n28×28{preprocessing}", fontsize=PANEL_FONT_SIZE)
    _no_ticks(axes)


def _draw_attribution(figure, spec, content: SheetContent, method_name: str, target_name: str) -> None:
    """The attribution over the dimmed input, red for the class and blue against it, its colour bar underneath.

    Underneath, not beside: a title wider than the map then has nothing to run into.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    axes = figure.add_subplot(spec)
    limit = attribution_limit(content.attribution)
    axes.imshow(attribution_overlay(content.network_input, content.attribution, limit), interpolation="nearest")
    gap = "" if content.completeness_gap is None else f"\ncompleteness gap {content.completeness_gap:.1%}"
    if content.attribution_reliable is False:
        gap += f": {UNRELIABLE}" + (f" (over {content.gap_limit:.0%})" if content.gap_limit is not None else "")
    axes.set_title(
        _literal(f"attribution: {method_name} for '{target_name}'\n{content.method_detail}{gap}"),
        fontsize=PANEL_FONT_SIZE,
        color=TARGET_COLOUR if content.attribution_reliable is False else "black",
    )
    _no_ticks(axes)
    bar = figure.colorbar(
        ScalarMappable(Normalize(-limit, limit), colormaps[ATTRIBUTION_CMAP]),
        ax=axes,
        orientation="horizontal",
        location="bottom",
        shrink=0.8,
        pad=0.02,
        aspect=30,
    )
    bar.set_label(_literal(f"← against '{target_name}'    for '{target_name}' →"), fontsize=9)
    bar.ax.tick_params(labelsize=8)


def gap_legend(content: SheetContent, target_name: str) -> str:
    """What the completeness gap measures, in one line with this map's numbers, and a second when it is too large."""
    change = "" if content.logit_difference is None else f" ({content.logit_difference:+.3g})"
    line = (
        f"Completeness gap: the attributions should add up to the change in the logit of '{target_name}' from the black "
        f"baseline to this input{change}; the gap is how far their sum misses it, relative to that change."
    )
    if content.attribution_reliable is False:
        limit = f"over {content.gap_limit:.0%}" if content.gap_limit is not None else "too large"
        line += (
            f"\nThis map's gap, {content.completeness_gap:.1%}, is still {limit} with the most steps: "
            f"it is {UNRELIABLE}, do not trust this map as the network's evidence."
        )
    return line


def _verdict(content: SheetContent) -> str:
    return (
        f" · {UNRELIABLE.upper()}: completeness gap {content.completeness_gap:.1%}"
        if content.attribution_reliable is False
        else ""
    )


def _draw_top_k(axes, names, probabilities, top_k: int, target: int) -> None:
    """The top-k classes as bars with their confidences, the explained class in red (added below them when not among them)."""
    classes = bar_classes(probabilities, top_k, target)
    k = max(1, min(top_k, len(names)))
    added = len(classes) > k  # the explained class, below the top k
    shown = classes[::-1]
    colours = [TARGET_COLOUR if i == target else OTHER_COLOUR for i in shown]
    positions = np.arange(len(shown))
    axes.barh(positions, probabilities[shown], color=colours, height=0.6)
    axes.set_yticks(positions, labels=[_literal(names[i]) for i in shown], fontsize=10)
    axes.set_xlim(0.0, 1.25)
    axes.set_xticks([0.0, 0.5, 1.0], labels=["0 %", "50 %", "100 %"], fontsize=8)
    for y, i in zip(positions, shown):
        rank = f" (rank {class_rank(probabilities, i)})" if added and i == target else ""
        axes.text(probabilities[i] + 0.02, y, f"{probabilities[i]:.1%}{rank}", va="center", fontsize=9)
    axes.spines[["top", "right"]].set_visible(False)
    if added:
        axes.axhline(0.5, color="0.6", linewidth=0.8, linestyle="--")
        axes.set_title(
            _literal(f"top-{k} classes (confidence),\nand '{names[target]}', the explained class"),
            fontsize=PANEL_FONT_SIZE,
        )
    else:
        axes.set_title(f"top-{k} classes (confidence)", fontsize=PANEL_FONT_SIZE)


def _draw_network(figure, grid, content: SheetContent) -> None:
    """The bottom row: conv_1 and conv_2 feature maps and the conv_1 filters."""
    maps_1 = np.moveaxis(np.asarray(content.conv_1_maps), -1, 0)
    maps_2 = np.moveaxis(np.asarray(content.conv_2_maps), -1, 0)
    filters = np.asarray(content.conv_1_filters)
    panels = [
        (
            grid[1, 0:2],
            tiled_rgb(maps_1, 5, 2, FEATURE_CMAP),
            f"conv_1 feature maps ({len(maps_1)}, {maps_1.shape[1]}×{maps_1.shape[2]}), each scaled to its own maximum",
        ),
        (
            grid[1, 2],
            tiled_rgb(maps_2, 10, 1, FEATURE_CMAP),
            f"conv_2 feature maps ({len(maps_2)}, {maps_2.shape[1]}×{maps_2.shape[2]})",
        ),
        (
            grid[1, 3],
            tiled_rgb(filters, 5, 1, "gray"),
            f"conv_1 filters ({len(filters)}, {filters.shape[1]}×{filters.shape[2]}), white = positive weight",
        ),
    ]
    for spec, tiles, title in panels:
        axes = figure.add_subplot(spec)
        axes.imshow(tiles, interpolation="nearest")
        axes.set_title(title, fontsize=PANEL_FONT_SIZE)
        _no_ticks(axes)
        for spine in axes.spines.values():
            spine.set_visible(False)


def tiled_rgb(stack: np.ndarray, columns: int, pad: int, cmap: str) -> np.ndarray:
    """Tile ``(n, h, w)`` maps, each stretched to [0, 1], coloured by ``cmap``, with white gaps between them."""
    from matplotlib import colormaps

    tiles = tile_images(stack, columns=columns, pad=pad, normalize=True)
    inside = (
        tile_images(np.ones_like(stack, dtype=np.float32), columns=columns, pad=pad, normalize=False, pad_value=0.0)
        > 0.5
    )
    rgb = colormaps[cmap](tiles)[..., :3]
    rgb[~inside] = 1.0
    return rgb


def render_explanation_png(content: SheetContent) -> bytes:
    """The sheet as PNG bytes, exactly :func:`sheet_png_size` pixels."""
    figure = build_explanation_figure(content)
    figure.canvas.draw()
    return png_bytes_from_array(np.asarray(figure.canvas.buffer_rgba())[:, :, :3])


def _no_ticks(axes) -> None:
    axes.set_xticks([])
    axes.set_yticks([])


def _literal(text: str) -> str:
    """``text`` drawn as written: a '$' in a file name must not start matplotlib's mathtext."""
    return text.replace("$", r"\$")


def _column_width(figure, grid, column: int) -> float:
    """A grid column's share of the sheet's width in pixels, less a margin: what a centred panel title can use."""
    ratios = grid.get_width_ratios()
    return figure.bbox.width * ratios[column] / sum(ratios) - 40


def _fit_name(figure, name: str, max_width: float, fontsize: float, line) -> str:
    """``line(name)`` with ``name`` shortened (:func:`shorten_path`) until the text is at most ``max_width`` pixels wide.

    Measured with the canvas's renderer, so a name of wide letters is cut
    sooner than one of narrow ones, and nothing is clipped at the sheet's edge.
    """
    from matplotlib.font_manager import FontProperties

    renderer = figure.canvas.get_renderer()
    font = FontProperties(size=fontsize)
    limit = len(name)
    while True:
        text = _literal(line(shorten_path(name, limit)))
        if limit <= 12 or renderer.get_text_width_height_descent(text, font, ismath=False)[0] <= max_width:
            return text
        limit -= 1
