"""Fail fast on folders that cannot be written, and one-line errors for damaged or unreadable run folders.

Root ignores permission bits, so a read-only folder is simulated three ways,
whichever this machine allows: ``chmod 555`` when the tests do not run as
root; as root, ``chattr +i`` (an immutable folder refuses new files even to
root; needs CAP_LINUX_IMMUTABLE and ext2/3/4, xfs or btrfs), else the test is
skipped with the reason. A path under a file needs no privilege at all. A run
folder "owned by another user" is a ``chmod 000`` folder read by a child
process that drops to the unprivileged ``nobody`` user (root can; otherwise
the test's own user simply lacks the permission).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lenet_cli.cli import cli
from tests.helpers.fault_helpers import error_line, leftovers

NOBODY = 65534


def _invoke(args, **kwargs):
    result = CliRunner().invoke(cli, args, **kwargs)
    return result


def _one_error(result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return error_line(result.stderr)


@contextlib.contextmanager
def read_only(folder: Path):
    """Make ``folder`` refuse new files for this process (see the module docstring), or skip."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0
    ):
        pytest.skip("running as root and chattr +i is not available here: no way to make a folder read-only for root")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


# --- fail fast ------------------------------------------------------------------------------------


def test_train_runs_folder_under_a_file_fails_before_data_loads(tmp_path):
    (tmp_path / "file").write_text("x")
    result = _invoke(["train", "--runs-dir", str(tmp_path / "file" / "runs"), "--data-dir", str(tmp_path / "no-data")])
    line = _one_error(result)
    assert "runs folder" in line and "is a file, not a folder" in line  # not the missing data folder: checked first


def test_train_read_only_runs_folder_fails_before_data_loads(tmp_path):
    with read_only(tmp_path / "runs"):
        result = _invoke(["train", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "no-data")])
    line = _one_error(result)
    assert f"the runs folder '{tmp_path / 'runs'}' is not writable" in line
    assert not any((tmp_path / "runs").iterdir())


def test_train_read_only_output_fails_before_data_loads(tmp_path):
    with read_only(tmp_path / "ro"):
        result = _invoke(["train", "--output", str(tmp_path / "ro" / "run"), "--data-dir", str(tmp_path / "no-data")])
    assert f"output '{tmp_path / 'ro' / 'run'}' is not writable" in _one_error(result)


