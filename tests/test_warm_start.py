"""``--init-from`` and ``--freeze``: frozen layers keep their weights bit for bit and pay no penalty."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli


@pytest.fixture(scope="module")
def warm_run(trained_run, synthetic_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("warm") / "run"
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
            "--validation-size",
            "100",
            "--batch-size",
            "50",
            "--dense-units",
            "64",
            "--l1",
            "1e-3",
            "--weight-decay",
            "1e-2",
            "--no-tensorboard",
            "--init-from",
            str(trained_run),
            "--freeze",
            "conv_1",
            "--freeze",
            "conv_2,conv_1",
            "--output",
            str(out),
            "--quiet",
        ],
        env={"LENET_VERIFY_CHECKSUMS": "0"},
    )
    assert result.exit_code == 0, result.output
    return out


def _weights(run_dir, layer):
    from lenet_cli.model.network import load_model_file

    return load_model_file(run_dir / "model.keras").get_layer(layer).get_weights()


def test_frozen_layers_equal_the_source_bit_for_bit(warm_run, trained_run):
    for layer in ("conv_1", "conv_2"):
        for ours, theirs in zip(_weights(warm_run, layer), _weights(trained_run, layer)):
            assert ours.tobytes() == theirs.tobytes(), layer
    assert not np.array_equal(_weights(warm_run, "dot_1")[0], _weights(trained_run, "dot_1")[0])


def test_config_records_freeze_and_source(warm_run, trained_run):
    config = json.loads((warm_run / "config.json").read_text())
    assert config["freeze"] == ["conv_1", "conv_2"]
    assert config["init_from"] == str((trained_run / "model.keras").resolve())


def test_penalty_excludes_frozen_layers(warm_run):
    history = json.loads((warm_run / "history.json").read_text())[-1]
    kernels = {name: _weights(warm_run, name)[0].astype(np.float64) for name in ("dot_1", "dot_2", "logits_layer")}
    kernels["logits_layer"] *= (
        json.loads((warm_run / "metrics.json").read_text())["calibration"]["temperature"] or 1.0
    )  # as trained (none shipped: 1)
    expected_l1 = sum(1e-3 * np.abs(k).sum() for k in kernels.values())
    expected_l2 = sum(1e-2 * np.square(k).sum() / 2 for k in kernels.values())
    assert history["val_l1"] == pytest.approx(expected_l1, rel=1e-5)
    assert history["val_l2"] == pytest.approx(expected_l2, rel=1e-5)
    assert "val_l1_conv_1" not in history and "l1_conv_2" not in history


def test_shape_mismatch_names_the_first_layer(trained_run, synthetic_data_dir, tmp_path):
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(synthetic_data_dir),
            "--epochs",
            "1",
            "--validation-size",
            "100",
            "--dense-units",
            "32",
            "--init-from",
            str(trained_run),
            "--output",
            str(tmp_path / "r"),
            "--quiet",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == 1
    assert "layer dot_1 has weight shapes" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_unknown_layer_is_a_usage_error():
    result = CliRunner().invoke(cli, ["train", "--freeze", "conv_1,pool_1"])
    assert result.exit_code == 2
    assert "unknown layer 'pool_1'; choose from: conv_1, conv_2, dot_1, dot_2, logits_layer" in result.stderr


def test_a_model_of_other_classes_is_named_as_such(trained_run):
    from lenet_cli.core.errors import LenetError
    from lenet_cli.model.network import build_lenet
    from lenet_cli.model.train_step import load_initial_weights

    with pytest.raises(
        LenetError, match="trained on 10 classes and this dataset has 3: init_from needs a model of the same classes"
    ):
        load_initial_weights(build_lenet(dense_units=64, num_classes=3), trained_run)
