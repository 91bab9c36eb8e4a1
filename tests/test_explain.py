"""``lenet explain``: each attribution piece alone, completeness, the sanity check, localisation, the sheet, the CLI.

The pure pieces are checked against functions whose Integrated Gradients are
known in closed form; the whole is proved by completeness (the attributions
sum to the logit difference) on a tiny Keras model and, with the real files,
on MNIST test digits.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lenet_cli.cli import cli
from lenet_cli.core.errors import LenetError
from lenet_cli.model import attribution as A
from tests.helpers.real_data import REAL_DATA, requires_real_data

COMPLETENESS_TOLERANCE = 0.05  # the "within 5 %"

# Adebayo et al. (2018): a map that explains the trained network must change when its weights are re-drawn.
# Spearman's rho of |attribution| below 0.5 means the two rankings share under a quarter of their variance
# (rho^2 < 0.25), half-way between identical maps (1) and unrelated ones (0). With a black baseline, IG is
# x * (average gradient), so both maps carry the input's own ranking (each correlates ~0.6 with |x| on the
# ink); that shared factor alone gives ~0.35, so 0.5 still demands that the gradients themselves disagree.
# Only ink pixels count: off the ink both maps are exactly 0, a tie that says nothing about the model.
SANITY_MAX_RANK_CORRELATION = 0.5


def _quadratic_gradients(weights: np.ndarray):
    """f_t(x) = sum(w_t * x^2): IG from a black baseline is exactly w_t * x^2 (checks the whole pipeline)."""

    def gradient_fn(inputs, targets):
        w = weights[np.asarray(targets)][..., None]  # (k, 28, 28, 1)
        return (w * inputs**2).sum(axis=(1, 2, 3)), 2.0 * w * inputs

    return gradient_fn


def _mnist_test_images(count: int, root: Path = REAL_DATA) -> np.ndarray:
    with gzip.open(root / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    return images[:count].astype(np.float32) / 255.0


# --- the pure pieces ----------------------------------------------------------------------------------


def test_interpolate_walks_the_straight_path():
    baseline, image = np.zeros((28, 28), np.float32), np.full((28, 28), 0.8, np.float32)
    path = A.interpolate(baseline, image, A.path_alphas(4))
    assert path.shape == (5, 28, 28) and path.dtype == np.float32
    np.testing.assert_allclose(path[:, 0, 0], [0.0, 0.2, 0.4, 0.6, 0.8], atol=1e-6)
    np.testing.assert_array_equal(path[0], baseline)
    np.testing.assert_array_equal(path[-1], image)


def test_integral_approximation_is_the_trapezoid_rule():
    alphas = A.path_alphas(10)
    linear = np.stack([np.full((2, 2), a) for a in alphas])  # integral of alpha over [0, 1] = 0.5, exact for trapezoids
    np.testing.assert_allclose(A.integral_approximation(linear), 0.5, atol=1e-7)
    square = np.stack([np.full((1,), a * a) for a in alphas])  # 1/3, with the trapezoid's known error h^2/6
    np.testing.assert_allclose(A.integral_approximation(square), 1 / 3 + 0.1**2 / 6, atol=1e-7)
    with pytest.raises(LenetError):
        A.integral_approximation(np.zeros((1, 3)))


def test_integrated_gradients_matches_the_closed_form_in_batches():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(10, 28, 28)).astype(np.float32)
    images = rng.random((5, 28, 28), dtype=np.float32)
    targets = np.array([0, 3, 9, 3, 1])
    maps, logit_image, logit_baseline = A.integrated_gradients_batch(
        _quadratic_gradients(weights), images, targets, steps=50, max_batch=100
    )
    expected = weights[targets] * images**2
    np.testing.assert_allclose(maps, expected, rtol=1e-3, atol=1e-5)  # the trapezoid is exact for a linear gradient
    np.testing.assert_allclose(logit_image, expected.sum(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_allclose(logit_baseline, 0.0)
    single, top, bottom = A.integrated_gradients(_quadratic_gradients(weights), images[1], 3)
    np.testing.assert_allclose(single, maps[1], rtol=1e-6)
    assert A.completeness_gap(single, top, bottom) < 1e-4


def test_completeness_gap_is_relative():
    assert A.completeness_gap(np.full(4, 0.5), 3.0, 1.0) == 0.0
    assert A.completeness_gap(np.full(4, 0.55), 3.0, 1.0) == pytest.approx(0.1)
    assert np.isfinite(A.completeness_gap(np.zeros(4), 1.0, 1.0))


def test_escalation_doubles_the_steps_up_to_the_cap():
    assert A.escalation_steps(50, 800) == [50, 100, 200, 400, 800]
    assert A.escalation_steps(300, 800) == [300, 600, 800]
    assert A.escalation_steps(800, 800) == [800]
    assert A.escalation_steps(1000, 800) == [1000]


def _cubic_or_linear_gradients(calls: list):
    """Target 0: f = sum(x^3), whose trapezoid gap is 1 / (2 steps^2) from a black baseline; target 1: f = sum(x), exact at any steps."""

    def gradient_fn(inputs, targets):
        calls.append(len(inputs))
        cubic = (np.asarray(targets) == 0)[:, None, None, None]
        logits = np.where(cubic[:, 0, 0, 0], (inputs**3).sum(axis=(1, 2, 3)), inputs.sum(axis=(1, 2, 3)))
        return logits, np.where(cubic, 3.0 * inputs**2, np.ones_like(inputs))

    return gradient_fn


def test_a_large_gap_raises_the_steps_for_that_image_only():
    calls = []
    images = np.random.default_rng(0).random((2, 28, 28), dtype=np.float32)
    checked = A.integrated_gradients_checked(
        _cubic_or_linear_gradients(calls), images, np.array([0, 1]), steps=2, gap_limit=0.05, max_steps=64
    )
    # the cubic's gap: 12.5 % at 2 steps, 3.1 % at 4; the linear one is exact at once
    np.testing.assert_array_equal(checked.steps_used, [4, 2])
    np.testing.assert_array_equal(checked.reliable, [True, True])
    assert checked.gaps[0] == pytest.approx(1 / (2 * 4**2), rel=1e-3) and checked.gaps[1] < 1e-5
    assert calls == [2 * 3, 1 * 5]  # both paths at 2 steps (3 points each), then the cubic's alone at 4 (5 points)
    np.testing.assert_allclose(checked.attributions[1], images[1], rtol=1e-5)  # sum(x)'s attribution is x itself


def test_a_gap_that_does_not_close_marks_the_map_unreliable():
    def broken(
        inputs, targets
    ):  # logits rise along the path but the gradients say nothing: no step count closes the gap
        return inputs.sum(axis=(1, 2, 3)), np.zeros_like(inputs)

    images = np.random.default_rng(1).random((3, 28, 28), dtype=np.float32)
    checked = A.integrated_gradients_checked(broken, images, np.zeros(3, int), steps=50, max_steps=800)
    np.testing.assert_array_equal(checked.steps_used, [800] * 3)
    assert not checked.reliable.any() and np.allclose(checked.gaps, 1.0)


def test_target_log_odds_keeps_resolution_when_confident():
    probabilities = np.array([[1.0, 1e-9, 1e-9], [0.5, 0.25, 0.25]], dtype=np.float32)  # row 0's p_t rounds to 1.0
    odds = A.target_log_odds(probabilities, np.array([0, 0]))
    assert odds[0] == pytest.approx(np.log(1.0 / 2e-9), rel=1e-6)
    assert odds[1] == pytest.approx(0.0, abs=1e-9)


def test_occlusion_finds_the_pixels_the_score_reads():
    """A "model" whose class-1 evidence is the ink in rows 10-13, columns 10-13: only that region and its patch halo light up."""

    def predict_fn(batch):
        evidence = batch[:, 10:14, 10:14, 0].sum(axis=(1, 2))
        logits = np.stack([np.zeros_like(evidence), evidence], axis=1)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

    image = np.zeros((28, 28), np.float32)
    image[8:20, 8:20] = 1.0
    heat = A.occlusion_sensitivity(predict_fn, image, target=1, patch=4, stride=1)
    assert heat.shape == (28, 28)
    assert heat[10:14, 10:14].min() > 0  # covering the read pixels lowers the class's log-odds
    assert np.all(heat[:7, :] == 0) and np.all(heat[:, 17:] == 0)  # beyond a patch's reach nothing changes
    strided = A.occlusion_sensitivity_batch(predict_fn, np.stack([image, image]), np.array([1, 0]), patch=4, stride=3)
    assert strided.shape == (2, 28, 28)
    np.testing.assert_allclose(strided[0], -strided[1], atol=1e-5)  # two classes: evidence for one is against the other


def test_occlusion_patches_reach_every_edge():
    corners = A.occlusion_patches(28, patch=4, stride=3)
    assert max(y for y, _ in corners) == 24 and max(x for _, x in corners) == 24
    assert len(A.occlusion_patches(28, 4, 1)) == 25 * 25
    for patch, stride in ((0, 1), (29, 1), (4, 0)):
        with pytest.raises(LenetError):
            A.occlusion_patches(28, patch, stride)


def test_spearman_ink_and_mass_helpers():
    assert A.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert A.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    np.testing.assert_allclose(A.rank_average([5, 1, 5, 2]), [2.5, 0.0, 2.5, 1.0])
    assert A.spearman([1, 1, 1], [1, 2, 3]) == 0.0
    image = np.zeros((28, 28))
    image[10, 10] = 1.0
    assert A.ink_mask(image, 1).sum() == 5 and A.ink_mask(image, 0).sum() == 1
    heat = np.zeros((28, 28))
    heat[10, 11], heat[0, 0] = 3.0, -1.0
    assert A.mass_on_ink(heat, image) == pytest.approx(0.75)
    assert A.mass_on_ink(np.zeros((28, 28)), image) == 1.0


def test_parse_target_and_sheet_names():
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.engine.explain import parse_target
    from lenet_cli.engine.explain_sheets import sheet_name

    assert parse_target(None, CLASS_NAMES["mnist"]) is None
    assert parse_target("7", CLASS_NAMES["mnist"]) == 7
    assert parse_target("ankle BOOT", CLASS_NAMES["fashion"]) == 9
    assert parse_target("2", CLASS_NAMES["fashion"]) == 2
    for bad in ("10", "seven", "-1"):
        with pytest.raises(LenetError, match="unknown target class"):
            parse_target(bad, CLASS_NAMES["mnist"])
    taken: set[str] = set()
    assert [sheet_name(n, taken) for n in ("a/x.png", "b/x.jpg", "<stdin>", "a/x.png")] == [
        "x.png",
        "x-2.png",
        "stdin.png",
        "x-3.png",
    ]


# --- a Keras model: completeness, the sanity check, the sheet -----------------------------------------


@pytest.fixture(scope="module")
def tiny(trained_run, synthetic_data_dir):
    """The shared tiny run, its gradient function, and 12 synthetic test images."""
    from lenet_cli.model.network import load_model_file

    model = load_model_file(trained_run / "model.keras")
    with gzip.open(synthetic_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:12].astype(np.float32) / 255.0
    return model, A.keras_logit_gradients(model), images


def test_integrated_gradients_completeness_on_a_keras_model(tiny):
    model, gradient_fn, images = tiny
    targets = np.asarray(model(images[..., None])).argmax(axis=1)
    maps, logit_image, logit_baseline = A.integrated_gradients_batch(gradient_fn, images, targets, steps=50)
    logits = np.asarray(gradient_fn(images[..., None], targets)[0])
    np.testing.assert_allclose(logit_image, logits, rtol=1e-5, atol=1e-5)  # the path ends at the image
    gaps = [A.completeness_gap(m, a, b) for m, a, b in zip(maps, logit_image, logit_baseline)]
    assert max(gaps) < COMPLETENESS_TOLERANCE, gaps
    assert np.all(maps[images == 0] == 0)  # a black baseline gives black pixels nothing


def test_sanity_check_randomized_weights_change_the_maps(tiny):
    """Adebayo et al.'s model-randomization test on the tiny model.

    The tiny model is barely trained (its top class gets ~15 %), so its maps
    are dominated by IG's input factor x, which both models share (~0.6 rank
    correlation with |x| here). The model's own part is the path-averaged
    gradient IG / x, compared here over the non-zero pixels (nearly all: the
    synthetic background is noise); the real-data test below compares the attributions themselves.
    """
    model, gradient_fn, images = tiny
    targets = np.asarray(model(images[..., None])).argmax(axis=1)
    trained, _, _ = A.integrated_gradients_batch(gradient_fn, images, targets)
    random_fn = A.keras_logit_gradients(A.randomized_copy(model, seed=1))
    randomized, _, _ = A.integrated_gradients_batch(random_fn, images, targets)
    ink = images > 0
    rho = np.mean(
        [A.spearman(np.abs(a[m] / x[m]), np.abs(b[m] / x[m])) for a, b, x, m in zip(trained, randomized, images, ink)]
    )
    assert rho < SANITY_MAX_RANK_CORRELATION, rho
    again, _, _ = A.integrated_gradients_batch(
        gradient_fn, images, targets, steps=60
    )  # the same model: nearly the same map
    assert np.mean([A.spearman(np.abs(a), np.abs(b)) for a, b in zip(trained, again)]) > 0.95


def _loaded(trained_run):
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    return open_model(resolve_model(trained_run))


def test_sheet_has_every_panel_and_label(trained_run, tiny):
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.engine.explain import Explainer
    from lenet_cli.viz.explain_plots import (
        PANEL_TITLES,
        SHEET_PNG_SIZE,
        SheetContent,
        build_explanation_figure,
        render_explanation_png,
    )

    _, _, images = tiny
    explainer = Explainer(_loaded(trained_run), CLASS_NAMES["mnist"])
    (e,) = explainer.explain(images[:1], target=None, top_k=3)
    assert (
        e.method == "integrated-gradients"
        and e.conv_1_maps.shape == (24, 24, 20)
        and e.conv_2_maps.shape == (10, 10, 50)
    )
    assert explainer.filters.shape == (20, 5, 5)
    content = SheetContent(
        name="digit.png",
        model="tiny/model.keras",
        dataset="mnist",
        original=np.ones((40, 30)),
        network_input=images[0],
        class_names=CLASS_NAMES["mnist"],
        probabilities=e.probabilities,
        top_k=3,
        method=e.method,
        method_detail=explainer.method_detail,
        target=e.target["index"],
        attribution=e.attribution,
        completeness_gap=e.completeness_gap,
        conv_1_maps=e.conv_1_maps,
        conv_2_maps=e.conv_2_maps,
        conv_1_filters=explainer.filters,
    )
    figure = build_explanation_figure(content)
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    for prefix in PANEL_TITLES:
        assert any(t.startswith(prefix) for t in titles), (prefix, titles)
    headline = figure.get_suptitle()
    assert "digit.png" in headline and "tiny/model.keras" in headline and "Integrated Gradients" in headline
    assert f"'{e.label}'" in headline
    bars = next(axes for axes in figure.axes if axes.get_title().startswith("top-"))
    assert [t.get_text() for t in bars.get_yticklabels()] == [t["label"] for t in reversed(e.top_k)]
    assert any("completeness gap" in t for t in titles)
    colorbar = next(axes for axes in figure.axes if "against" in axes.get_xlabel())
    assert f"for '{e.target['label']}'" in colorbar.get_xlabel()
    png = render_explanation_png(content)
    import io

    assert Image.open(io.BytesIO(png)).size == SHEET_PNG_SIZE


def test_sheet_without_feature_maps_says_why():
    from lenet_cli.viz.explain_plots import COMPACT_SHEET_PNG_SIZE, build_explanation_figure, sheet_png_size

    content = _content(conv=False, unavailable_reason="they need a .keras model; this is a .onnx model")
    figure = build_explanation_figure(content)
    assert "unavailable" not in " ".join(t.get_text() for axes in figure.axes for t in axes.texts)  # no empty panel
    assert ".onnx" in figure.get_supxlabel() and "feature maps" in figure.get_supxlabel()
    assert "Occlusion sensitivity" in figure.get_suptitle()
    assert sheet_png_size(content) == COMPACT_SHEET_PNG_SIZE


# --- the sheet's layout, on made-up content (no model) ---------------------------------------------------


def _content(conv: bool = True, **overrides):
    """A sheet's content with every array of the right shape; ``conv=False`` is an exported model's (no feature maps)."""
    from lenet_cli.viz.explain_plots import SheetContent

    rng = np.random.default_rng(0)
    fields = dict(
        name="x.png",
        model="model.onnx",
        dataset="fashion",
        original=np.zeros((28, 28, 3), np.uint8),
        network_input=rng.random((28, 28)),
        class_names=[f"class {i}" for i in range(10)],
        probabilities=np.array([0.01, 0.9, 0.05, 0.02, 0.01, 0.005, 0.003, 0.001, 0.0005, 0.0005]),
        top_k=3,
        method="occlusion",
        method_detail="4×4 black patch, stride 1, fall in log-odds",
        target=1,
        attribution=rng.normal(size=(28, 28)),
    )
    if conv:
        fields.update(
            conv_1_maps=rng.random((24, 24, 20)),
            conv_2_maps=rng.random((10, 10, 50)),
            conv_1_filters=rng.normal(size=(20, 5, 5)),
            model="run/model.keras",
            method="integrated-gradients",
            method_detail="50 steps from a black baseline, on the logit",
            completeness_gap=0.01,
        )
    return SheetContent(**{**fields, **overrides})


def _drawn_texts(figure):
    """Every visible, non-empty text of a drawn figure with its extent in pixels."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    return [
        (t.get_text(), t.get_window_extent(renderer))
        for t in figure.findobj(lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent"))
        if t.get_visible() and t.get_text().strip()
    ]


