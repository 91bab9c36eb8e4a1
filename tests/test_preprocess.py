"""Image reading and preprocessing for ``lenet predict``: every mode, format and failure, on tiny generated images."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lenet_cli.core.errors import LenetError
from lenet_cli.data import images as I
from lenet_cli.data import preprocess as P
from tests.helpers.renderings import FORMATS, render_realistic, write_renderings

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = Path(os.environ.get("LENET_DATA_DIR") or REPO.parent / "shared" / "datasets")


# --- helpers -----------------------------------------------------------------


def draw_digit(size: int = 28) -> np.ndarray:
    """A hand-drawn-looking '2' (uint8, white on black), anti-aliased like MNIST."""
    big = Image.new("L", (size * 4, size * 4), 0)
    draw = ImageDraw.Draw(big)
    s = size * 4 / 28
    points = [(8, 9), (11, 6), (16, 5), (20, 8), (19, 13), (9, 22), (21, 22)]
    draw.line([(x * s, y * s) for x, y in points], fill=255, width=int(2.6 * s), joint="curve")
    return np.asarray(big.resize((size, size), Image.Resampling.BOX))


def paper_photo(digit: np.ndarray, canvas=(300, 420), at=(40, 220), scale=6, seed=0) -> np.ndarray:
    """Dark ink on grey paper, off-centre, with a lighting gradient and noise; uint8."""
    rng = np.random.default_rng(seed)
    ink = (
        np.asarray(Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC), dtype=np.float32)
        / 255
    )
    coverage = np.zeros(canvas, dtype=np.float32)
    y, x = at
    coverage[y : y + ink.shape[0], x : x + ink.shape[1]] = np.clip(ink, 0, 1)
    light = np.linspace(0.55, 0.95, canvas[1])[None, :] * np.linspace(1.0, 0.85, canvas[0])[:, None]
    lum = light * (0.95 - 0.85 * coverage) + rng.normal(0, 0.02, canvas)
    return np.clip(np.rint(lum * 255), 0, 255).astype(np.uint8)


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    idx = np.arange(a.shape[0])
    return float((a.sum(1) @ idx) / a.sum()), float((a.sum(0) @ idx) / a.sum())


def bbox_size(a: np.ndarray, level: float = 0.0) -> tuple[int, int]:
    rows, cols = np.nonzero(a > level)
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


DIGIT = draw_digit()
DIGIT_F = DIGIT.astype(np.float32) / 255
MNIST = P.PreprocessOptions()


# --- reading: modes ----------------------------------------------------------


def test_mode_L_is_luminance_over_255(tmp_path):
    path = save(Image.fromarray(DIGIT), tmp_path / "d.png")
    np.testing.assert_allclose(I.read_image(path), DIGIT_F, atol=1e-6)


def test_mode_1(tmp_path):
    path = save(Image.fromarray(DIGIT > 127).convert("1"), tmp_path / "d.png")
    assert Image.open(path).mode == "1"
    out = I.read_image(path)
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out, (DIGIT > 127).astype(np.float32))


def test_mode_rgb_uses_pillow_luma_weights(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    out = I.read_image(save(Image.fromarray(rgb), tmp_path / "c.png"))
    np.testing.assert_allclose(out, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255, atol=1e-5)


def test_mode_P_without_transparency(tmp_path):
    path = save(Image.fromarray(DIGIT).convert("P"), tmp_path / "p.png")
    assert Image.open(path).mode == "P"
    assert correlation(I.read_image(path), DIGIT_F) > 0.99


def test_mode_P_with_transparent_background(tmp_path):
    # Palette: 0 = black but transparent (the background), 1 = dark blue ink.
    idx = (DIGIT > 127).astype(np.uint8)
    image = Image.frombytes("P", (28, 28), idx.tobytes())
    image.putpalette([0, 0, 0, 20, 20, 90] + [0, 0, 0] * 254)
    path = save(image, tmp_path / "p.png", transparency=0)
    assert Image.open(path).info.get("transparency") == 0
    out = I.read_image(path)
    assert out[0, 0] == pytest.approx(1.0)  # dark ink -> white background, not black-on-black
    assert out[DIGIT > 127].max() < 0.2
    result = P.preprocess(out, MNIST)
    assert correlation(result, P.preprocess(DIGIT, MNIST)) > 0.9


@pytest.mark.parametrize("colour", [0, 255])
def test_mode_RGBA_ink_only_in_alpha(tmp_path, colour):
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., :3] = colour
    rgba[..., 3] = DIGIT
    path = save(Image.fromarray(rgba), tmp_path / "a.png")
    out = I.read_image(path)
    assert np.ptp(out) > 0.9, "ink in the alpha channel must stay visible"
    assert out[0, 0] == pytest.approx(1.0 - colour / 255)  # background contrasts with the ink colour
    assert correlation(P.preprocess(out, MNIST), P.preprocess(DIGIT, MNIST)) > 0.97


def test_mode_LA_ink_only_in_alpha(tmp_path):
    la = np.stack([np.zeros_like(DIGIT), DIGIT], axis=-1)
    path = save(Image.fromarray(la), tmp_path / "la.png")
    assert Image.open(path).mode == "LA"
    out = I.read_image(path)
    np.testing.assert_allclose(out, 1.0 - DIGIT_F, atol=1e-6)


def test_opaque_rgba_is_unchanged(tmp_path):
    rgba = np.full((8, 8, 4), 255, np.uint8)
    rgba[2:5, 2:5, :3] = 0
    out = I.read_image(save(Image.fromarray(rgba), tmp_path / "o.png"))
    assert out[3, 3] == 0.0 and out[0, 0] == pytest.approx(1.0)


def test_mode_I16_is_scaled_by_bit_depth_not_clipped(tmp_path):
    values = DIGIT.astype(np.uint16) * 16  # at most 4080 of 65535: dark, not white
    path = save(Image.fromarray(values), tmp_path / "d16.png")
    assert Image.open(path).mode.startswith("I;16")
    out = I.read_image(path)
    np.testing.assert_allclose(out, values / 65535, atol=1e-6)
    assert out.max() < 0.07


def test_mode_I_32bit_tiff_uses_bits_per_sample(tmp_path):
    values = np.full((4, 4), 2**31 - 1, np.int32)
    values[0, 0] = 0
    path = save(Image.fromarray(values), tmp_path / "i.tif")
    out = I.read_image(path)
    assert out[0, 0] == 0.0 and out[1, 1] == pytest.approx(0.5, abs=1e-3)


def test_mode_F(tmp_path):
    path = save(Image.fromarray(DIGIT_F), tmp_path / "f.tif")
    assert Image.open(path).mode == "F"
    np.testing.assert_allclose(I.read_image(path), DIGIT_F, atol=1e-6)


# --- reading: formats, sources -----------------------------------------------


@pytest.mark.parametrize(
    "suffix, kwargs, exact",
    [
        (".png", {}, True),
        (".bmp", {}, True),
        (".tif", {}, True),
        (".webp", {"lossless": True}, True),
        (".jpg", {"quality": 95}, False),
        (".gif", {}, True),
    ],
)
def test_formats(tmp_path, suffix, kwargs, exact):
    path = save(Image.fromarray(DIGIT), tmp_path / f"d{suffix}", **kwargs)
    out = I.read_image(path)
    assert out.shape == (28, 28) and out.dtype == np.float32
    if exact:
        np.testing.assert_allclose(out, DIGIT_F, atol=1.5 / 255)
    else:
        assert correlation(out, DIGIT_F) > 0.98


def test_animated_gif_reads_first_frame(tmp_path):
    first = Image.new("L", (16, 16), 0)
    first.paste(255, (0, 0, 4, 16))
    second = Image.new("L", (16, 16), 0)
    second.paste(255, (12, 0, 16, 16))
    path = tmp_path / "anim.gif"
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    assert Image.open(path).n_frames == 2
    out = I.read_image(path)
    assert out[:, :4].min() > 0.9 and out[:, 12:].max() < 0.1


def test_bytes_input_matches_path(tmp_path):
    path = save(Image.fromarray(DIGIT), tmp_path / "d.png")
    np.testing.assert_array_equal(I.read_image(path.read_bytes()), I.read_image(path))


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("L", (20, 10), 0)
    image.paste(255, (0, 0, 5, 10))  # bright strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate 90 degrees clockwise
    path = save(image, tmp_path / "r.jpg", exif=exif, quality=95)
    out = I.read_image(path)
    assert out.shape == (20, 10)
    assert out[:5].mean() > 0.8  # strip is now at the top


def test_one_pixel_image(tmp_path):
    path = save(Image.new("L", (1, 1), 128), tmp_path / "px.png")
    out = I.read_image(path)
    assert out.shape == (1, 1)
    with pytest.raises(P.BlankImageError, match="no content found"):
        P.preprocess(out, MNIST)
    with pytest.raises(P.BlankImageError):
        P.preprocess(out, P.PreprocessOptions(mode="none"))


def test_non_utf8_file_name(tmp_path):
    raw = os.fsencode(tmp_path) + b"/digit-\xff\xfe.png"
    with open(raw, "wb") as handle:
        Image.fromarray(DIGIT).save(handle, format="PNG")
    name = os.fsdecode(raw)
    np.testing.assert_allclose(I.read_image(name), DIGIT_F, atol=1e-6)
    with open(raw, "wb"):
        pass
    with pytest.raises(LenetError) as info:
        I.read_image(name)
    message = str(info.value)
    message.encode("utf-8")  # printable: no lone surrogates
    assert "digit-\\xff\\xfe.png" in message and "empty" in message


# --- reading: failures -------------------------------------------------------


def one_line_error(source, match: str) -> str:
    with pytest.raises(LenetError, match=match) as info:
        I.read_image(source)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def test_missing_file(tmp_path):
    message = one_line_error(tmp_path / "nope.png", "no such file")
    assert "nope.png" in message


def test_directory(tmp_path):
    one_line_error(tmp_path, "directory")


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert "'" + str(path) + "'" in one_line_error(path, "empty")


def test_zero_bytes_on_stdin():
    one_line_error(b"", "no data")


def test_not_an_image_with_png_extension(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("hello, I am text\n")
    one_line_error(path, r"not an image file Pillow recognises \(is it really a PNG\?\)")


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_files(tmp_path, suffix):
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    full = tmp_path / f"full{suffix}"
    Image.fromarray(noisy).save(full)
    data = full.read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    assert "cut" in one_line_error(path, "truncated or corrupt")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_permission_denied(tmp_path):
    path = save(Image.fromarray(DIGIT), tmp_path / "locked.png")
    path.chmod(0)
    one_line_error(path, "permission denied")


def test_decompression_bomb_guard(tmp_path, monkeypatch):
    path = save(Image.new("L", (40, 30), 0), tmp_path / "big.png")
    monkeypatch.setattr(I, "MAX_IMAGE_PIXELS", 1000)
    message = one_line_error(path, "40x30 is 1,200 pixels, more than the limit of 1,000")
    assert "downscale" in message


def test_pillow_decompression_bomb_is_caught_too(tmp_path, monkeypatch):
    path = save(Image.new("L", (40, 30), 0), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own check fires first
    one_line_error(path, "too many pixels")


# --- preprocessing -----------------------------------------------------------


def test_options_are_validated():
    with pytest.raises(LenetError, match="'digits'"):
        P.PreprocessOptions(mode="digits")
    with pytest.raises(LenetError, match="'sometimes'"):
        P.PreprocessOptions(invert="sometimes")


def test_mnist_centre_of_mass_and_box():
    # An off-centre digit in a larger black image.
    canvas = np.zeros((90, 70), np.uint8)
    canvas[5:61, 30:58] = np.asarray(Image.fromarray(DIGIT).resize((28, 56)))
    out = P.preprocess(canvas, MNIST)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5
    height, width = bbox_size(out)
    assert max(height, width) <= 20 and height >= 19  # tall digit: its height fills the box


def test_mnist_sample_passes_through_unchanged():
    ready = P.preprocess(DIGIT, MNIST)  # centred once
    again = P.preprocess(P.to_uint8(ready), MNIST)
    np.testing.assert_allclose(again, np.rint(ready * 255) / 255, atol=1e-6)


def test_dark_on_light_is_inverted_under_auto():
    out = P.preprocess(255 - DIGIT, MNIST)
    assert correlation(out, P.preprocess(DIGIT, MNIST)) > 0.99
    assert P.decide_invert(1 - DIGIT_F) is True


def test_light_on_dark_is_not_inverted():
    assert P.decide_invert(DIGIT_F) is False
    out = P.preprocess(DIGIT, MNIST)
    assert out[0, 0] == 0.0 and out.max() > 0.9


def test_invert_always_and_never():
    assert P.decide_invert(DIGIT_F, "always") is True
    assert P.decide_invert(1 - DIGIT_F, "never") is False
    out = P.preprocess(1 - DIGIT_F, P.PreprocessOptions(mode="none", invert="always"))
    assert out[0, 0] == 0.0


def test_photo_of_digit_on_uneven_paper_matches_clean_digit():
    photo = paper_photo(DIGIT)
    out = P.preprocess(photo, MNIST)
    clean = P.preprocess(DIGIT, MNIST)
    assert correlation(out, clean) > 0.9
    cy, cx = centre_of_mass(out)
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5


def test_specks_do_not_move_the_box():
    photo = paper_photo(DIGIT, seed=1)
    photo[10:13, 10:13] = 30  # dust far from the digit
    photo[280:282, 400:402] = 40
    assert correlation(P.preprocess(photo, MNIST), P.preprocess(DIGIT, MNIST)) > 0.9


@pytest.mark.parametrize("fmt", FORMATS)
def test_realistic_renderings_come_back(fmt):
    data = render_realistic(DIGIT, seed=(3, FORMATS.index(fmt)), fmt=fmt)
    out = P.preprocess(I.read_image(data), MNIST)
    assert correlation(out, P.preprocess(DIGIT, MNIST)) > 0.8


def test_renderings_are_deterministic(tmp_path):
    assert render_realistic(DIGIT, 5, "jpeg") == render_realistic(DIGIT, 5, "jpeg")
    assert render_realistic(DIGIT, 5, "jpeg") != render_realistic(DIGIT, 6, "jpeg")
    paths = write_renderings(np.stack([DIGIT, DIGIT]), tmp_path, seed=1, formats=("gray_png", "jpeg"))
    assert [p.name for p in paths] == ["00000.png", "00001.jpg"]
    assert Image.open(paths[1]).format == "JPEG"


@pytest.mark.parametrize(
    "image",
    [np.full((40, 40), 200, np.uint8), np.zeros((28, 28), np.uint8), np.full((50, 50), 255, np.uint8)],
    ids=["grey", "black", "white"],
)
@pytest.mark.parametrize("mode", P.MODES)
def test_uniform_images_are_blank(image, mode):
    with pytest.raises(P.BlankImageError, match="^no content found"):
        P.preprocess(image, P.PreprocessOptions(mode=mode))


@pytest.mark.parametrize("mode", ["mnist", "fashion"])
def test_low_contrast_and_noise_only_are_blank(mode):
    faint = (np.full((60, 60), 200) - (draw_digit(60) > 127) * 6).astype(np.uint8)  # 2 % contrast
    noise = np.clip(np.random.default_rng(0).normal(180, 6, (120, 120)), 0, 255).astype(np.uint8)
    for image in (faint, noise):
        with pytest.raises(P.BlankImageError, match="no content found"):
            P.preprocess(image, P.PreprocessOptions(mode=mode))


def test_blank_error_names_the_file(tmp_path):
    path = save(Image.new("RGB", (30, 30), (200, 10, 10)), tmp_path / "red.png")
    with pytest.raises(P.BlankImageError, match=r"no content found in '.*red\.png'"):
        P.load_and_preprocess(path)
    assert issubclass(P.BlankImageError, LenetError)


def test_fashion_fits_longest_side_to_28_and_centres():
    photo = np.full((200, 300), 245, np.uint8)
    photo[60:140, 40:260] = 60  # a wide dark article on white
    out = P.preprocess(photo, P.PreprocessOptions(mode="fashion"))
    height, width = bbox_size(out, 0.05)
    assert width == 28
    assert abs(height - round(80 * 28 / 220)) <= 1
    rows = np.nonzero(out.max(1) > 0.05)[0]
    assert abs((rows.min() + rows.max()) / 2 - 13.5) <= 1
    assert out[14, 14] == pytest.approx((245 - 60) / 245, abs=0.05)


def test_fashion_keeps_faint_parts_beside_dark_ones():
    photo = np.full((200, 100), 250, np.uint8)
    photo[20:90, 20:80] = 215  # light top
    photo[100:180, 25:75] = 30  # dark trousers
    out = P.preprocess(photo, P.PreprocessOptions(mode="fashion"))
    assert bbox_size(out, 0.05)[0] == 28
    assert out[:8].max() > 0.1


def test_none_mode_resizes_only():
    photo = np.full((56, 84), 255, np.uint8)
    photo[10:40, 20:50] = 0
    out = P.preprocess(photo, P.PreprocessOptions(mode="none"))
    assert out.shape == (28, 28) and out[0, 0] == pytest.approx(0.0, abs=1e-3)
    out = P.preprocess(photo, P.PreprocessOptions(mode="none", invert="never"))
    assert out[0, 0] == pytest.approx(1.0, abs=1e-3)


def test_accepts_pil_images_and_rgb_arrays():
    rgb = np.repeat(DIGIT[..., None], 3, axis=2)
    expected = P.preprocess(DIGIT, MNIST)
    np.testing.assert_allclose(P.preprocess(Image.fromarray(rgb), MNIST), expected, atol=1e-5)
    np.testing.assert_allclose(P.preprocess(rgb, MNIST), expected, atol=1e-5)
    with pytest.raises(LenetError, match="shape"):
        P.preprocess(np.zeros((2, 2, 2, 2)), MNIST)


def test_save_preprocessed_png_round_trips(tmp_path):
    out = P.preprocess(paper_photo(DIGIT), MNIST)
    path = P.save_preprocessed_png(out, tmp_path / "sub" / "seen.png")
    with Image.open(path) as image:
        assert image.size == (28, 28) and image.mode == "L"
        back = np.asarray(image)
    np.testing.assert_array_equal(back, np.rint(out * 255).astype(np.uint8))
    np.testing.assert_allclose(P.load_and_preprocess(path), back / 255, atol=1e-6)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["seen.png"]  # no temporary left
    with pytest.raises(LenetError, match="28x28"):
        P.save_preprocessed_png(np.zeros((20, 20)), tmp_path / "x.png")


def test_batch_records_failures_when_asked(tmp_path):
    good = save(Image.fromarray(DIGIT), tmp_path / "good.png")
    blank = save(Image.new("L", (20, 20), 0), tmp_path / "blank.png")
    missing = tmp_path / "missing.png"
    results = P.preprocess_batch([good, blank, missing, good.read_bytes()], keep_going=True)
    assert [r.ok for r in results] == [True, False, False, True]
    assert results[1].blank and not results[2].blank
    assert "missing.png" in results[2].name and results[3].name == "'<stdin>'"
    assert np.stack([r.array for r in results if r.ok]).shape == (2, 28, 28)
    with pytest.raises(P.BlankImageError):
        P.preprocess_batch([good, blank])


def test_a_batch_of_small_pngs_keeps_order(tmp_path):
    """(Their speed is measured in bench/: ``python -m bench.run --only predict``.)"""
    paths = []
    for i in range(20):
        path = tmp_path / f"{i}.png"
        Image.fromarray(np.roll(DIGIT, i % 5 - 2, axis=1)).save(path)
        paths.append(path)
    results = P.preprocess_batch(paths)
    singles = [P.preprocess_batch([path])[0] for path in paths]
    assert len(results) == 20
    for batched, single in zip(results, singles):
        assert batched.error is None and np.array_equal(batched.array, single.array)


def test_modules_do_not_import_tensorflow():
    code = "import lenet_cli.data.preprocess, lenet_cli.data.images, sys; bad = {'tensorflow', 'keras', 'click'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# --- real data (skipped without the files) ------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(
    not (REAL_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(), reason=f"no MNIST in {REAL_DATA}"
)
def test_real_mnist_renderings_match_originals():
    with gzip.open(REAL_DATA / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        digits = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:40]
    for digit in digits:  # dataset samples pass through exactly
        np.testing.assert_array_equal(P.preprocess(digit, MNIST), digit / np.float32(255))
    fashion_file = REAL_DATA / "fashion" / "t10k-images-idx3-ubyte.gz"
    if fashion_file.is_file():
        with gzip.open(fashion_file) as handle:
            articles = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:40]
        same = [
            np.array_equal(P.preprocess(a, P.PreprocessOptions(mode="fashion")), a / np.float32(255)) for a in articles
        ]
        assert np.mean(same) >= 0.9
    scores = [
        correlation(P.preprocess(I.read_image(render_realistic(d, (0, i), FORMATS[i % 4])), MNIST), d)
        for i, d in enumerate(digits)
    ]
    assert np.median(scores) > 0.93 and min(scores) > 0.5
