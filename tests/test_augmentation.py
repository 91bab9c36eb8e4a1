"""lenet's own augmentation layers (elastic distortion, stroke thickness, low resolution, tone curves) and the policies that use them.

Each layer is seeded and reproducible, changes nothing at inference, runs in
a compiled step with any batch size, keeps float ``[0, 1]`` on black, and
has a config that rebuilds it; the ``writers`` and ``tones`` policies train
through the real command and never reach the saved model. On the real data
(skipped without it), moderately distorted test digits and re-toned test
articles stay recognisable to a model that never saw such distortions.
"""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from tests.helpers.real_data import REAL_DATA

TINY = [
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
MODEL_LAYERS = [
    "conv_1",
    "pool_1",
    "lrn_1",
    "conv_2",
    "pool_2",
    "lrn_2",
    "flatten",
    "dropout_1",
    "dot_1",
    "dropout_2",
    "dot_2",
    "dropout_3",
    "logits_layer",
    "softmax_layer",
]


def strokes(n: int = 8) -> np.ndarray:
    """Digit-like batches: a few anti-aliased bars of different brightness, white on black, float32."""
    x = np.zeros((n, 28, 28, 1), np.float32)
    for i in range(n):
        x[i, 5:23, 8 + i % 4 : 11 + i % 4, 0] = 0.6 + 0.05 * i
        x[i, 6:9, 8:20, 0] = 1.0
        x[i, 14, 10:18, 0] = 0.5
    return x


def layers_under_test():
    from lenet_cli.model import augmentation_layers as L

    return {
        "elastic": lambda seed: L.ElasticDistortion(34.0, 4.0, seed=seed),
        "thickness": lambda seed: L.StrokeThickness((-0.5, 1.0), seed=seed),
        "lowres": lambda seed: L.LowResolution((11, 17), rate=0.5, seed=seed),
        "tones": lambda seed: L.ToneCurve((0.4, 2.5), (0.6, 1.2), seed=seed),
    }


KINDS = ("elastic", "thickness", "lowres", "tones")


@pytest.mark.parametrize("kind", KINDS)
def test_each_layer_is_seeded_in_range_and_off_at_inference(kind):
    make = layers_under_test()[kind]
    x = strokes()
    out = np.asarray(make(7)(x, training=True))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    assert not np.allclose(out, x)
    np.testing.assert_array_equal(out, np.asarray(make(7)(x, training=True)))  # the same seed draws the same
    assert not np.allclose(out, np.asarray(make(8)(x, training=True)))
    layer = make(7)
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)  # inference sees the image as it is
    first, second = np.asarray(layer(x, training=True)), np.asarray(layer(x, training=True))
    assert not np.array_equal(first, second)  # the state moves on: each batch draws anew


@pytest.mark.parametrize("kind", KINDS)
def test_each_layer_runs_in_a_compiled_step_of_any_batch_size_and_rebuilds_from_its_config(kind):
    import keras
    import tensorflow as tf

    layer = layers_under_test()[kind](3)
    step = tf.function(
        lambda t: layer(t, training=True),
        input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)],
        autograph=False,
    )
    for n in (1, 5):
        out = step(strokes(n)).numpy()
        assert out.shape == (n, 28, 28, 1) and np.isfinite(out).all()
    config = layer.get_config()
    json.dumps(config)  # config.json records it
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is type(layer) and again.get_config() == config
    assert [v.name for v in layer.variables] == ["seed_generator_state"]  # checkpointed with the run


def test_elastic_distortion_moves_pixels_by_about_simards_amount():
    from lenet_cli.model.augmentation_layers import ElasticDistortion

    ramp = np.broadcast_to(np.arange(28, dtype=np.float32)[None, None, :, None] / 27, (64, 28, 28, 1)).copy()
    moved = np.asarray(ElasticDistortion(34.0, 4.0, seed=0)(ramp, training=True))
    rms = float(np.sqrt(((moved - ramp)[:, 6:22, 6:22] ** 2).mean())) * 27  # horizontal displacement, in pixels
    assert 0.9 < rms < 2.0
    np.testing.assert_allclose(np.asarray(ElasticDistortion(0.0, 4.0, seed=0)(ramp, training=True)), ramp, atol=1e-6)


