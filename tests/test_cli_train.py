"""``lenet train`` end to end on synthetic data: a complete, reloadable run directory."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.store.runs import latest_run


def test_run_directory_is_complete(trained_run):
    for name in ("model.keras", "config.json", "history.json", "metrics.json", "confusion_matrix.json"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "logs" / "train").is_dir() and (trained_run / "logs" / "validation").is_dir()
    config = json.loads((trained_run / "config.json").read_text())
    assert config["dataset"] == "mnist" and config["epochs"] == 2 and config["dense_units"] == 64
    history = json.loads((trained_run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    for row in history:
        assert row["objective"] == row["cross_entropy"] + row["l1"] + row["l2"]
        assert row["val_objective"] == row["val_cross_entropy"] + row["val_l1"] + row["val_l2"]
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["test_count"] == 200
    assert metrics["test_accuracy"] > 0.5  # synthetic classes are easy
    assert not [p for p in trained_run.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_saved_model_reloads_safely_and_reproduces_test_accuracy(trained_run, synthetic_data_dir):
    from lenet_cli.data.idx import load_idx_images, load_idx_labels
    from lenet_cli.model.network import load_model_file

    model = load_model_file(trained_run / "model.keras")
    images = load_idx_images(synthetic_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    labels = load_idx_labels(synthetic_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz")
    probs = np.asarray(model.predict(images[..., None].astype("float32") / 255.0, verbose=0))
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert float((probs.argmax(1) == labels).mean()) == metrics["test_accuracy"]
    again = load_model_file(trained_run / "model.keras")
    np.testing.assert_array_equal(
        np.asarray(again(images[:8, ..., None] / 255.0)), np.asarray(model(images[:8, ..., None] / 255.0))
    )


def test_train_prints_result_on_stdout_and_marks_latest(tmp_path, synthetic_data_dir):
    runs = tmp_path / "myruns"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            "fashion",
            "--data-dir",
            str(synthetic_data_dir),
            "--epochs",
            "1",
            "--train-limit",
            "100",
            "--validation-size",
            "50",
            "--dense-units",
            "16",
            "--no-tensorboard",
            "--runs-dir",
            str(runs),
            "--quiet",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["dataset"] == "fashion" and 0.0 <= out["test_accuracy"] <= 1.0
    assert latest_run(runs).name == out["run_dir"].rsplit("/", 1)[-1]
    assert not (latest_run(runs) / "logs").exists()


def test_seed_preset_uses_the_tutorial_values():
    from lenet_cli.core.config import resolve_config

    cfg = resolve_config("mnist", "seed")
    assert (cfg.learning_rate, cfg.l1, cfg.weight_decay, cfg.schedule, cfg.optimizer) == (
        0.01,
        1e-4,
        1e-4,
        "constant",
        "adam",
    )
    assert resolve_config("mnist", "seed", learning_rate=0.5).learning_rate == 0.5
    for dataset in (
        "mnist",
        "fashion",
    ):  # the datasets' own defaults (Fashion: dropout 0.25 with flips) give way to the tutorial's
        cfg = resolve_config(dataset, "seed")
        assert (cfg.dropout, cfg.augment, cfg.ema_momentum, cfg.calibrate) == (0.5, "none", 0.0, False), dataset


def test_output_directory_must_be_empty(tmp_path, synthetic_data_dir):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["train", "--data-dir", str(synthetic_data_dir), "--output", str(out), "--quiet"])
    assert result.exit_code == 1
    assert "already exists and is not empty" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_data_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["train", "--data-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "mnist files missing" in lines[0]
    assert "Traceback" not in result.output


def _strict(text: str):
    """``json.loads`` that refuses ``NaN`` and ``Infinity``, as ``jq`` and every strict reader do."""

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_without_a_validation_split_every_json_file_is_strict(tmp_path, synthetic_data_dir):
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
            "16",
            "--quiet",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 0, result.output
    (row,) = _strict((run / "history.json").read_text())
    assert row["val_accuracy"] is None and row["val_cross_entropy"] is None and row["val_objective"] is None
    assert row["accuracy"] is not None
    for name in ("metrics.json", "config.json"):
        _strict((run / name).read_text())


def test_json_files_are_written_strict():
    from lenet_cli.store.atomic import strict_json

    assert strict_json(
        {"a": [1.0, float("nan"), (float("inf"), -float("inf"))], "b": {"c": float("nan")}, "d": "NaN", "e": 3}
    ) == {"a": [1.0, None, [None, None]], "b": {"c": None}, "d": "NaN", "e": 3}
