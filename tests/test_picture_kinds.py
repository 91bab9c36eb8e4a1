"""Preprocessing reads every kind of real-world picture (issue #16, item 4; issue #30).

Each kind of ``tests/picture_kinds.py`` (bold marker, thin pencil, low-resolution
scan, continental 1 and 7, gamma 0.5-2, grey paper with a soft shadow, JPEG at
quality 30-70, other writers' styles, Fashion product pictures, other tone
curves, faint articles) must come out as a centred digit
(or article) of sensible mass, like the clean input; blank paper and specks
are still refused. The accuracy of a trained model on each kind is measured
by ``python -m bench.picture_kinds RUN_DIR`` (README, ``lenet predict``).
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lenet_cli.data import preprocess as P
from lenet_cli.data.images import read_image
from tests.helpers.picture_kinds import (
    CONTINENTAL_LABELS,
    DIGIT_KINDS,
    FAINT_CONTRASTS,
    FASHION_KINDS,
    OTHER_WRITERS_KINDS,
    STYLES,
    TONE_CURVES,
    count_holes,
    draw_continental,
    draw_strokes,
    draw_style,
    label_of,
    render_kind,
    stroke_width,
    tone_curve,
)

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("LENET_DATA_DIR") or REPO.parent / "shared" / "datasets")
MNIST = P.PreprocessOptions()

SEVEN = [[(-0.3, 0.0), (0.3, 0.0), (-0.05, 1.0)]]
TWO = [[(-0.25, 0.2), (-0.1, 0.02), (0.15, 0.03), (0.27, 0.22), (0.15, 0.5), (-0.28, 1.0), (0.3, 1.0)]]
FOUR = [[(0.05, 0.0), (-0.3, 0.65), (0.3, 0.65)], [(0.12, 0.3), (0.12, 1.0)]]


def as_dataset_image(strokes, width=0.12) -> np.ndarray:
    """A drawn digit in the MNIST convention: 28x28 uint8, white on black, about 20 px tall."""
    field = draw_strokes(strokes, width, size=28)
    return np.clip(np.rint(field * 255), 0, 255).astype(np.uint8)


def bold_seven_on_white(stroke: float, margin: float, height: int = 200) -> np.ndarray:
    """The issue's picture: a 7 whose stroke is ``stroke`` of its height, dark on white, ``margin`` of its height around it."""
    pen = round(stroke * height)
    width = round(0.75 * height)
    pad = round(margin * height)
    image = Image.new("L", (width + 2 * pad, height + 2 * pad), 255)
    from PIL import ImageDraw

    draw = ImageDraw.Draw(image)
    half = pen / 2
    points = [(pad + half, pad + half), (pad + width - half, pad + half), (pad + 0.35 * width, pad + height - half)]
    draw.line(points, fill=0, width=pen, joint="curve")
    return np.asarray(image)


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    idx = np.arange(a.shape[0])
    return float((a.sum(1) @ idx) / a.sum()), float((a.sum(0) @ idx) / a.sum())


def bbox(a: np.ndarray, level: float = 0.1) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(a > level)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def assert_mnist_layout(out: np.ndarray) -> None:
    """A digit as MNIST lays it out: centred by mass, within 20x20, tall, with a sensible amount of ink."""
    assert out.shape == (28, 28) and out.dtype == np.float32
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 1.0 and abs(cx - 14) <= 1.0
    y0, y1, x0, x1 = bbox(out)
    assert max(y1 - y0, x1 - x0) <= 21 and y1 - y0 >= 17
    assert 25 <= float(out.sum()) <= 220  # MNIST's test digits: 5th-95th percentile 57-160


# --- the bold 7 of the issue --------------------------------------------------


@pytest.mark.parametrize("margin", [0.0, 0.05, 0.3])
@pytest.mark.parametrize("invert", ["auto", "always"])
def test_bold_seven_with_a_quarter_stroke_is_read_as_a_seven(margin, invert):
    bold = P.preprocess(bold_seven_on_white(0.25, margin), P.PreprocessOptions(invert=invert))
    thin = P.preprocess(bold_seven_on_white(0.08, margin), P.PreprocessOptions(invert=invert))
    assert_mnist_layout(bold)
    assert correlation(bold, thin) > 0.6
    # A 7's ink: a heavy bar along the top, then a stroke down the middle; nothing in the lower left corner.
    assert bold[4:10].sum() > bold[18:24].sum()
    assert bold[20:26, 4:9].max() < 0.2


