"""--precision: auto picks bfloat16 only where it is native; a bfloat16 run trains, ships float32 and loads safely."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from lenet_cli.model.precision import (
    cpu_flags,
    layer_dtype,
    native_bfloat16,
    resolve_precision,
)

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


def test_auto_is_bfloat16_only_with_native_support(tmp_path):
    assert resolve_precision("float32", native=True) == "float32"
    assert resolve_precision("bfloat16", native=False) == "bfloat16"
    assert resolve_precision("auto", native=False) == "float32"
    assert resolve_precision("auto", native=True) == "bfloat16"
    assert native_bfloat16(flags={"avx2", "avx512f", "avx512_vnni"}, gpus=0) is False  # AVX-512 alone emulates bf16
    assert native_bfloat16(flags={"avx512f", "avx512_bf16"}, gpus=0) is True
    assert native_bfloat16(flags={"amx_bf16", "amx_tile"}, gpus=0) is True
    assert native_bfloat16(flags=set(), gpus=1) is True
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "avx512_bf16"}
    assert cpu_flags(tmp_path / "missing") == set()
    with pytest.raises(ValueError):
        resolve_precision("float16")


def test_bfloat16_network_keeps_lrn_logits_and_softmax_in_float32():
    from lenet_cli.model.network import build_lenet

    model = build_lenet(dense_units=8, seed=0, precision="bfloat16")
    for layer in model.layers[1:]:
        assert layer.dtype_policy.name == layer_dtype("bfloat16", layer.name), layer.name
    assert model.get_layer("conv_2").compute_dtype == "bfloat16" and model.get_layer("conv_2").kernel.dtype == "float32"
    assert model.get_layer("lrn_1").compute_dtype == "float32"
    logits = model.get_layer("logits_layer").output
    assert str(logits.dtype) == "float32"


@pytest.mark.slow  # trains a run: the fast tier leaves it to the full suite
def test_a_bfloat16_run_trains_records_its_precision_and_ships_a_float32_model(synthetic_data_dir, tmp_path):
    run = tmp_path / "run"
    result = CliRunner().invoke(
        cli, ["train", "--data-dir", str(synthetic_data_dir), "--output", str(run), "--precision", "bfloat16", *TINY]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["precision"] == "bfloat16"
    from lenet_cli.model.network import load_model_file

    model = load_model_file(run / "model.keras")  # safe_mode=True
    assert {layer.dtype_policy.name for layer in model.layers[1:]} == {"float32"}
    history = json.loads((run / "history.json").read_text())
    assert np.isfinite(history[-1]["cross_entropy"]) and history[-1]["val_accuracy"] > 0.2
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
    )  # validation scored the float32 copy
    assert report["cross_entropy"] == pytest.approx(
        calibrated["val_cross_entropy_after"], abs=1e-5
    )  # which then shipped, calibrated