def test_resume_of_a_read_only_run_fails_before_data_loads(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    from lenet_cli.core.config import resolve_config

    (run / "config.json").write_text(resolve_config("mnist").to_json())
    (run / "checkpoint.npz").write_bytes(b"")
    with read_only(run):
        result = _invoke(["train", "--resume", str(run), "--data-dir", str(tmp_path / "no-data")])
    assert f"the run directory '{run}' is not writable" in _one_error(result)


def test_export_into_a_read_only_folder_fails_before_loading(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"never opened")
    (run / "config.json").write_text(json.dumps({"dataset": "mnist"}))
    with read_only(tmp_path / "dist"):
        result = _invoke(
            [
                "export",
                str(run),
                "--output",
                str(tmp_path / "dist" / "model.onnx"),
                "--data-dir",
                str(tmp_path / "no-data"),
            ]
        )
    assert f"the export folder '{tmp_path / 'dist'}' is not writable" in _one_error(result)
    assert not leftovers(tmp_path)


# --- damaged run folders --------------------------------------------------------------------------


@pytest.fixture
def damaged_run(tmp_path, trained_run):
    run = tmp_path / "runs" / "damaged"
    shutil.copytree(trained_run, run)
    return run


def _model_commands(run: Path, data_dir: Path, image: Path):
    return {
        "evaluate": ["evaluate", str(run), "--data-dir", str(data_dir)],
        "predict": ["predict", str(image), "--model", str(run)],
        "export": ["export", str(run), "--output", str(run.parent / "out.keras"), "--data-dir", str(data_dir)],
    }


@pytest.fixture
def digit(tmp_path):
    from PIL import Image

    pixels = np.zeros((28, 28), np.uint8)
    pixels[6:22, 12:16] = 255
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    return tmp_path / "digit.png"


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_config_that_is_not_json(damaged_run, synthetic_data_dir, digit, command):
    (damaged_run / "config.json").write_text('{"dataset": "mni')
    line = _one_error(_invoke(_model_commands(damaged_run, synthetic_data_dir, digit)[command]))
    assert "config.json' is unreadable or not valid JSON; the run is damaged" in line


def test_resume_with_config_that_is_not_json(damaged_run, synthetic_data_dir):
    (damaged_run / "config.json").write_text("[1, 2")
    (damaged_run / "checkpoint.npz").write_bytes(b"")
    (damaged_run / "model.keras").unlink()  # an interrupted run: a finished one is never resumed
    (damaged_run / "metrics.json").unlink()
    line = _one_error(_invoke(["train", "--resume", str(damaged_run), "--data-dir", str(synthetic_data_dir)]))
    assert "is not a valid lenet config" in line


def test_runs_listing_survives_damaged_files(damaged_run):
    (damaged_run / "history.json").write_text('[{"epoch": 1, "val_acc')
    (damaged_run / "metrics.json").unlink()
    (damaged_run / "config.json").write_text("not json")
    root = damaged_run.parent
    listed = _invoke(["runs", "--runs-dir", str(root), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["name"] == "damaged" and row["status"] == "interrupted"
    shown = _invoke(["runs", "show", "damaged", "--runs-dir", str(root), "--format", "json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["metrics"] == {}


def test_missing_metrics_still_evaluates(damaged_run, synthetic_data_dir):
    (damaged_run / "metrics.json").unlink()
    result = _invoke(["evaluate", str(damaged_run), "--data-dir", str(synthetic_data_dir), "--format", "json"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_latest_naming_a_deleted_run(tmp_path, synthetic_data_dir, digit, command):
    root = tmp_path / "runs"
    root.mkdir()
    (root / "LATEST").write_text("mnist-20260101-000000\n")
    args = {
        "evaluate": ["evaluate", "--data-dir", str(synthetic_data_dir)],
        "predict": ["predict", str(digit)],
        "export": ["export", "--output", str(tmp_path / "m.keras")],
    }[command]
    line = _one_error(_invoke([*args, "--runs-dir", str(root)]))
    assert "names the run 'mnist-20260101-000000', which holds no model.keras (deleted or moved?)" in line


def test_resume_with_a_checkpoint_from_another_network(damaged_run, synthetic_data_dir):
    from lenet_cli.core.config import resolve_config

    (damaged_run / "model.keras").unlink()
    (damaged_run / "metrics.json").unlink()
    config = resolve_config("mnist", epochs=2, validation_size=100, dense_units=64, batch_size=50).to_json_dict()
    (damaged_run / "config.json").write_text(json.dumps(config))
    state = {
        "format_version": 2,
        "config": config,
        "completed_epochs": 1,
        "best_val_accuracy": None,
        "rng_state": {},
        "history": [],
    }
    np.savez(
        damaged_run / "checkpoint.npz",
        **{
            "model/conv_1/kernel": np.zeros((3, 3, 1, 7), np.float32),
            "state": np.frombuffer(json.dumps(state).encode(), np.uint8),
        },
    )
    line = _one_error(
        _invoke(
            [
                "train",
                "--resume",
                str(damaged_run),
                "--data-dir",
                str(synthetic_data_dir),
                "--quiet",
                "--no-tensorboard",
            ]
        )
    )
    assert "'model/conv_1/kernel'" in line and "cannot be resumed" in line


@pytest.fixture
def shared_tmp():
    """A folder the unprivileged user can enter (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="lenet-faults-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _as_nobody() -> list[str]:
    """The command prefix that runs a child as ``nobody`` (util-linux's setpriv), or none when not root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot run a child as another user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["evaluate", "predict", "export", "runs show"])
def test_run_folder_without_read_permission(shared_tmp, trained_run, digit, command):
    run = shared_tmp / "runs" / "theirs"
    shutil.copytree(trained_run, run)
    (shared_tmp / "runs").chmod(0o755)
    image = shared_tmp / "digit.png"
    shutil.copy(digit, image)
    image.chmod(0o644)
    run.chmod(0o000)
    home = shared_tmp / "home"
    home.mkdir(mode=0o777)
    home.chmod(0o777)
    args = {
        "evaluate": ["evaluate", str(run)],
        "predict": ["predict", str(image), "--model", str(run)],
        "export": ["export", str(run), "--output", str(home / "m.keras")],
        "runs show": ["runs", "show", "theirs"],
    }[command]
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home),
        "LENET_RUNS_DIR": str(shared_tmp / "runs"),
        "MPLCONFIGDIR": str(home),
        "KERAS_HOME": str(home),
        "LENET_VERIFY_CHECKSUMS": "0",
    }
    try:
        done = subprocess.run(
            [*_as_nobody(), sys.executable, "-m", "lenet_cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=str(home),
        )
    finally:
        run.chmod(0o755)
    line = error_line(done.stderr)
    if done.returncode == 2:  # Click's readable=True check on a MODEL argument: a usage error, in one line too
        assert f"Path '{run}' is not readable" in line
    else:
        assert done.returncode == 1, done.stderr
        assert f"cannot read the run folder '{run}': permission denied" in line