def test_stroke_thickness_is_grey_dilation_or_erosion_in_part():
    import tensorflow as tf

    from lenet_cli.model.augmentation_layers import StrokeThickness

    x = strokes(4)
    dilated = tf.nn.max_pool2d(x, 3, 1, "SAME").numpy()
    eroded = -tf.nn.max_pool2d(-x, 3, 1, "SAME").numpy()
    np.testing.assert_allclose(np.asarray(StrokeThickness((1.0, 1.0), seed=0)(x, training=True)), dilated, atol=1e-6)
    np.testing.assert_allclose(np.asarray(StrokeThickness((-1.0, -1.0), seed=0)(x, training=True)), eroded, atol=1e-6)
    half = np.asarray(StrokeThickness((0.5, 0.5), seed=0)(x, training=True))
    np.testing.assert_allclose(half, (x + dilated) / 2, atol=1e-6)
    mixed = np.asarray(StrokeThickness((-0.5, 1.0), seed=1)(strokes(32), training=True))
    ink = mixed.sum(axis=(1, 2, 3)) / strokes(32).sum(axis=(1, 2, 3))
    assert ink.min() < 1.0 < ink.max()  # some images thinner, some thicker
    with pytest.raises(ValueError, match="factor"):
        StrokeThickness((-2.0, 1.0))


def test_low_resolution_blurs_keeps_the_ink_and_spares_the_rest():
    from lenet_cli.model.augmentation_layers import LowResolution, scan_matrix

    x = strokes(16)
    always = np.asarray(LowResolution((11, 11), rate=1.0, seed=0)(x, training=True))
    assert np.abs(np.diff(always, axis=2)).sum() < 0.8 * np.abs(np.diff(x, axis=2)).sum()  # fewer sharp edges
    np.testing.assert_allclose(
        always.sum(axis=(1, 2, 3)), x.sum(axis=(1, 2, 3)), rtol=0.05
    )  # area averaging keeps the ink
    np.testing.assert_array_equal(np.asarray(LowResolution((11, 17), rate=0.0, seed=0)(x, training=True)), x)
    some = np.asarray(LowResolution((11, 17), rate=0.5, seed=0)(strokes(64), training=True))
    changed = (np.abs(some - strokes(64)).max(axis=(1, 2, 3)) > 1e-6).mean()
    assert 0.25 < changed < 0.75
    for side in (8, 11, 14, 17):
        np.testing.assert_allclose(scan_matrix(28, side).sum(axis=1), 1.0, atol=1e-5)  # a flat image stays flat
    np.testing.assert_allclose(scan_matrix(28, 28), np.eye(28), atol=1e-6)


def test_tone_curve_keeps_black_and_the_order_of_tones():
    from lenet_cli.model.augmentation_layers import ToneCurve

    levels = np.linspace(0.0, 1.0, 28, dtype=np.float32)
    x = np.broadcast_to(levels[None, None, :, None], (32, 28, 28, 1)).copy()
    out = np.asarray(ToneCurve((0.4, 2.5), (0.6, 1.2), seed=0)(x, training=True))
    assert (out[:, :, 0] == 0).all()  # the background stays black
    assert (np.diff(out[:, 0, :, 0], axis=1) >= -1e-6).all()  # darker stays darker
    mid = out[:, 0, 14, 0]  # the level 14/27 ~ 0.52
    assert 0.6 * levels[14] ** 2.5 - 1e-5 <= mid.min() and mid.max() <= min(1.0, 1.2 * levels[14] ** 0.4) + 1e-5
    assert mid.max() - mid.min() > 0.2  # the curves differ per image
    with pytest.raises(ValueError, match="gamma"):
        ToneCurve((0.0, 2.0))


def test_writers_and_tones_policies():
    from lenet_cli.model.augmentation import policy_layers

    assert policy_layers("writers") == ("elastic", "thickness", "rotation", "lowres", "translation")
    assert "flip" not in policy_layers("writers")  # a mirrored digit is another digit, or none
    assert policy_layers("tones") == ("flip", "tones")
    assert policy_layers("shift-lowres") == ("lowres", "translation")  # the default's shifts, and scans


