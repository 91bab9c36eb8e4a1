"""The recipe's levers: augmentation policies, weight averaging, label smoothing, and calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core.config import AUGMENTATIONS

TINY = [
    "--epochs",
    "2",
    "--validation-size",
    "100",
    "--batch-size",
    "50",
    "--dense-units",
    "32",
    "--quiet",
    "--no-tensorboard",
]


def _asymmetric_batch(n=16):
    """Digits-like images whose left half is bright: a flip or a shift is visible."""
    x = np.zeros((n, 28, 28, 1), dtype=np.float32)
    x[:, 8:20, 4:14, 0] = np.linspace(0.2, 1.0, n)[:, None, None]
    return x


@pytest.mark.parametrize("policy", AUGMENTATIONS)
def test_each_policy_keeps_shape_and_range_is_seeded_and_trains_only(policy):
    from lenet_cli.model.augmentation import build_augmentation, policy_layers

    x = _asymmetric_batch()
    first = build_augmentation(policy, seed=3)
    if not policy_layers(policy):
        assert first is None
        return
    out = np.asarray(first(x, training=True))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= -1e-6 and out.max() <= 1.0 + 1e-6
    assert not np.array_equal(out, x)  # it changed something
    again = np.asarray(build_augmentation(policy, seed=3)(x, training=True))
    np.testing.assert_array_equal(out, again)  # the same seed draws the same augmentations
    other = np.asarray(build_augmentation(policy, seed=4)(x, training=True))
    assert not np.array_equal(out, other)
    np.testing.assert_array_equal(np.asarray(first(x, training=False)), x)  # inference sees the image as it is


def test_flips_belong_to_clothing_never_to_digits():
    from lenet_cli.model.augmentation import policy_layers

    assert (
        "flip" in policy_layers("clothing")
        and "flip" not in policy_layers("digits")
        and "flip" not in policy_layers("shift")
    )


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_the_shipped_model_carries_no_augmentation_and_the_config_says_what_ran(synthetic_data_dir, tmp_path):
    from lenet_cli.model.network import load_model_file

    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--augment",
            "digits",
            "--keep-checkpoint",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    model = load_model_file(run / "model.keras")
    assert [layer.name for layer in model.layers][1:] == [
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
    assert not any(type(layer).__name__.startswith("Random") for layer in model.layers)
    config = json.loads((run / "config.json").read_text())
    assert config["augment"] == "digits"
    assert [a["layer"] for a in config["augmentation"]] == ["RandomRotation", "RandomZoom", "RandomTranslation"]
    assert config["augmentation"][2]["config"]["height_factor"] == pytest.approx(2 / 28)
    with np.load(run / "checkpoint.npz") as archive:  # the random layers' state is checkpointed: resumes draw the same
        assert {
            f"augmentation/augment_{i}_{k}/seed_generator_state"
            for i, k in enumerate(("rotation", "zoom", "translation"))
        } <= set(archive.files)


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_ema_ships_the_averaged_weights_and_validation_scores_them(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--ema",
            "0.9",
            "--keep-checkpoint",
            *TINY,
        ],
    )
    assert result.exit_code == 0, result.output
    from lenet_cli.model.network import load_model_file

    shipped = load_model_file(run / "model.keras").get_layer("dot_1").kernel.numpy()
    with np.load(run / "checkpoint.npz") as archive:
        average = archive["optimizer/dot_1_kernel_average"]
        last = archive["model/dot_1/kernel"]
    np.testing.assert_allclose(shipped, average, rtol=0, atol=0)
    assert not np.allclose(shipped, last)
    history = json.loads((run / "history.json").read_text())
    report = json.loads(
        CliRunner()
        .invoke(
            cli,
            ["evaluate", str(run), "--split", "validation", "--format", "json", "--data-dir", str(synthetic_data_dir)],
        )
        .stdout
    )
    calibrated = json.loads((run / "metrics.json").read_text())["calibration"]
    assert calibrated["val_cross_entropy_before"] == pytest.approx(
        history[-1]["val_cross_entropy"], abs=1e-5
    )  # what validation scored
    assert report["cross_entropy"] == pytest.approx(
        calibrated["val_cross_entropy_after"], abs=1e-5
    )  # the same weights, then calibrated


@pytest.mark.parametrize("optimizer", ["adam", "rmsprop", "sgd"])
def test_ema_momentum_warms_up_like_tensorflows_num_updates(optimizer):
    """The average follows the weights early (momentum min(m, (1+t)/(10+t))) instead of keeping the initialisation."""
    import keras

    from lenet_cli.core.config import resolve_config
    from lenet_cli.model.train_step import make_optimizer

    cfg = resolve_config("mnist", optimizer=optimizer, ema_momentum=0.999, schedule="constant", learning_rate=0.1)
    opt = make_optimizer(cfg, 10)
    variable = keras.Variable(np.zeros(3, np.float32))
    opt.build([variable])
    average = np.zeros(3)
    for t in range(5):
        opt.apply_gradients([(keras.ops.convert_to_tensor(np.ones(3, np.float32)), variable)])
        momentum = min(0.999, (1 + t) / (10 + t))
        average = momentum * average + (1 - momentum) * variable.numpy()
    np.testing.assert_allclose(opt._model_variables_moving_average[0].numpy(), average, rtol=1e-5)
    assert abs(average[0]) > 0.3 * abs(variable.numpy()[0])  # Keras's fixed 0.999 would leave it within 1 % of zero


def test_label_smoothing_is_the_keras_smoothed_cross_entropy():
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.objective import Objective

    model = build_lenet(dense_units=8, seed=0)
    logits = np.array([[10.0] + [0.0] * 9, [0.0, 4.0] + [0.0] * 8], dtype=np.float32)
    labels = np.array([0, 1], dtype=np.int32)
    smooth = 0.1
    targets = np.full((2, 10), smooth / 10)
    targets[np.arange(2), labels] += 1 - smooth
    log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = float(-(targets * log_p).sum())
    _, smoothed = Objective(model, 0.0, 0.0, label_smoothing=smooth).data_loss(labels, logits, 2)
    _, plain = Objective(model, 0.0, 0.0).data_loss(labels, logits, 2)
    assert float(smoothed) == pytest.approx(expected, rel=1e-5)
    assert float(smoothed) > float(plain)


def test_expected_calibration_error_by_hand():
    from lenet_cli.core.metrics import calibration

    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.6, 0.4], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 1])  # the 0.95 bin is right half the time; the 0.6 bin always
    result = calibration(labels, probs, bins=10)
    assert result["ece"] == pytest.approx((2 * abs(0.5 - 0.95) + 2 * abs(1.0 - 0.6)) / 4)
    filled = [b for b in result["bins"] if b["count"]]
    assert [(b["count"], b["accuracy"]) for b in filled] == [(2, 1.0), (2, 0.5)]
    perfect = calibration(np.array([0, 0]), np.array([[1.0, 0.0], [1.0, 0.0]]))
    assert perfect["ece"] == 0.0 and perfect["bins"][-1]["count"] == 2


def test_evaluate_reports_calibration_and_draws_the_diagram(trained_run, synthetic_data_dir, tmp_path):
    from PIL import Image

    from lenet_cli.viz.reliability import RELIABILITY_PNG_SIZE

    png = tmp_path / "reliability.png"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            str(trained_run),
            "--data-dir",
            str(synthetic_data_dir),
            "--format",
            "json",
            "--reliability-png",
            str(png),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert 0.0 <= report["expected_calibration_error"] <= 1.0
    assert (
        sum(b["count"] for b in report["calibration_bins"]) == report["count"] and len(report["calibration_bins"]) == 15
    )
    assert Image.open(png).size == RELIABILITY_PNG_SIZE
