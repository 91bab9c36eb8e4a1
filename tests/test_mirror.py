"""Test-time flip averaging: a recipe's answers averaged with the mirror image's, wherever lenet loads the model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.core.config import resolve_config
from lenet_cli.core.mirror import MirrorAveraged, answering, mirror_images
from lenet_cli.runtimes.loading import SIDECAR_SUFFIX, open_model
from lenet_cli.store.runs import FAST_MODEL_FILE, MODEL_FILE, ModelRef


def _left_weight(images: np.ndarray) -> np.ndarray:
    """A toy two-class model: the share of ink in the left half of the picture, and its complement."""
    x = np.asarray(images, dtype=np.float64).reshape(len(images), 28, 28)
    left = x[:, :, :14].sum(axis=(1, 2)) / np.maximum(x.sum(axis=(1, 2)), 1e-9)
    return np.stack([left, 1 - left], axis=1).astype(np.float32)


def test_mirror_images_flips_the_width_of_either_shape():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    assert np.array_equal(mirror_images(images)[:, :, 0], images[:, :, 27])
    assert np.array_equal(mirror_images(images[..., None])[..., 0], mirror_images(images))
    with pytest.raises(ValueError):
        mirror_images(images[0])


def test_the_average_of_a_lopsided_picture_is_even_and_of_a_symmetric_one_unchanged():
    lopsided = np.zeros((1, 28, 28), np.uint8)
    lopsided[0, 10:20, 2:8] = 255
    symmetric = np.zeros((1, 28, 28), np.uint8)
    symmetric[0, 10:20, 10:18] = 255
    averaged = MirrorAveraged(_left_weight)
    assert _left_weight(lopsided)[0, 0] == pytest.approx(1.0)
    assert averaged(lopsided)[0] == pytest.approx([0.5, 0.5])
    assert averaged(symmetric) == pytest.approx(_left_weight(symmetric))
    assert np.exp(averaged.logits(lopsided)) == pytest.approx(averaged(lopsided))
    assert averaged(np.zeros((0, 28, 28), np.uint8)).shape == (0, 2)
    assert answering(_left_weight, False) is _left_weight


def test_the_recipes_flip_clothes_and_never_digits():
    assert resolve_config("fashion").test_time_flip is True
    assert resolve_config("mnist").test_time_flip is False
    assert resolve_config("fashion", "seed").test_time_flip is False  # the tutorial's literal values
    assert resolve_config("/my/pictures").test_time_flip is False  # a flip may change the class of one's own data
    assert resolve_config("fashion", test_time_flip=False).test_time_flip is False


def _with_recipe_flag(trained_run, tmp_path, flag: bool):
    """A copy of the tiny run whose recipe (config.json and the fast model's sidecar) says ``test_time_flip``."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    for path in (run / "config.json", run / (FAST_MODEL_FILE + SIDECAR_SUFFIX)):
        meta = json.loads(path.read_text())
        (meta["run_config"] if "run_config" in meta else meta)["test_time_flip"] = flag
        path.write_text(json.dumps(meta))
    return run


@pytest.mark.parametrize("file", [MODEL_FILE, FAST_MODEL_FILE])
def test_lenet_answers_as_the_recipe_says_in_every_format(trained_run, tmp_path, synthetic_data_dir, file):
    from lenet_cli.data.loader import load_split

    split, _ = load_split("mnist", "test", synthetic_data_dir)
    images = split.images[:64]
    one_view = open_model(ModelRef(_with_recipe_flag(trained_run, tmp_path / "off", False) / file, None))
    flipping = open_model(ModelRef(_with_recipe_flag(trained_run, tmp_path / "on", True) / file, None))
    expected = (one_view.predict(images) + one_view.predict(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(flipping.predict(images), expected, atol=1e-6)
    np.testing.assert_allclose(np.exp(flipping.logits(images)), expected, atol=1e-5)
    assert not np.allclose(one_view.predict(images), expected, atol=1e-4)  # the synthetic digits are not symmetric


def test_evaluate_scores_the_answers_users_get(trained_run, tmp_path, synthetic_data_dir):
    run = _with_recipe_flag(trained_run, tmp_path, True)
    result = CliRunner().invoke(
        cli, ["evaluate", "--model", str(run), "--data-dir", str(synthetic_data_dir), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    from lenet_cli.data.loader import load_split

    split, _ = load_split("mnist", "test", synthetic_data_dir)
    model = open_model(ModelRef(run / MODEL_FILE, run))
    assert json.loads(result.stdout)["test_time_flip"] is True
    table = CliRunner().invoke(
        cli, ["evaluate", "--model", str(run), "--data-dir", str(synthetic_data_dir), "--format", "table"]
    )
    assert "the picture and its mirror image, averaged" in table.stdout
    assert json.loads(result.stdout)["accuracy"] == pytest.approx(
        (model.predict(split.images).argmax(1) == split.labels).mean()
    )


def test_a_flipping_recipe_trains_scores_and_ships_a_checked_fast_model(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--data-dir", synthetic_data_dir, "--output", run, "--runs-dir", tmp_path, "--quiet"]
    argv += ["--epochs", "1", "--validation-size", "100", "--batch-size", "50", "--dense-units", "16"]
    result = CliRunner().invoke(cli, [str(a) for a in [*argv, "--test-time-flip", "--no-tensorboard"]])
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "metrics.json").read_text())
    assert json.loads((run / "config.json").read_text())["test_time_flip"] is True
    assert metrics["fast_model"]["ok"], metrics["fast_model"]  # checked as lenet answers with either: both averaged
    import jsonschema

    schema = json.loads((Path(__file__).parents[1] / "docs/reference/schemas/metrics.schema.json").read_text())
    jsonschema.validate(metrics, schema, cls=jsonschema.Draft202012Validator)  # the run folder's documented shape
    answered = metrics["calibration"]["as_answered"]
    assert answered["views"] == "the picture and its mirror image, averaged"
    assert metrics["val_cross_entropy"] == answered["val_cross_entropy"]
    from lenet_cli.data.loader import load_split

    test, _ = load_split("mnist", "test", synthetic_data_dir)
    model = open_model(ModelRef(run / MODEL_FILE, run))
    assert metrics["test_accuracy"] == pytest.approx((model.predict(test.images).argmax(1) == test.labels).mean())


def test_an_export_of_a_flipping_recipe_verifies_and_answers_averaged_anywhere(
    trained_run, tmp_path, synthetic_data_dir
):
    run = _with_recipe_flag(trained_run, tmp_path / "run", True)
    target = tmp_path / "elsewhere" / "model.tflite"  # no config.json beside it: only the export's own metadata
    argv = ["export", str(run), "--to", "litert", "--output", str(target), "--data-dir", str(synthetic_data_dir)]
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code == 0, result.output
    assert json.loads(Path(str(target) + SIDECAR_SUFFIX).read_text())["run_config"]["test_time_flip"] is True
    from lenet_cli.data.loader import load_split

    images = load_split("mnist", "test", synthetic_data_dir)[0].images[:64]
    np.testing.assert_allclose(
        open_model(ModelRef(target, None)).predict(images),
        open_model(ModelRef(run / MODEL_FILE, run)).predict(images),
        atol=1e-5,
    )
