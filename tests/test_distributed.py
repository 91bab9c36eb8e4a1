"""``lenet train --distribute``: two loopback workers write one run; mirrored replicas match one device."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.distributed import free_loopback_ports, start_training, worker_env
from tests.helpers.idx_factory import write_dataset

pytestmark = pytest.mark.slow

LAYERS = ("conv_1", "conv_2", "dot_1", "dot_2", "logits_layer")
RECIPE = ["--epochs", "1", "--batch-size", "64", "--validation-size", "100", "--dense-units", "32", "--seed", "5"]
DIGEST = re.compile(r"worker (\d+): final weights sha256 ([0-9a-f]{64})")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed-data")
    write_dataset(root / "mnist", n_train=500, n_test=50, seed=4)
    return root


def _weights(run_dir: Path) -> list[np.ndarray]:
    from lenet_cli.model.network import load_model_file

    model = load_model_file(run_dir / "model.keras")
    return [w for name in LAYERS for w in model.get_layer(name).get_weights()]


def _digest(weights: list[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for weight in weights:
        digest.update(np.ascontiguousarray(weight, dtype=np.float32).tobytes())
    return digest.hexdigest()


def test_two_loopback_workers_write_one_run_that_matches_every_worker(data_dir, tmp_path):
    env = worker_env(tmp_path)
    workers = ",".join(f"127.0.0.1:{port}" for port in free_loopback_ports(2))
    args = [
        "--data-dir",
        str(data_dir),
        *RECIPE,
        "--distribute",
        "multi-worker",
        "--workers",
        workers,
        "--worker-timeout",
        "60",
    ]
    procs = [start_training([*args, "--task-index", str(i)], env) for i in (0, 1)]
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=110)
            results.append((proc.returncode, out, err))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, _out, err in results:
        assert code == 0, err
        assert "2 replica(s) on 2 worker(s)" in err

    run_dirs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    run_dir = run_dirs[0]
    assert (run_dir / "model.keras").is_file() and (run_dir / "logs").is_dir()
    assert (tmp_path / "runs" / "LATEST").read_text().strip() == run_dir.name
    assert not any((tmp_path / "tmp").iterdir()), "the non-chief worker's temporary directory must be removed"

    digests = {}
    for _, _, err in results:
        for worker, digest in DIGEST.findall(err):
            digests[int(worker)] = digest
    assert set(digests) == {0, 1}
    assert digests[0] == digests[1] == _digest(_weights(run_dir))


def test_unreachable_worker_fails_within_the_timeout(data_dir, tmp_path):
    port, absent = free_loopback_ports(2)
    start = time.monotonic()
    proc = start_training(
        [
            "--data-dir",
            str(data_dir),
            *RECIPE,
            "--distribute",
            "multi-worker",
            "--quiet",
            "--workers",
            f"127.0.0.1:{port},127.0.0.1:{absent}",
            "--task-index",
            "0",
            "--worker-timeout",
            "5",
        ],
        worker_env(tmp_path),
    )
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 1
    assert time.monotonic() - start < 60
    assert "--worker-timeout" in err
    assert not list((tmp_path / "runs").glob("*/model.keras"))


def test_mirrored_over_two_cpu_devices_equals_one_device(data_dir, tmp_path):
    recipe = [
        "--data-dir",
        str(data_dir),
        *RECIPE,
        "--dropout",
        "0",
        "--augment",
        "none",
        "--no-tensorboard",
        "--quiet",
    ]  # no random draws
    single = start_training([*recipe, "--output", str(tmp_path / "single")], worker_env(tmp_path))
    out, err = single.communicate(timeout=90)
    assert single.returncode == 0, err
    mirrored = start_training(
        [*recipe, "--output", str(tmp_path / "mirrored"), "--distribute", "mirrored", "--devices", "2"],
        worker_env(tmp_path),
    )
    out, err = mirrored.communicate(timeout=90)
    assert mirrored.returncode == 0, err
    for a, b in zip(_weights(tmp_path / "single"), _weights(tmp_path / "mirrored")):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_distribute_options_are_checked_before_tensorflow_loads():
    from click.testing import CliRunner

    from lenet_cli.cli import cli

    result = CliRunner().invoke(cli, ["train", "--devices", "2"])
    assert (
        result.exit_code == 2
        and "Invalid value for '--devices'" in result.output
        and "'mirrored' only" in result.output
    )
    result = CliRunner().invoke(cli, ["train", "--distribute", "multi-worker", "--workers", "127.0.0.1:1"])
    assert result.exit_code == 2 and "go together" in result.output


def test_mirrored_run_resumes_after_an_interruption(data_dir, tmp_path):
    env = worker_env(tmp_path)
    recipe = [
        "--data-dir",
        str(data_dir),
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--validation-size",
        "100",
        "--dense-units",
        "32",
        "--seed",
        "5",
        "--no-tensorboard",
        "--quiet",
    ]
    mirrored = ["--distribute", "mirrored", "--devices", "2"]
    whole = start_training([*recipe, *mirrored, "--output", str(tmp_path / "whole")], env)
    out, err = whole.communicate(timeout=90)
    assert whole.returncode == 0, err

    run_dir = tmp_path / "cut"
    proc = start_training([*recipe, *mirrored, "--output", str(run_dir)], env)
    deadline = time.monotonic() + 90
    while not (run_dir / "history.json").is_file() or (run_dir / "history.json").read_text().strip() in ("", "[]"):
        assert proc.poll() is None and time.monotonic() < deadline, "no epoch completed before the interruption"
        time.sleep(0.01)
    proc.kill()
    proc.communicate(timeout=30)
    assert not (run_dir / "model.keras").exists()

    resumed = start_training(
        ["--resume", str(run_dir), "--data-dir", str(data_dir), "--quiet", "--no-tensorboard", *mirrored], env
    )
    out, err = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, err
    for a, b in zip(_weights(tmp_path / "whole"), _weights(run_dir)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "error, workers, named",
    [
        ("Collective ops is aborted by: /job:worker/replica:0/task:1 unreachable", 3, "lost worker 1"),
        ("Deadline Exceeded", 2, "lost worker 1"),  # TensorFlow names no task, but worker 0 has one peer
        ("Deadline Exceeded", 3, "another worker stopped, failed or is unreachable"),
    ],
)
def test_a_lost_worker_is_named_whenever_it_can_be(error, workers, named):
    from types import SimpleNamespace

    from lenet_cli.cli.train_report import lost_worker_message

    distribution = SimpleNamespace(worker_index=0, num_workers=workers, worker_timeout=8.0)
    line = lost_worker_message(RuntimeError(error), distribution)
    assert f": {named}" in line and "--worker-timeout 8 s" in line and "\n" not in line