@pytest.mark.parametrize("stroke", [0.25, 0.3, 0.33])
def test_marker_strokes_up_to_a_third_of_the_height_are_content(stroke):
    for margin in (0.0, 0.02, 0.1):
        assert_mnist_layout(P.preprocess(bold_seven_on_white(stroke, margin)))


# --- each kind ----------------------------------------------------------------


SOURCES = {"seven": as_dataset_image(SEVEN), "two": as_dataset_image(TWO), "four": as_dataset_image(FOUR)}


@pytest.mark.parametrize("kind", [k for k in DIGIT_KINDS if k != "continental"])
@pytest.mark.parametrize("source", sorted(SOURCES))
def test_each_kind_comes_out_as_the_centred_digit(kind, source):
    digit = SOURCES[source]
    clean = P.preprocess(digit, MNIST)
    for seed in range(3):
        out = P.preprocess(read_image(render_kind(kind, (seed, sorted(SOURCES).index(source)), digit)), MNIST)
        assert_mnist_layout(out)
        assert correlation(out, clean) > (0.45 if kind in ("thin", "bold") else 0.7), (kind, source, seed)


@pytest.mark.parametrize("label", CONTINENTAL_LABELS)
def test_continental_digits_keep_their_flag_foot_and_bar(label):
    for seed in range(4):
        rng = np.random.default_rng((seed, label))
        drawn = draw_continental(label, rng)
        out = P.preprocess(read_image(render_kind("continental", (seed, label), label=label)), MNIST)
        assert_mnist_layout(out)
        _, _, x0, x1 = bbox(out)
        assert x1 - x0 >= 9  # the flag and foot (1) or the bar (7) make it wide, unlike a plain 1
        assert drawn.max() > 0.9
    with pytest.raises(ValueError, match="continental"):
        render_kind("continental", 0, label=4)


def test_grey_paper_half_in_shadow_is_dark_ink_on_light():
    # Seeds where the lit paper is as far above the border's level as the ink is below it
    # (each was read as light content on dark, and refused, before).
    for seed in (6, 18, 26, 29, 31, 56):
        luminance = read_image(render_kind("shadow", seed, SOURCES["seven"]))
        assert P.decide_invert(luminance) is True, seed
        assert_mnist_layout(P.preprocess(luminance, MNIST))


def test_kinds_are_deterministic_and_look_as_named():
    digit = SOURCES["seven"]
    for kind in DIGIT_KINDS:
        first = render_kind(kind, (1, 2), digit, label=7)
        assert first == render_kind(kind, (1, 2), digit, label=7)
        assert first != render_kind(kind, (1, 3), digit, label=7)
    assert render_kind("jpeg", 0, digit)[:2] == b"\xff\xd8"
    with pytest.raises(ValueError, match="unknown picture kind"):
        render_kind("sepia", 0, digit)


def test_bold_and_thin_strokes_have_the_widths_they_claim():
    digit = SOURCES["seven"]
    for seed in range(3):
        for kind, low, high in (("bold", 0.2, 0.4), ("thin", 0.0, 0.05)):
            luminance = read_image(render_kind(kind, seed, digit))
            ink = luminance < (luminance.max() + luminance.min()) / 2
            rows = np.nonzero(ink.any(axis=1))[0]
            assert low <= stroke_width(ink) / (rows.max() - rows.min() + 1) <= high, (kind, seed)


def test_a_product_picture_fills_the_frame_and_is_centred():
    article = np.zeros((28, 28), np.uint8)
    article[2:26, 6:22] = 200  # a dress-like block, brighter in the middle
    article[6:22, 10:18] = 255
    out = P.preprocess(read_image(render_kind("product", 3, article)), P.PreprocessOptions(mode="fashion"))
    y0, y1, x0, x1 = bbox(out, 0.05)
    assert y1 - y0 >= 27 and abs((x0 + x1) / 2 - 14) <= 1
    assert out[14, 14] > out[4, 8]


def test_noise_specks_beside_an_article_on_clipped_white_do_not_stretch_its_box():
    photo = np.full((400, 300), 255, np.uint8)  # pure white: the noise estimate is zero
    photo[150:350, 100:200] = 40
    for y, x in ((100, 120), (110, 180), (360, 90)):  # grey specks of 6x6 px within a quarter of its height
        photo[y : y + 6, x : x + 6] = 225
    out = P.preprocess(photo, P.PreprocessOptions(mode="fashion"))
    y0, y1, x0, x1 = bbox(out, 0.05)
    assert (y0, y1) == (0, 28) and x1 - x0 == 14