def test_shorten_path_keeps_the_file_name_and_elides_the_middle():
    from lenet_cli.viz.explain_plots import shorten_middle, shorten_path

    path = "pictures/2024/holiday/kitchen/trousers.jpg"
    assert shorten_path(path, 100) == path
    short = shorten_path(path, 30)
    assert (
        len(short) == 30
        and short.endswith("/trousers.jpg")
        and short == "pictures…/kitchen/trousers.jpg"
        and "…" in short
    )
    long_name = "trousers_photographed_on_the_kitchen_table_2024.jpg"
    assert shorten_path(f"a/{long_name}", 20) == shorten_middle(long_name, 20)
    assert len(shorten_middle(long_name, 20)) == 20 and shorten_middle(long_name, 20).endswith(".jpg")


@pytest.mark.parametrize("conv", [True, False])
def test_sheet_titles_fit_on_the_sheet_and_give_the_files_size(conv):
    """A long path of wide letters is shortened, not clipped at the sheet's edge; the original's size is the file's."""
    from lenet_cli.viz.explain_plots import build_explanation_figure, sheet_png_size

    name = "WWWW/" * 12 + "MMMM_photographed_on_the_kitchen_table_2024.jpg"
    content = _content(
        conv,
        name=name,
        model="W" * 80 + "/model.keras",
        original=np.zeros((192, 320, 3), np.uint8),
        original_size=(500, 300),
    )
    figure = build_explanation_figure(content)
    width, height = sheet_png_size(content)
    texts = _drawn_texts(figure)
    assert (figure.bbox.width, figure.bbox.height) == (width, height)
    for text, box in texts:
        assert box.x0 >= 0 and box.x1 <= width and box.y0 >= 0 and box.y1 <= height, (text, box)
    original = next(axes.get_title() for axes in figure.axes if axes.get_title().startswith("original"))
    assert "500×300 px, as given" in original and "…" in original and original.splitlines()[0].endswith(".jpg")
    assert "2024.jpg" in figure.get_suptitle() and "…" in figure.get_suptitle()


