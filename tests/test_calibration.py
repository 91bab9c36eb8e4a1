"""Temperature scaling: fitted on validation, folded exactly into logits_layer, predictions unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core.config import TEMPERATURE_BOUNDS
from lenet_cli.core.metrics import softmax
from lenet_cli.model.calibration import calibration_summary, choose_temperature, fit_temperature, fold_temperature

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


def _sampled(temperature: float, n: int = 20000, seed: int = 0):
    """Logits, and labels drawn from softmax(logits / temperature): the temperature that explains them is known."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 10)) * 4
    cumulative = softmax(logits / temperature).cumsum(axis=1)
    labels = np.minimum((cumulative < rng.random((n, 1))).sum(axis=1), 9)
    return logits, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature_the_labels_were_drawn_with(temperature):
    logits, labels = _sampled(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_the_fitted_temperature_is_the_validation_cross_entropys_minimum():
    logits, labels = _sampled(1.7, n=3000, seed=1)
    fitted = fit_temperature(logits, labels)
    summary = calibration_summary(logits, labels, fitted)
    for nearby in (fitted * 0.97, fitted * 1.03):
        assert (
            summary["val_cross_entropy_after"] < calibration_summary(logits, labels, nearby)["val_cross_entropy_after"]
        )
    assert summary["val_cross_entropy_after"] < summary["val_cross_entropy_before"]
    assert summary["val_ece_after"] < summary["val_ece_before"]


def test_a_split_without_mistakes_stops_at_the_coldest_bound_and_a_random_one_at_the_hottest():
    logits = np.eye(10)[np.arange(50) % 10] * 3
    assert fit_temperature(logits, np.arange(50) % 10) == TEMPERATURE_BOUNDS[0]
    assert fit_temperature(logits, (np.arange(50) + 1) % 10) == TEMPERATURE_BOUNDS[1]
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 10)), np.zeros(0, dtype=int))


def _confident_mistakes():
    """Answers right 97 % of the time at 97 % confidence (ECE ~0), whose 3 % mistakes put the true class far down.

    Those few mistakes dominate the cross-entropy, so the temperature that
    minimises it (about 1.2) softens every answer, and the many right ones
    become under-confident: the cross-entropy falls, the ECE rises.
    """
    logits = np.zeros((1000, 10))
    logits[:, 0] = np.log(0.97 / 0.03 * 9)  # softmax's top probability 0.97
    labels = np.zeros(1000, dtype=int)
    labels[:30] = 1
    logits[:30, 1] = -8.0
    return logits, labels


def test_a_temperature_that_lowers_the_cross_entropy_but_raises_the_ece_is_not_shipped():
    logits, labels = _confident_mistakes()
    fitted = fit_temperature(logits, labels)
    summary = calibration_summary(logits, labels, fitted)
    assert (
        summary["val_cross_entropy_after"] < summary["val_cross_entropy_before"]
        and summary["val_ece_after"] > summary["val_ece_before"]
    )
    block = choose_temperature(logits, labels)
    assert (
        block["kept"] is False and block["temperature"] is None and block["fitted_temperature"] == pytest.approx(fitted)
    )
    assert (
        block["val_ece_after"] == block["val_ece_before"]
        and block["val_cross_entropy_after"] == block["val_cross_entropy_before"]
    )
    assert block["fitted_val_ece"] == pytest.approx(summary["val_ece_after"])
    assert block["fitted_val_cross_entropy"] == pytest.approx(summary["val_cross_entropy_after"])
    assert (
        "ECE 0.01% -> 9.84%" in block["reason"]
        and "cross-entropy" not in block["reason"]
        and "ships without one" in block["reason"]
    )
    assert block["skipped"] == block["reason"]  # the train table's one line says so
    assert {
        "temperature",
        "fitted_on",
        "images",
        "val_cross_entropy_before",
        "val_cross_entropy_after",
        "val_ece_before",
        "val_ece_after",
    } <= set(block)


def test_a_temperature_that_improves_both_is_kept():
    logits, labels = _sampled(1.7, n=3000, seed=1)
    block = choose_temperature(logits, labels)
    assert block["kept"] is True and block["temperature"] == pytest.approx(fit_temperature(logits, labels))
    assert block == {
        **calibration_summary(logits, labels, block["temperature"]),
        "kept": True,
        "reason": block["reason"],
    }
    assert "fitted_temperature" not in block and "skipped" not in block


def test_training_never_folds_a_temperature_that_is_not_kept():
    from types import SimpleNamespace

    from lenet_cli.data.idx import Split
    from lenet_cli.engine.train_finish import calibrate

    logits, labels = _confident_mistakes()

    class Untouchable:
        def get_layer(self, name):
            raise AssertionError("a temperature that is not kept must not be folded into the model")

    one_view = SimpleNamespace(logits=lambda images: logits)
    session = SimpleNamespace(
        cfg=SimpleNamespace(calibrate=True, freeze=()), predictor=one_view, one_view=one_view, shipped=Untouchable()
    )
    block = calibrate(session, Split(np.zeros((1000, 28, 28), np.uint8), labels.astype(np.uint8)))
    assert block["kept"] is False and block["temperature"] is None