# --- still refused ------------------------------------------------------------


def test_blank_paper_and_specks_are_still_refused():
    rng = np.random.default_rng(0)
    white = np.clip(rng.normal(245, 2, (200, 160)), 0, 255).astype(np.uint8)
    specks = white.copy()
    for y, x in rng.integers(10, 150, (6, 2)):
        specks[y : y + 2, x : x + 2] = 60
    grey = np.clip(rng.normal(150, 3, (240, 240)), 0, 255).astype(np.uint8)
    for image in (white, specks, grey):
        for invert in ("auto", "always"):
            with pytest.raises(P.BlankImageError, match="^no content found"):
                P.preprocess(image, P.PreprocessOptions(invert=invert))


# --- real data (skipped without the files) ------------------------------------


def _real(dataset: str, count: int) -> np.ndarray:
    with gzip.open(REAL_DATA / dataset / "t10k-images-idx3-ubyte.gz") as handle:
        return np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[-count:]


@pytest.mark.realdata
@pytest.mark.skipif(
    not (REAL_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no MNIST in {REAL_DATA}"
)
@pytest.mark.parametrize("kind", [k for k in DIGIT_KINDS if k != "continental"])
def test_real_mnist_digits_of_each_kind_come_back(kind):
    digits = _real("mnist", 16)
    scores = []
    for index, digit in enumerate(digits):
        out = P.preprocess(read_image(render_kind(kind, (5, index), digit)), MNIST)
        scores.append(correlation(out, P.preprocess(digit, MNIST)))
    assert np.median(scores) > (0.6 if kind in ("thin", "bold") else 0.85)


@pytest.mark.realdata
@pytest.mark.skipif(
    not (REAL_DATA / "fashion" / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no Fashion in {REAL_DATA}"
)
def test_real_fashion_product_pictures_come_back():
    articles = _real("fashion", 16)
    options = P.PreprocessOptions(mode="fashion")
    scores = [
        correlation(P.preprocess(read_image(render_kind("product", (5, i), a)), options), a / 255.0)
        for i, a in enumerate(articles)
    ]
    assert np.median(scores) > 0.85


# --- other writers' styles, tone curves, faint articles (issue #30) -------------


@pytest.mark.parametrize("variant", range(len(STYLES)))
def test_each_writing_style_comes_out_as_a_centred_digit(variant):
    style, digit = STYLES[variant]
    assert label_of("styles", variant, label=0) == digit
    for seed in range(3):
        out = P.preprocess(read_image(render_kind("styles", (seed, variant), variant=variant)), MNIST)
        assert_mnist_layout(out)


def test_writing_styles_have_the_shapes_they_are_named_for():
    holes = {"closed-4": 1, "open-4": 0, "looped-2": 1, "flat-top-3": 0, "hooked-9": 1, "flag-1": 0}
    assert set(holes) == {style for style, _ in STYLES}
    for style, expected in holes.items():
        for seed in range(3):
            field = draw_style(style, np.random.default_rng(seed))
            assert count_holes(field >= 0.5) == expected, (style, seed)
    with pytest.raises(ValueError, match="unknown writing style"):
        draw_style("gothic-7", np.random.default_rng(0))


def test_variants_are_deterministic_and_cycle():
    article = np.zeros((28, 28), np.uint8)
    article[3:26, 5:23] = 200
    for kind, count in (("styles", len(STYLES)), ("tones", len(TONE_CURVES)), ("faint", len(FAINT_CONTRASTS))):
        first = render_kind(kind, (1, 2), article, variant=1)
        assert first == render_kind(kind, (1, 2), article, variant=1 + count)
        assert first != render_kind(kind, (1, 2), article, variant=2)
    assert OTHER_WRITERS_KINDS == ("styles",) and {"tones", "faint"} <= set(FASHION_KINDS)


def test_tone_curves_keep_the_background_and_the_order_of_tones():
    darkness = np.linspace(0.0, 1.0, 101, dtype=np.float32)
    for name in TONE_CURVES:
        toned = tone_curve(name, darkness)
        assert toned[0] == 0.0 and (np.diff(toned) >= 0).all() and toned.max() <= 1.0, name
    assert tone_curve("gamma-2.5", darkness)[50] < 0.2 < tone_curve("gamma-0.4", darkness)[50]


@pytest.mark.parametrize("variant", range(len(FAINT_CONTRASTS)))
def test_a_faint_article_is_as_faint_as_it_claims(variant):
    article = np.zeros((28, 28), np.uint8)
    article[3:26, 5:23] = 200
    luminance = read_image(render_kind("faint", (0, variant), article, variant=variant))
    background = float(np.median(luminance[:5]))
    body = background - float(np.quantile(luminance, 0.1))  # the article covers well over a tenth of the picture
    assert FAINT_CONTRASTS[variant] * 0.7 < body < FAINT_CONTRASTS[variant] * 1.3
    assert background > 0.93


def test_the_picture_benchmarks_draw_the_runs_validation_split_or_the_last_test_images(
    trained_run, synthetic_data_dir, monkeypatch
):
    import json

    from bench.common import model_and_test_images
    from lenet_cli.data.loader import load_split

    monkeypatch.setenv("LENET_DATA_DIR", str(synthetic_data_dir))
    monkeypatch.setenv("LENET_VERIFY_CHECKSUMS", "0")
    size = json.loads((trained_run / "config.json").read_text())["validation_size"]
    _, _, images, labels, original = model_and_test_images(trained_run, 5, "validation")
    held_out, _ = load_split("mnist", "validation", synthetic_data_dir, validation_size=size)
    np.testing.assert_array_equal(images, held_out.images[:5])
    np.testing.assert_array_equal(labels, held_out.labels[:5])
    assert 0.0 <= original <= 1.0
    _, _, test_images, _, _ = model_and_test_images(trained_run, 5)
    test, _ = load_split("mnist", "test", synthetic_data_dir)
    np.testing.assert_array_equal(test_images, test.images[-5:])


# --- digits cropped to their edges (UCI-style 8x8 block scans) ------------------

LOOPS = np.linspace(0, 2 * np.pi, 25)
BOLD_EIGHT = [
    [(0.22 * np.sin(a), 0.25 - 0.25 * np.cos(a)) for a in LOOPS],
    [(0.27 * np.sin(a), 0.75 + 0.25 * np.cos(a)) for a in LOOPS],
]


def test_a_bold_eight_scanned_edge_to_edge_is_found():
    """Its ink fills most of the frame; without a paper margin the lighting surface took two in six for paper."""
    digit = as_dataset_image(BOLD_EIGHT, width=0.25)
    for seed in range(6):
        assert_mnist_layout(P.preprocess(read_image(render_kind("blocks", seed, digit)), MNIST))


def _paper_with(ink_rows: slice, shade: float = 0.0) -> np.ndarray:
    """Ink units (paper 0.1, ink 0.9) on 60x40: a bar at ``ink_rows``, and the left third shaded by ``shade``."""
    ink = np.full((60, 40), 0.1, dtype=np.float32)
    ink[:, :13] += shade
    ink[20:40, 15:25] = 0.9
    ink[ink_rows, 10:30] = 0.9
    return ink


def test_a_digit_touching_the_edge_gets_a_margin_of_its_paper():
    from lenet_cli.data.preprocess.recipes import with_paper_margin
    from lenet_cli.data.preprocess.settings import PAPER_MARGIN

    padded = with_paper_margin(_paper_with(slice(0, 3)))
    margin = round(PAPER_MARGIN * 60)
    assert padded.shape == (60 + 2 * margin, 40 + 2 * margin)
    assert np.all(padded[:margin] == np.float32(0.1)) and np.all(padded[:, -margin:] == np.float32(0.1))


@pytest.mark.parametrize("shade", [0.0, 0.35])
def test_a_digit_with_paper_all_round_keeps_its_border(shade):
    """A soft shadow over part of the border is paper, not ink: a margin would flatten the shading the surface follows."""
    from lenet_cli.data.preprocess.recipes import with_paper_margin

    ink = _paper_with(slice(8, 11), shade)
    assert with_paper_margin(ink) is ink


def test_the_margin_carries_the_papers_grain_the_same_way_each_time():
    """A noiseless frame would lower the noise measured under the digit, and specks would pass for ink."""
    from lenet_cli.data.preprocess.recipes import with_paper_margin
    from lenet_cli.data.preprocess.settings import PAPER_MARGIN

    grainy = _paper_with(slice(0, 3)) + np.random.default_rng(3).normal(0, 0.02, (60, 40)).astype(np.float32)
    padded = with_paper_margin(grainy)
    margin = round(PAPER_MARGIN * 60)
    assert 0.014 < float(np.std(padded[:margin])) < 0.026
    assert np.array_equal(padded, with_paper_margin(grainy))