@pytest.mark.parametrize("conv", [True, False])
def test_the_attribution_title_stays_clear_of_its_colour_bar(conv):
    from lenet_cli.viz.explain_plots import build_explanation_figure

    content = _content(conv, method_detail="4×4 black patch, stride 1, fall in log-odds, a long detail line to be sure")
    figure = build_explanation_figure(content)
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    attribution = next(axes for axes in figure.axes if axes.get_title().startswith("attribution"))
    colorbar = next(axes for axes in figure.axes if "against" in axes.get_xlabel())
    title, bar = attribution.title.get_window_extent(renderer), colorbar.get_tightbbox(renderer)
    assert not title.overlaps(bar), (title, bar)
    assert not attribution.get_window_extent(renderer).overlaps(colorbar.get_window_extent(renderer))


def test_the_explained_class_always_has_a_bar():
    from lenet_cli.viz.explain_plots import bar_classes, build_explanation_figure

    probabilities = np.array([0.01, 0.9, 0.05, 0.02, 0.01, 0.005, 0.003, 0.001, 0.0005, 0.0005])
    assert bar_classes(probabilities, 3, 1) == [1, 2, 3]
    assert bar_classes(probabilities, 3, 5) == [1, 2, 3, 5]  # below the top 3
    figure = build_explanation_figure(_content(target=5))
    bars = next(axes for axes in figure.axes if axes.get_title().startswith("top-"))
    assert [t.get_text() for t in bars.get_yticklabels()] == ["class 5", "class 3", "class 2", "class 1"]
    assert "'class 5'" in bars.get_title() and any("rank 6" in t.get_text() for t in bars.texts)
    red = [patch for patch in bars.patches if patch.get_facecolor()[0] > 0.6 and patch.get_facecolor()[2] < 0.3]
    assert len(red) == 1 and red[0].get_y() < 0  # the explained class's bar, at the bottom


