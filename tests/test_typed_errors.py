"""Expected failures raise the fitting LenetError subclass, in field names: an API caller catches ``DataError`` or
``RunError`` and reads ``data_dir``, never ``--data-dir``; the command line prints a ``BadValue`` under its option."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from lenet_cli import api
from lenet_cli.cli import cli
from lenet_cli.core.errors import EXIT_ERROR, EXIT_USAGE, BadValue, DataError, ModelError, RunError
from lenet_cli.data.preprocess import PreprocessOptions
from tests.helpers.idx_factory import write_dataset


def _no_flag(exc: Exception) -> None:
    assert "--" not in str(exc), f"a message below the command line names a flag: {exc}"


def test_a_missing_data_folder_is_a_data_error_in_field_names(tmp_path):
    with pytest.raises(DataError) as caught:
        api.train(data_dir=tmp_path / "nowhere", runs_dir=tmp_path / "runs", epochs=1)
    assert "data_dir" in str(caught.value)
    _no_flag(caught.value)


def test_an_unknown_dataset_is_a_bad_value_on_dataset(tmp_path):
    with pytest.raises(BadValue) as caught:
        api.train(dataset=str(tmp_path / "no-such-data"), runs_dir=tmp_path / "runs", epochs=1)
    assert caught.value.field == "dataset"
    _no_flag(caught.value)
    result = CliRunner().invoke(cli, ["train", "--dataset", "cifar", "--runs-dir", str(tmp_path / "runs"), "--quiet"])
    assert result.exit_code == EXIT_USAGE and "Invalid value for '--dataset'" in result.stderr


def test_a_validation_size_the_data_cannot_hold_is_told_under_its_option(tmp_path):
    write_dataset(tmp_path / "data" / "mnist", n_train=50, n_test=10)
    with pytest.raises(BadValue) as caught:
        api.train(data_dir=tmp_path / "data", validation_size=50, runs_dir=tmp_path / "runs", epochs=1)
    assert caught.value.field == "validation_size"
    _no_flag(caught.value)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--data-dir",
            str(tmp_path / "data"),
            "--validation-size",
            "50",
            "--runs-dir",
            str(tmp_path / "runs"),
            "--quiet",
            "--no-tensorboard",
        ],
    )
    assert result.exit_code == EXIT_USAGE, result.output
    assert "Invalid value for '--validation-size': must be between 0 and 49" in result.stderr


def test_a_damaged_run_is_a_run_error(tmp_path):
    run = tmp_path / "half"
    run.mkdir()
    (run / "config.json").write_text("{")  # a run that never finished, its config cut short
    with pytest.raises(RunError, match="was interrupted") as caught:
        api.evaluate(run)
    assert f"lenet train --resume {run}" in str(caught.value)  # a whole command a person can copy, not a flag alone
    result = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == EXIT_ERROR and result.stderr.startswith("Error: ")


def test_latest_naming_a_missing_run_is_a_run_error(tmp_path):
    (tmp_path / "LATEST").write_text("mnist-20260101-000000\n")
    with pytest.raises(RunError, match="holds no model.keras"):
        api.evaluate(runs_dir=tmp_path)


def test_a_file_that_is_not_a_model_is_a_model_error(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip archive")
    with pytest.raises(ModelError):
        api.load_model(fake)


def test_an_unknown_preprocessing_mode_is_a_bad_value():
    with pytest.raises(BadValue) as caught:
        PreprocessOptions(mode="cifar")
    assert caught.value.field == "preprocess"