@pytest.mark.parametrize(
    ("policy", "dataset", "layers"),
    [
        (
            "writers",
            "mnist",
            ["ElasticDistortion", "StrokeThickness", "RandomRotation", "LowResolution", "RandomTranslation"],
        ),
        ("tones", "fashion", ["RandomFlip", "ToneCurve"]),
        ("shift-lowres", "mnist", ["LowResolution", "RandomTranslation"]),
    ],
)
@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_a_policy_trains_through_the_command_and_never_reaches_the_saved_model(
    policy, dataset, layers, synthetic_data_dir, tmp_path
):
    from lenet_cli.model.network import load_model_file

    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            dataset,
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--augment",
            policy,
            "--keep-checkpoint",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    model = load_model_file(run / "model.keras")
    assert [layer.name for layer in model.layers][1:] == MODEL_LAYERS
    with zipfile.ZipFile(run / "model.keras") as archive:
        assert b"augment" not in archive.read("config.json")  # no layer of it, not even by name
    config = json.loads((run / "config.json").read_text())
    assert config["augment"] == policy and [a["layer"] for a in config["augmentation"]] == layers
    with np.load(run / "checkpoint.npz") as archive:
        saved = {key for key in archive.files if key.startswith("augmentation/")}
    assert len(saved) == len(layers) and all(key.endswith("/seed_generator_state") for key in saved)


# --- on the real data: the distortions keep what the label depends on ---------


def _real_test(dataset: str, count: int = 2000):
    with gzip.open(REAL_DATA / dataset / "t10k-images-idx3-ubyte.gz") as handle:
        images = np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)[:count]
    with gzip.open(REAL_DATA / dataset / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)[:count]
    return images.astype(np.float32) / 255.0, labels


def _tiny_real_model(dataset: str, folder):
    """Two epochs on 3,500 real training images, no augmentation: a model that never saw a distortion."""
    if not (REAL_DATA / dataset / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real {dataset} files not found in {REAL_DATA} (set LENET_DATA_DIR)")
    from lenet_cli.model.network import load_model_file

    run = folder / dataset
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            dataset,
            "--data-dir",
            str(REAL_DATA),
            "--train-limit",
            "4000",
            "--validation-size",
            "500",
            "--epochs",
            "2",
            "--output",
            str(run),
            "--quiet",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 0, result.output
    return load_model_file(run / "model.keras")


@pytest.fixture(scope="module")
def real_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("real-tiny")
    return {}, folder


def _accuracy_drops(dataset, real_models, layer):
    """The model's accuracy lost on ``layer``'s output and on 2-px shifts (the default MNIST recipe's augmentation)."""
    from lenet_cli.model.augmentation import build_augmentation

    models, folder = real_models
    if dataset not in models:
        models[dataset] = _tiny_real_model(dataset, folder)
    model = models[dataset]
    images, labels = _real_test(dataset)

    def accuracy(x):
        return float((np.asarray(model.predict(x, batch_size=500, verbose=0)).argmax(1) == labels).mean())

    clean = accuracy(images)
    shifted = accuracy(np.asarray(build_augmentation("shift", seed=1)(images, training=True)))
    return clean, clean - accuracy(np.asarray(layer(images, training=True))), clean - shifted


@pytest.mark.realdata
@pytest.mark.slow
def test_moderately_distorted_test_digits_stay_recognisable(real_models):
    from lenet_cli.model.augmentation_layers import ElasticDistortion

    clean, drop, shift_drop = _accuracy_drops("mnist", real_models, ElasticDistortion(20.0, 4.0, seed=1))
    assert clean > 0.8
    assert drop <= shift_drop + 0.02, (clean, drop, shift_drop)  # no more lost than to a 2-pixel shift


@pytest.mark.realdata
@pytest.mark.slow
def test_re_toned_test_articles_stay_recognisable(real_models):
    from lenet_cli.model.augmentation_layers import ToneCurve

    clean, drop, shift_drop = _accuracy_drops("fashion", real_models, ToneCurve((0.5, 2.0), (0.8, 1.2), seed=1))
    assert clean > 0.6
    assert drop <= shift_drop + 0.02, (clean, drop, shift_drop)
