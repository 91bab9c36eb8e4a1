"""Rendering: PNGs decode at the promised size and the pictures mean what they say."""

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from lenet_cli.viz.confusion import (
    CONFUSION_PNG_SIZE,
    render_confusion_matrix,
    render_confusion_matrix_png,
    row_normalize,
)
from lenet_cli.viz.gallery import GALLERY_CELL_SIZE, render_gallery_png
from lenet_cli.viz.pixels import png_bytes_from_array, tile_images

# Dominant diagonal, one heavy off-diagonal cell (true 1 -> predicted 2), one empty row.
# Row sums differ (1000, 40, 100, 0) so colouring by raw counts would fail the test.
MATRIX = np.array(
    [
        [900, 0, 100, 0],
        [2, 24, 14, 0],
        [0, 2, 98, 0],
        [0, 0, 0, 0],
    ]
)
NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress"]


def _decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    image.load()
    return image


@pytest.fixture(scope="module")
def rendered():
    return render_confusion_matrix(MATRIX, NAMES, "epoch 3 — validation accuracy 0.9121")


def test_row_normalize_keeps_empty_rows_zero():
    normalized = row_normalize(np.array([[3, 1], [0, 0]]))
    assert normalized.tolist() == [[0.75, 0.25], [0.0, 0.0]]


def test_confusion_png_has_fixed_size(rendered):
    assert _decode(rendered.png).size == CONFUSION_PNG_SIZE
    small = render_confusion_matrix_png(np.array([[1, 0], [0, 1]]), ["a", "b"], "two classes")
    assert _decode(small).size == CONFUSION_PNG_SIZE


def test_cell_centers_form_a_grid_inside_the_image(rendered):
    width, height = CONFUSION_PNG_SIZE
    cell_w, cell_h = rendered.cell_size
    assert cell_w > 20 and cell_h > 20
    assert len(rendered.cell_centers) == 16
    for (i, j), (x, y) in rendered.cell_centers.items():
        assert 0 < x < width and 0 < y < height
        # columns (predicted) go right, rows (true) go down
        assert x == pytest.approx(rendered.cell_centers[(0, 0)][0] + j * cell_w, abs=1.0)
        assert y == pytest.approx(rendered.cell_centers[(0, 0)][1] + i * cell_h, abs=1.0)


def test_heaviest_cells_are_darkest(rendered):
    pixels = np.asarray(_decode(rendered.png).convert("RGB"), dtype=np.float64)
    luminance_image = pixels @ np.array([0.2126, 0.7152, 0.0722])
    cell_w, cell_h = rendered.cell_size
    normalized = row_normalize(MATRIX)
    samples = {}
    for (i, j), (x, y) in rendered.cell_centers.items():
        # a patch between the centre (where the count is written) and the bottom-right corner
        px, py = int(round(x + 0.3 * cell_w)), int(round(y + 0.3 * cell_h))
        patch = luminance_image[py - 2 : py + 3, px - 2 : px + 3]
        assert patch.std() < 1.0, f"patch for cell {(i, j)} is not a flat colour"
        samples[(i, j)] = (normalized[i, j], patch.mean())
    for value_a, lum_a in samples.values():
        for value_b, lum_b in samples.values():
            if value_a > value_b + 0.01:
                assert lum_a < lum_b, f"value {value_a} should be darker than {value_b}"
            elif value_a == value_b:
                assert lum_a == pytest.approx(lum_b, abs=1.0)
    assert min(samples, key=lambda cell: samples[cell][1]) == (2, 2)  # 98 of 100
    assert samples[(1, 2)][1] < samples[(0, 2)][1]  # the heavy confusion stands out
    assert samples[(3, 3)][1] == pytest.approx(max(lum for _, lum in samples.values()), abs=1.0)  # empty row


def test_confusion_matrix_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        render_confusion_matrix_png(np.zeros((2, 3)), ["a", "b"], "t")
    with pytest.raises(ValueError, match="1 names for 2 classes"):
        render_confusion_matrix_png(np.eye(2), ["a"], "t")


def test_gallery_grid_size_float_and_uint8():
    rng = np.random.default_rng(0)
    images = rng.random((11, 28, 28))
    captions = ["true: Shirt\npred: T-shirt/top 0.97"] * 11
    cell_w, cell_h = GALLERY_CELL_SIZE
    assert _decode(render_gallery_png(images, captions, columns=8)).size == (8 * cell_w, 2 * cell_h)
    as_uint8 = (images[:3, :, :, None] * 255).astype(np.uint8)
    assert _decode(render_gallery_png(as_uint8, captions[:3], columns=8)).size == (3 * cell_w, cell_h)


def test_gallery_rejects_mismatched_captions():
    with pytest.raises(ValueError, match="2 captions for 3 images"):
        render_gallery_png(np.zeros((3, 28, 28)), ["a", "b"])
    with pytest.raises(ValueError, match="no images"):
        render_gallery_png(np.zeros((0, 28, 28)), [])


def test_tile_images_shape_and_padding():
    grid = tile_images(np.zeros((6, 5, 4)), pad=1, normalize=False)
    # ceil(sqrt(6)) = 3 columns, 2 rows
    assert grid.shape == (2 * 5 + 1, 3 * 4 + 2)
    assert grid.dtype == np.float32
    assert grid[5, :].tolist() == [0.5] * grid.shape[1]  # horizontal gap
    assert grid[:, 4].tolist() == [0.5] * grid.shape[0]  # vertical gap
    assert tile_images(np.zeros((5, 28, 28, 1)), columns=2, pad=0).shape == (3 * 28, 2 * 28)
    assert tile_images(np.zeros((2, 3, 3)), columns=8, pad=2).shape == (3, 3 + 2 + 3)


