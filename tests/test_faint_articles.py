"""Faint but visible pictures are answered; only uniform, noise-only and speck pictures are refused (issue #30).

A white T-shirt photographed on a white background differs from it by a few
per cent. Content under 10 % contrast is looked for in the picture averaged
over the smallest extent content may have, against the noise of its border:
it is answered when its strongest part reaches 2.5 % of full scale and it
stands well out of the noise, and a Fashion article's darkness is stretched
to full scale, as every Fashion-MNIST article's is.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from lenet_cli.cli import cli
from lenet_cli.data import preprocess as P
from lenet_cli.data.images import read_image
from lenet_cli.data.preprocess.settings import FASHION_CONTENT_LEVEL, VISIBLE_CONTRAST
from tests.helpers.picture_kinds import FAINT_CONTRASTS, render_kind

FASHION = P.PreprocessOptions(mode="fashion")


def t_shirt(
    contrast: float, noise: float = 0.0, background: float = 0.98, size=(300, 260), seed: int = 0
) -> np.ndarray:
    """A white T-shirt on a white background: body and sleeves ``contrast`` darker than it, uint8 luminance."""
    shape = Image.new("L", size[::-1], 0)
    draw = ImageDraw.Draw(shape)
    w, h = size[1], size[0]
    draw.polygon(
        [
            (0.3 * w, 0.15 * h),
            (0.7 * w, 0.15 * h),
            (0.92 * w, 0.35 * h),
            (0.8 * w, 0.45 * h),
            (0.72 * w, 0.38 * h),
            (0.72 * w, 0.88 * h),
            (0.28 * w, 0.88 * h),
            (0.28 * w, 0.38 * h),
            (0.2 * w, 0.45 * h),
            (0.08 * w, 0.35 * h),
        ],
        fill=255,
    )
    draw.ellipse([0.42 * w, 0.1 * h, 0.58 * w, 0.22 * h], fill=0)  # the neck
    darkness = np.asarray(shape, np.float32) / 255.0
    lum = background * (1.0 - contrast * darkness) + np.random.default_rng(seed).normal(0, noise, darkness.shape)
    return np.clip(np.rint(lum * 255), 0, 255).astype(np.uint8)


def bbox(a: np.ndarray, level: float = 0.05) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(a > level)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


@pytest.mark.parametrize("contrast", [0.03, 0.05, 0.08])
@pytest.mark.parametrize("noise", [0.0, 0.005, 0.01])
def test_a_white_t_shirt_on_white_is_preprocessed_like_a_dark_one(contrast, noise):
    dark = P.preprocess(t_shirt(0.8), FASHION)
    faint = P.preprocess(t_shirt(contrast, noise, seed=int(contrast * 100)), FASHION)
    y0, y1, x0, x1 = bbox(faint)
    assert y1 - y0 >= 26 and abs((x0 + x1) / 2 - 14) <= 1.5  # the whole shirt, fitted and centred as Fashion-MNIST does
    assert (
        np.quantile(faint[faint > FASHION_CONTENT_LEVEL], 0.99) >= 0.98
    )  # full darkness, as every Fashion-MNIST article
    assert np.corrcoef(faint.ravel(), dark.ravel())[0, 1] > 0.9


def test_darkness_is_stretched_linearly_to_full_scale_and_a_dataset_article_is_left_as_it_is(tmp_path):
    from lenet_cli.data.preprocess.recipes import match_fashion_darkness

    article = np.zeros((28, 28), np.float32)
    article[1:27, 6:22] = np.linspace(
        0.1, 0.7, 16, dtype=np.float32
    )  # shading across the article, 26 px tall as the dataset
    stretched = match_fashion_darkness(article)
    assert np.quantile(stretched[stretched > 0], 0.99) == pytest.approx(1.0)
    np.testing.assert_allclose(
        stretched, np.clip(article / np.quantile(article[article > 0.02], 0.99), 0, 1), rtol=1e-6
    )
    assert np.corrcoef(stretched.ravel(), article.ravel())[0, 1] > 0.999  # scaled, not reshaped: the shading is kept
    np.testing.assert_array_equal(match_fashion_darkness(np.zeros((28, 28), np.float32)), 0.0)
    dataset_like = article.copy()
    dataset_like[10:14, 10:14] = 1.0  # a Fashion-MNIST article reaches full darkness
    dataset_like[1:27, 6:8] = 1.0
    np.testing.assert_array_equal(match_fashion_darkness(dataset_like), dataset_like)
    path = tmp_path / "sample.png"  # a saved 28x28 dataset sample goes through untouched, as lenet evaluate sees it
    Image.fromarray(np.rint(dataset_like * 255).astype(np.uint8)).save(path)
    np.testing.assert_allclose(P.preprocess(read_image(path), FASHION), np.rint(dataset_like * 255) / 255, atol=1e-6)


def test_a_lighter_camera_and_a_grey_product_shot_reach_the_same_input_as_a_dark_one():
    dark = P.preprocess(t_shirt(0.8), FASHION)
    for contrast in (0.3, 0.5):
        lighter = P.preprocess(t_shirt(contrast), FASHION)
        assert np.abs(lighter - dark).mean() < 0.02


def test_faint_digits_are_read_too():
    canvas = Image.new("L", (200, 200), 250)
    ImageDraw.Draw(canvas).line([(60, 50), (140, 50), (90, 160)], fill=240, width=14)  # a 7, 4 % darker than the paper
    out = P.preprocess(np.asarray(canvas), P.PreprocessOptions())
    y0, y1, x0, x1 = bbox(out, 0.1)
    assert y1 - y0 == 20 and out.max() > 0.9  # scaled into MNIST's 20x20 box at full contrast, as any digit
    assert out[4:10].sum() > out[18:24].sum()  # the bar at the top


@pytest.mark.parametrize("mode", ["mnist", "fashion"])
def test_below_the_visible_contrast_is_uniform(mode):
    faint = t_shirt(0.02, background=0.98)  # 2 % of the background: 5 grey levels
    with pytest.raises(P.BlankImageError, match=r"^no content found: its contrast is below 2\.5%"):
        P.preprocess(faint, P.PreprocessOptions(mode=mode))
    assert VISIBLE_CONTRAST == 0.025


@pytest.mark.parametrize("mode", ["mnist", "fashion"])
def test_content_lost_in_its_noise_is_refused_and_found_above_it(mode):
    options = P.PreprocessOptions(mode=mode)
    grey = {"background": 0.7, "size": (120, 104), "seed": 1}  # grey, so that the noise is not clipped at white
    with pytest.raises(P.BlankImageError, match="^no content found: only noise or specks"):
        P.preprocess(t_shirt(0.04, noise=0.08, **grey), options)  # averaged over 3 px, still within its noise
    if mode == "fashion":  # (a shirt filling half the picture is no digit: its paper would be fitted under it)
        P.preprocess(t_shirt(0.04, noise=0.008, **grey), options)  # the same shirt in a tenth of that noise


@pytest.mark.parametrize("size", [(60, 60), (300, 400), (1200, 900)])
def test_noise_and_specks_of_any_size_are_still_refused(size):
    rng = np.random.default_rng(sum(size))
    for sigma in (1.0, 4.0, 12.0):
        noise = np.clip(rng.normal(235, sigma, size), 0, 255).astype(np.uint8)
        for mode in ("mnist", "fashion"):
            with pytest.raises(P.BlankImageError, match="^no content found"):
                P.preprocess(noise, P.PreprocessOptions(mode=mode))
    specks = np.clip(rng.normal(240, 2, size), 0, 255).astype(np.uint8)
    for y, x in rng.integers(0, min(size) - 3, (8, 2)):
        specks[y : y + 2, x : x + 2] = 90
    for mode in ("mnist", "fashion"):
        with pytest.raises(P.BlankImageError, match="^no content found"):
            P.preprocess(specks, P.PreprocessOptions(mode=mode))


@pytest.mark.parametrize("variant", range(len(FAINT_CONTRASTS)))
def test_the_faint_picture_kind_is_answered(variant):
    article = np.zeros((28, 28), np.uint8)
    article[3:26, 5:23] = 180  # a dress-like block with a darker middle
    article[8:20, 10:18] = 255
    for seed in range(3):
        out = P.preprocess(read_image(render_kind("faint", (seed, variant), article, variant=variant)), FASHION)
        y0, y1, _, _ = bbox(out)
        assert y1 - y0 >= 27 and out[14, 14] > out[4, 7]


# --- through the command line ---------------------------------------------------


TINY_FASHION = [
    "train",
    "--dataset",
    "fashion",
    "--epochs",
    "1",
    "--validation-size",
    "100",
    "--batch-size",
    "50",
    "--dense-units",
    "32",
    "--quiet",
    "--no-tensorboard",
]


@pytest.fixture(scope="module")
def fashion_run(tmp_path_factory, synthetic_data_dir):
    """One tiny trained Fashion run (synthetic data), whose model answers with the fashion preprocessing."""
    out = tmp_path_factory.mktemp("fashion-runs") / "tiny-fashion"
    result = CliRunner().invoke(
        cli,
        [*TINY_FASHION, "--data-dir", str(synthetic_data_dir), "--output", str(out)],
        env={"LENET_VERIFY_CHECKSUMS": "0"},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return out


def test_predict_answers_white_on_white_and_refuses_a_uniform_picture(fashion_run, tmp_path):
    paths = []
    for contrast in (0.03, 0.05, 0.08):
        path = tmp_path / f"white-{round(contrast * 100)}.png"
        Image.fromarray(t_shirt(contrast, noise=0.004, seed=7)).save(path)
        paths.append(path)
    Image.fromarray(np.full((300, 260), 250, np.uint8)).save(tmp_path / "uniform.png")
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--model",
            str(fashion_run),
            *map(str, paths),
            str(tmp_path / "uniform.png"),
            "--format",
            "json",
            "--save-preprocessed",
            str(tmp_path / "seen"),
        ],
    )
    assert result.exit_code == 1  # one input failed, the others were answered
    records = json.loads(result.stdout)
    answered, uniform = records[:3], records[3]
    for record in answered:
        assert record["error"] is None, record
        assert record["label"] is not None and isinstance(record["low_confidence"], bool)
        assert 0.0 < record["confidence"] <= 1.0
    assert uniform["label"] is None and uniform["error"].startswith("no content found in ")
    assert "its contrast is below 2.5%" in uniform["error"]
    seen = sorted((tmp_path / "seen").iterdir())
    assert len(seen) == 3 and all(
        np.quantile(content[content > 5], 0.99) >= 250 for content in (np.asarray(Image.open(p)) for p in seen)
    )


def test_predict_flags_an_unsure_answer_on_a_faint_article(fashion_run, tmp_path):
    path = tmp_path / "white.png"
    Image.fromarray(t_shirt(0.03, noise=0.004, seed=3)).save(path)
    result = CliRunner().invoke(
        cli, ["predict", "--model", str(fashion_run), str(path), "--format", "json", "--min-confidence", "1"]
    )
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["error"] is None and record["low_confidence"] is True
    assert "1 of 1 answer below 100% confidence" in result.stderr


def test_bench_fashion_tones_reads_each_step_on_validation_renderings_and_restores_the_shipped_one(
    fashion_run, synthetic_data_dir, monkeypatch
):
    from bench import fashion_tones
    from lenet_cli.data.preprocess import recipes

    shipped = recipes.match_fashion_darkness
    monkeypatch.setenv("LENET_DATA_DIR", str(synthetic_data_dir))
    result = fashion_tones.measure(fashion_run, count=6, names=["lift-faint", "stretch"])
    assert result["split"] == "validation" and set(result["candidates"]) == {"lift-faint", "stretch"}
    for row in result["candidates"].values():
        assert set(row) == set(fashion_tones.COLUMNS) and all(0.0 <= value <= 1.0 for value in row.values())
    assert result["dataset_images"] > result["count"]  # the dataset column reads the whole validation split
    assert recipes.match_fashion_darkness is shipped
    faint = np.zeros((28, 28), np.float32)
    faint[2:26, 4:24] = 0.2
    assert np.quantile(fashion_tones.lift_faint(faint), 0.99) == pytest.approx(fashion_tones.OLD_MIN_PEAK)
    with pytest.raises(SystemExit, match="unknown candidates"):
        fashion_tones.measure(fashion_run, count=2, names=["gamma-2"])