def test_folding_divides_the_models_logits_and_keeps_every_answer():
    import keras

    from lenet_cli.model.network import build_lenet

    model = build_lenet(dense_units=16, seed=0)
    view = keras.Model(model.inputs, [model.get_layer("logits_layer").output, model.output])
    images = np.random.default_rng(0).random((32, 28, 28, 1)).astype(np.float32)
    before = np.asarray(view(images, training=False)[0])
    fold_temperature(model, 2.0)
    after, probs = (np.asarray(x) for x in view(images, training=False))
    np.testing.assert_allclose(after, before / 2.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, softmax(before / 2.0), rtol=1e-4, atol=1e-6)
    assert (after.argmax(axis=1) == before.argmax(axis=1)).all()


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_training_ships_the_calibrated_model_and_says_so(synthetic_data_dir, tmp_path):
    runs = {}
    for name, extra in (
        ("on", ["--deterministic"]),
        ("off", ["--deterministic", "--no-calibrate"]),
    ):  # the same training twice
        runs[name] = tmp_path / name
        result = CliRunner().invoke(
            cli, ["train", "--data-dir", str(synthetic_data_dir), "--output", str(runs[name]), *TINY, *extra]
        )
        assert result.exit_code == 0, result.output
    metrics = json.loads((runs["on"] / "metrics.json").read_text())
    block = metrics["calibration"]
    assert block["kept"] is True, block  # this run's fitted temperature improves both figures
    assert TEMPERATURE_BOUNDS[0] <= block["temperature"] <= TEMPERATURE_BOUNDS[1] and block["fitted_on"] == "validation"
    assert block["images"] == 100 and block["val_cross_entropy_after"] <= block["val_cross_entropy_before"]
    assert block["val_ece_after"] <= block["val_ece_before"]
    assert json.loads((runs["off"] / "metrics.json").read_text())["calibration"] is None
    assert json.loads((runs["on"] / "config.json").read_text())["calibrate"] is True
    assert json.loads((runs["off"] / "config.json").read_text())["calibrate"] is False

    def validation(run):
        report = CliRunner().invoke(
            cli,
            ["evaluate", str(run), "--split", "validation", "--format", "json", "--data-dir", str(synthetic_data_dir)],
        )
        assert report.exit_code == 0, report.output
        return json.loads(report.stdout)

    calibrated, plain = validation(runs["on"]), validation(runs["off"])
    assert calibrated["accuracy"] == plain["accuracy"]  # dividing the logits changes no answer
    assert calibrated["cross_entropy"] == pytest.approx(block["val_cross_entropy_after"], abs=1e-5)
    assert plain["cross_entropy"] == pytest.approx(block["val_cross_entropy_before"], abs=1e-5)
    assert calibrated["expected_calibration_error"] == pytest.approx(block["val_ece_after"], abs=1e-4)


def test_the_seed_preset_keeps_the_tutorials_uncalibrated_network():
    from lenet_cli.core.config import resolve_config

    assert resolve_config("mnist", "seed").calibrate is False
    assert resolve_config("fashion").calibrate is True and resolve_config("fashion", calibrate=False).calibrate is False


def test_config_json_refuses_a_calibrate_that_is_not_a_boolean():
    from lenet_cli.core.config import TrainConfig

    with pytest.raises(ValueError, match="calibrate"):
        TrainConfig.from_json_dict({"calibrate": 1})
    assert TrainConfig.from_json_dict({"calibrate": False}).calibrate is False


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_without_a_validation_split_the_run_says_calibration_was_skipped(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--epochs",
            "1",
            "--validation-size",
            "0",
            "--batch-size",
            "50",
            "--dense-units",
            "32",
            "--no-tensorboard",
            "--quiet",
            "--format",
            "table",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = (run / "metrics.json").read_text()
    assert "NaN" not in metrics and json.loads(metrics)["val_accuracy"] is None  # strict JSON: jq reads it
    assert json.loads(metrics)["calibration"] == {
        "temperature": None,
        "skipped": "no validation split to fit it on",
        "kept": False,
        "reason": "no validation split to fit it on",
    }
    assert "no validation split (--validation-size 0)" in result.stdout
    assert "calibration" in result.stdout and "skipped: no validation split" in result.stdout


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_a_validation_split_too_small_to_say_anything_leaves_the_model_uncalibrated(synthetic_data_dir, tmp_path):
    from lenet_cli.core.config import CALIBRATION_MIN_IMAGES

    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--output",
            str(run),
            "--epochs",
            "1",
            "--validation-size",
            str(CALIBRATION_MIN_IMAGES - 1),
            "--batch-size",
            "50",
            "--dense-units",
            "32",
            "--no-tensorboard",
            "--quiet",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    why = f"the validation split has {CALIBRATION_MIN_IMAGES - 1} images; calibration needs at least 100"
    assert json.loads(result.stdout)["calibration"] == {
        "temperature": None,
        "skipped": why,
        "kept": False,
        "reason": why,
    }