def test_tile_images_normalizes_each_image_independently():
    filters = np.stack([np.arange(9.0).reshape(3, 3) - 4, np.full((3, 3), 7.0), np.arange(9.0).reshape(3, 3) * 100])
    grid = tile_images(filters, columns=3, pad=1)
    first, constant, third = grid[:, 0:3], grid[:, 4:7], grid[:, 8:11]
    assert first.min() == 0.0 and first.max() == 1.0
    assert first[0, 1] == pytest.approx(1 / 8)
    assert np.all(constant == 0.0)
    np.testing.assert_allclose(third, first)
    assert grid.min() >= 0.0 and grid.max() <= 1.0


def test_tile_images_without_normalize_scales_uint8_and_clips_floats():
    grid = tile_images(np.array([[[0, 51], [255, 102]]], dtype=np.uint8), normalize=False)
    np.testing.assert_allclose(grid, [[0.0, 0.2], [1.0, 0.4]], atol=1e-6)
    clipped = tile_images(np.array([[[-1.0, 0.5], [2.0, 1.0]]]), normalize=False)
    np.testing.assert_allclose(clipped, [[0.0, 0.5], [1.0, 1.0]])


def test_png_bytes_from_array_modes_and_values():
    gray = _decode(png_bytes_from_array(np.array([[0.0, 0.5], [1.0, 2.0]])))
    assert gray.mode == "L" and gray.size == (2, 1 + 1)
    assert np.asarray(gray).tolist() == [[0, 128], [255, 255]]
    rgb = _decode(png_bytes_from_array(np.zeros((4, 6, 3), dtype=np.uint8)))
    assert rgb.mode == "RGB" and rgb.size == (6, 4)
    assert _decode(png_bytes_from_array(np.zeros((4, 6, 1), dtype=np.float32))).mode == "L"
    with pytest.raises(ValueError, match="dtype int64"):
        png_bytes_from_array(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="shape"):
        png_bytes_from_array(np.zeros((2, 2, 2), dtype=np.uint8))


def test_modules_stay_light_and_avoid_pyplot():
    code = (
        "import sys\n"
        "import lenet_cli.core.metrics, lenet_cli.viz.confusion, lenet_cli.viz.gallery, lenet_cli.viz.reliability\n"
        "heavy = [m for m in ('matplotlib', 'tensorflow', 'keras', 'click') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "lenet_cli.viz.confusion.render_confusion_matrix_png([[1, 0], [0, 1]], ['a', 'b'], 't')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _bins(rows):
    """Calibration bins from ``(lower, upper, count, accuracy, confidence)`` rows; count 0 leaves the bin empty."""
    return [
        {"lower": lo, "upper": hi, "count": n, "accuracy": acc if n else None, "confidence": conf if n else None}
        for lo, hi, n, acc, conf in rows
    ]


def test_reliability_bins_and_count_labels():
    from lenet_cli.viz.reliability import count_label, reliability_bins

    assert [count_label(n) for n in (1, 12, 999, 1000, 4533, 9949, 9950, 12345)] == [
        "1",
        "12",
        "999",
        "1.0k",
        "4.5k",
        "9.9k",
        "10k",
        "12k",
    ]
    drawn = reliability_bins(_bins([(0.0, 0.5, 0, 0, 0), (0.5, 0.75, 12, 0.9, 0.6), (0.75, 1.0, 4533, 0.8, 0.9)]))
    assert [(b.count, b.label, b.kind) for b in drawn] == [(12, "12", "under"), (4533, "4.5k", "over")]
    assert (drawn[0].solid, drawn[0].top) == (0.6, 0.9) and (drawn[1].solid, drawn[1].top) == (0.8, 0.9)


def test_reliability_diagram_shows_every_count_and_every_colour_is_in_the_legend():
    from matplotlib.colors import to_hex

    from lenet_cli.viz.reliability import (
        RELIABILITY_PNG_SIZE,
        build_reliability_figure,
        reliability_bins,
        render_reliability_png,
    )

    bins = _bins(
        [
            (0.0, 0.2, 0, 0, 0),
            (0.2, 0.4, 3, 1.0, 0.3),
            (0.4, 0.6, 0, 0, 0),
            (0.6, 0.8, 250, 0.5, 0.7),
            (0.8, 1.0, 4533, 0.97, 0.95),
        ]
    )
    figure = build_reliability_figure(bins, 0.05, "test")
    axes = figure.axes[0]
    counts = {(round(t.get_position()[0], 6), t.get_text()) for t in axes.texts}
    assert counts == {
        (0.3, "3"),
        (0.7, "250"),
        (0.9, "4.5k"),
    }  # one per non-empty bin, at its centre; none for the empty ones
    for b in reliability_bins(bins):
        text = next(t for t in axes.texts if t.get_text() == b.label)
        assert text.get_position()[1] > b.top  # above the bar and its gap

    def colours(patch):
        return {to_hex(c) for c in (patch.get_facecolor(), patch.get_edgecolor()) if c[3] > 0} - {"#ffffff"}

    used = set().union(*(colours(p) for p in axes.patches))
    legend = figure.legends[0]
    assert used <= set().union(*(colours(h) for h in legend.legend_handles if hasattr(h, "get_facecolor")))
    hatches = {p.get_hatch() for p in axes.patches} - {None}
    assert hatches == {"////", "\\\\"} and hatches <= {
        h.get_hatch() for h in legend.legend_handles if hasattr(h, "get_hatch")
    }
    assert all(
        p.get_facecolor()[3] == 0 for p in axes.patches if p.get_hatch() == "////"
    )  # over-confidence: an empty box, nothing blended
    assert Image.open(io.BytesIO(render_reliability_png(bins, 0.05, "test"))).size == RELIABILITY_PNG_SIZE