def test_an_unreliable_attribution_is_flagged_on_the_sheet_and_the_gap_explained():
    from lenet_cli.viz.explain_plots import build_explanation_figure

    reliable = build_explanation_figure(
        _content(completeness_gap=0.012, logit_difference=4.2, attribution_reliable=True, gap_limit=0.05)
    )
    assert "UNRELIABLE" not in reliable.get_suptitle()
    legend = reliable.get_supxlabel()
    assert (
        "should add up to the change in the logit of 'class 1' from the black baseline" in legend and "(+4.2)" in legend
    )
    assert "how far their sum misses it" in legend and len(legend.splitlines()) == 1 and "unreliable" not in legend

    content = _content(
        completeness_gap=0.163,
        logit_difference=0.31,
        attribution_reliable=False,
        gap_limit=0.05,
        method_detail="800 steps (raised from 50) from a black baseline, on the logit",
    )
    figure = build_explanation_figure(content)
    assert "UNRELIABLE: completeness gap 16.3%" in figure.get_suptitle()
    title = next(axes.get_title() for axes in figure.axes if axes.get_title().startswith("attribution"))
    assert "completeness gap 16.3%: unreliable (over 5%)" in title and "raised from 50" in title
    assert "do not trust this map" in figure.get_supxlabel()
    for text, box in _drawn_texts(figure):
        assert box.x0 >= 0 and box.x1 <= figure.bbox.width, (text, box)


def test_the_sheet_gives_the_size_of_the_file_not_of_its_thumbnail(tmp_path):
    from lenet_cli.data.images import read_image
    from lenet_cli.engine.explain import display_picture

    for name, size in (("photo.jpg", (400, 400)), ("wide.png", (500, 300)), ("small.png", (60, 40))):
        Image.new("RGB", size, "white").save(tmp_path / name)
        picture, original_size = display_picture(tmp_path / name, read_image(tmp_path / name, name=name))
        assert original_size == size and max(picture.shape[:2]) == min(320, max(size))
    luminance = np.zeros((700, 350), np.float32)  # Pillow cannot read it: the luminance lenet decoded stands in
    picture, original_size = display_picture(b"not an image", luminance)
    assert original_size == (350, 700) and max(picture.shape) <= 320


# --- the command --------------------------------------------------------------------------------------


@pytest.fixture
def pictures(tmp_path) -> Path:
    """Two drawings (dark ink on white, larger than 28x28) and a file that is not an image."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name, box in (("one.png", (45, 15, 58, 85)), ("block.png", (20, 20, 70, 60))):
        picture = Image.new("RGB", (100, 100), "white")
        picture.paste((20, 20, 20), box)
        picture.save(folder / name)
    (folder / "broken.png").write_bytes(b"not a png")
    return folder


def _explain(*args):
    return CliRunner().invoke(cli, ["explain", *map(str, args)])


def test_cli_json_records_and_sheets(trained_run, pictures, tmp_path):
    out = tmp_path / "why"
    result = _explain(
        pictures / "one.png",
        pictures / "block.png",
        pictures / "broken.png",
        "--model",
        trained_run,
        "--output-dir",
        out,
        "--format",
        "json",
        "--top-k",
        "4",
    )
    assert result.exit_code == 1, result.output  # the broken file fails, the others are explained
    records = json.loads(result.stdout)
    assert [Path(r["path"]).name for r in records] == ["one.png", "block.png", "broken.png"]
    for record in records[:2]:
        assert set(record) == {
            "path",
            "label",
            "index",
            "confidence",
            "top_k",
            "method",
            "target",
            "attribution",
            "completeness_gap",
            "logit_difference",
            "steps_used",
            "attribution_reliable",
            "sheet",
            "error",
        }
        assert record["error"] is None and record["method"] == "integrated-gradients"
        assert len(record["top_k"]) == 4 and record["top_k"][0]["label"] == record["label"]
        assert record["target"] == {"label": record["label"], "index": record["index"]}
        attribution = np.asarray(record["attribution"])
        assert attribution.shape == (28, 28) and np.isfinite(attribution).all()
        assert record["completeness_gap"] < COMPLETENESS_TOLERANCE
        assert record["attribution_reliable"] is True and record["steps_used"] in A.escalation_steps(A.IG_STEPS)
        assert (
            abs(attribution.sum() - record["logit_difference"])
            <= COMPLETENESS_TOLERANCE * abs(record["logit_difference"]) + 1e-4
        )
        assert Image.open(record["sheet"]).size == (1500, 900)
    assert (
        records[2]["error"].startswith("cannot read")
        and records[2]["attribution"] is None
        and records[2]["sheet"] is None
    )
    assert sorted(p.name for p in out.iterdir()) == ["block.png", "one.png"]
    assert "Error: cannot read" in result.stderr and "1 of 3 inputs failed" in result.stderr


def test_cli_target_jsonl_and_directories(trained_run, pictures, tmp_path):
    (pictures / "broken.png").unlink()
    result = _explain(
        pictures,
        "--model",
        trained_run,
        "--output-dir",
        tmp_path / "o",
        "--format",
        "jsonl",
        "--target",
        "3",
        "--steps",
        "20",
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and all(r["target"] == {"label": "3", "index": 3} for r in lines)
    table = _explain(pictures / "one.png", "--model", trained_run, "--output-dir", tmp_path / "t", "--format", "table")
    assert table.exit_code == 0 and "one.png" in table.stdout and str(tmp_path / "t" / "one.png") in table.stdout


@pytest.mark.slow
def test_many_inputs_draw_sheets_in_workers_in_order(trained_run, tmp_path):
    """From PARALLEL_SHEETS_MIN inputs on, sheets are drawn in spawned workers; records keep the input order."""
    from lenet_cli.engine.explain_sheets import PARALLEL_SHEETS_MIN

    folder = tmp_path / "many"
    folder.mkdir()
    for index in range(PARALLEL_SHEETS_MIN + 1):
        picture = Image.new("L", (60, 60), 255)
        picture.paste(0, (10 + 5 * index, 10, 20 + 5 * index, 50))
        picture.save(folder / f"{index:02d}.png")
    (folder / "02.png").write_bytes(b"")  # a failure in the middle keeps its place
    result = _explain(
        folder,
        "--model",
        trained_run,
        "--output-dir",
        tmp_path / "o",
        "--format",
        "jsonl",
        "--method",
        "occlusion",
        "--engine",
        "keras",
    )  # the Keras model: its sheets have feature maps (a run's model.tflite has none)
    assert result.exit_code == 1, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(r["path"]).name for r in records] == [f"{i:02d}.png" for i in range(PARALLEL_SHEETS_MIN + 1)]
    assert records[2]["error"] and records[2]["sheet"] is None
    for record in records[:2] + records[3:]:
        assert Image.open(record["sheet"]).size == (1500, 900)


def test_sheet_writer_draws_here_when_its_workers_die(tmp_path, monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    from lenet_cli.core.prediction import Explanation
    from lenet_cli.engine import explain_sheets as E

    drawn = []
    monkeypatch.setattr(E, "render_sheet_file", lambda content, path: drawn.append(path))

    class DeadPool:
        def submit(self, *args):
            raise BrokenProcessPool("gone")

        def shutdown(self, **kwargs):
            pass

    writer = E.SheetWriter(1)
    writer.pool = DeadPool()
    done = writer.submit(Explanation("a.png"), object(), tmp_path / "a.png") + writer.submit(
        Explanation("b.png", error="bad")
    )
    done += writer.finish()
    assert [e.path for e in done] == ["a.png", "b.png"] and drawn == [tmp_path / "a.png"] and writer.pool is None


@pytest.mark.parametrize(
    "args, code, message",
    [
        ([], 2, "give at least one image"),
        (["x.png", "--method", "saliency"], 2, "saliency"),
        (["x.png", "--steps", "0"], 2, "--steps"),
        (["{pic}", "--target", "eleven"], 1, "unknown target class 'eleven'"),
        (["{nothing}"], 1, "no such file"),
    ],
)
def test_cli_bad_inputs(trained_run, pictures, tmp_path, args, code, message):
    args = [a.format(pic=pictures / "one.png", nothing=tmp_path / "missing.png") for a in args]
    result = _explain(*args, "--model", trained_run, "--output-dir", tmp_path / "o")
    assert result.exit_code == code, result.output
    assert message in result.output


def test_help_and_usage_errors_do_not_import_tensorflow():
    probe = (
        "import sys\nfrom lenet_cli.cli import main\n"
        "for argv in (['explain', '--help'], ['explain']):\n"
        "    try:\n        main(argv)\n    except SystemExit as exc:\n        print('exit', exc.code)\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-2:] == ["exit 0", "exit 2"]


@pytest.fixture(scope="module")
def onnx_model(trained_run, tmp_path_factory) -> Path:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    result = CliRunner().invoke(cli, ["export", str(trained_run), "--output", str(out), "--no-verify"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
def test_occlusion_with_onnx_never_imports_tensorflow(onnx_model, pictures, tmp_path):
    probe = (
        "import json, sys\nfrom lenet_cli.cli.main import cli\n"
        "try:\n    cli.main(sys.argv[1:], prog_name='lenet')\nexcept SystemExit as exc:\n    code = exc.code\n"
        "loaded = [m for m in ('tensorflow', 'keras') if m in sys.modules]\n"
        "print(json.dumps({'code': code, 'loaded': loaded}), file=sys.stderr)\n"
    )
    argv = [
        "explain",
        str(pictures / "one.png"),
        "--model",
        str(onnx_model),
        "--output-dir",
        str(tmp_path / "o"),
        "--format",
        "json",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", probe, *argv], check=False, capture_output=True, text=True, timeout=120
    )
    status = json.loads(proc.stderr.strip().splitlines()[-1])
    assert status == {"code": 0, "loaded": []}, proc.stderr
    (record,) = json.loads(proc.stdout)
    assert record["method"] == "occlusion" and record["completeness_gap"] is None
    assert record["steps_used"] is None and record["attribution_reliable"] is None
    assert np.asarray(record["attribution"]).shape == (28, 28)
    assert Image.open(record["sheet"]).size == (1500, 540)  # one row: no empty feature-map panels

    refused = _explain(
        pictures / "one.png", "--model", onnx_model, "--method", "integrated-gradients", "--output-dir", tmp_path / "r"
    )
    assert refused.exit_code == 1 and "use method 'occlusion'" in refused.output
    assert len(refused.output.strip().splitlines()) == 1


# --- real MNIST: completeness, localisation, sanity -----------------------------------------------------


@pytest.fixture(scope="module")
def real_model(tmp_path_factory):
    """A LeNet trained for one epoch on 10,000 real MNIST images (about 15 s on 2 cores; ~93 % test accuracy)."""
    from lenet_cli.model.network import load_model_file

    out = tmp_path_factory.mktemp("real") / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(REAL_DATA),
            "--train-limit",
            "10000",
            "--epochs",
            "1",
            "--output",
            str(out),
            "--no-tensorboard",
            "--quiet",
        ],
        env={"LENET_VERIFY_CHECKSUMS": "1"},
    )
    assert result.exit_code == 0, result.output
    return load_model_file(out / "model.keras")


@pytest.mark.slow
@pytest.mark.realdata
@requires_real_data
def test_real_digits_completeness_localisation_and_sanity(real_model):
    images = _mnist_test_images(40)
    targets = np.asarray(real_model(images[..., None])).argmax(axis=1)
    gradient_fn = A.keras_logit_gradients(real_model)
    maps, logit_image, logit_baseline = A.integrated_gradients_batch(gradient_fn, images, targets)
    gaps = [A.completeness_gap(m, a, b) for m, a, b in zip(maps, logit_image, logit_baseline)]
    assert max(gaps) < COMPLETENESS_TOLERANCE, gaps

    # Localisation: with a black baseline IG is zero off the ink by construction, so this holds for it trivially;
    # occlusion spreads each patch's effect over 4x4 pixels, so for it the figure is a real test.
    assert np.mean([A.mass_on_ink(m, x) for m, x in zip(maps, images)]) >= 0.7
    from lenet_cli.core.tensorflow_env import import_tensorflow

    compiled = import_tensorflow().function(lambda batch: real_model(batch, training=False))
    occlusion = A.occlusion_sensitivity_batch(lambda batch: compiled(batch).numpy(), images, targets)
    assert np.mean([A.mass_on_ink(m, x) for m, x in zip(occlusion, images)]) >= 0.7

    randomized, _, _ = A.integrated_gradients_batch(
        A.keras_logit_gradients(A.randomized_copy(real_model, seed=1)), images, targets
    )
    rho = np.mean([A.spearman(np.abs(a[x > 0]), np.abs(b[x > 0])) for a, b, x in zip(maps, randomized, images)])
    assert rho < SANITY_MAX_RANK_CORRELATION, rho
