"""Faults around a correct command: several trainings at once, and a multi-worker run losing a worker.

Real processes on loopback: the workers form a real ``MultiWorkerMirroredStrategy`` cluster.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.distributed import free_loopback_ports, start_training, worker_env
from tests.helpers.idx_factory import write_dataset

pytestmark = pytest.mark.slow

RECIPE = [
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


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker-fault-data")
    write_dataset(root / "mnist", n_train=1200, n_test=50, seed=6)
    return root


def _cluster(data_dir, tmp_path, epochs: int, timeout: float, output: Path | None = None, resume: bool = False):
    env = worker_env(tmp_path)
    workers = ",".join(f"127.0.0.1:{port}" for port in free_loopback_ports(2))
    start = (
        ["--resume", str(output), "--epochs", str(epochs)]
        if resume
        else ["--epochs", str(epochs), *RECIPE, "--output", str(output)]
    )
    common = start + [
        "--data-dir",
        str(data_dir),
        "--distribute",
        "multi-worker",
        "--workers",
        workers,
        "--worker-timeout",
        str(timeout),
    ]
    return [start_training([*common, "--task-index", str(i)], env) for i in (0, 1)]


def _wait_for_epochs(run_dir: Path, count: int, procs, limit: float = 150) -> None:
    deadline = time.monotonic() + limit
    while True:
        history = run_dir / "history.json"
        if history.is_file():
            try:
                if len(json.loads(history.read_text())) >= count:
                    return
            except ValueError:
                pass
        assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
        assert time.monotonic() < deadline, "no epoch completed in time"
        time.sleep(0.05)


def _finish(procs, timeout: float):
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail("a worker did not stop in time")
        results.append((proc.returncode, err))
    return results


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("waiting up to")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_on_one_worker_stops_every_worker_and_the_run_resumes(data_dir, tmp_path, sig, code):
    run_dir = tmp_path / "run"
    procs = _cluster(data_dir, tmp_path, epochs=40, timeout=60, output=run_dir)
    _wait_for_epochs(run_dir, 1, procs)
    procs[1].send_signal(sig)  # the non-chief worker
    signalled = time.monotonic()
    results = _finish(procs, timeout=30)
    assert time.monotonic() - signalled < 15  # a step or two, not the collective timeout
    name = signal.Signals(sig).name
    for index, (returncode, err) in enumerate(results):
        assert returncode == code, err
        line = _one_error_line(err)
        assert f"worker {index}:" in line and "every worker stopped" in line and "lenet train --resume" in line
        assert (f"{name} on another worker" in line) == (index == 0)
    assert not (run_dir / "model.keras").exists() and (run_dir / "checkpoint.npz").is_file()

    done = len(json.loads((run_dir / "history.json").read_text()))
    resumed = _cluster(
        data_dir, tmp_path, epochs=done, timeout=60, output=run_dir, resume=True
    )  # ends on the kept epoch
    results = _finish(resumed, timeout=150)
    assert all(returncode == 0 for returncode, _ in results), results
    assert (run_dir / "model.keras").is_file()


def test_a_killed_worker_is_named_within_the_worker_timeout(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    procs = _cluster(data_dir, tmp_path, epochs=40, timeout=8, output=run_dir)
    _wait_for_epochs(run_dir, 1, procs)
    procs[1].kill()
    killed = time.monotonic()
    (returncode, err), _ = _finish(procs, timeout=60)
    assert time.monotonic() - killed < 8 + 20
    assert returncode == 1
    line = _one_error_line(err)
    assert line.startswith("Error: worker 0:") and "lost worker 1" in line and "--worker-timeout" in line


def test_a_worker_that_starts_late_still_joins(data_dir, tmp_path):
    env = worker_env(tmp_path)
    workers = ",".join(f"127.0.0.1:{port}" for port in free_loopback_ports(2))
    args = [
        "--data-dir",
        str(data_dir),
        "--epochs",
        "1",
        *RECIPE,
        "--distribute",
        "multi-worker",
        "--workers",
        workers,
        "--worker-timeout",
        "60",
    ]
    chief = start_training([*args, "--task-index", "0"], env)
    time.sleep(6)
    late = start_training([*args, "--task-index", "1"], env)
    results = _finish([chief, late], timeout=150)
    assert all(returncode == 0 for returncode, _ in results), results


def test_concurrent_trainings_get_their_own_runs_and_latest_is_never_torn(data_dir, tmp_path):
    env = worker_env(tmp_path)
    runs = tmp_path / "runs"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lenet_cli",
                "train",
                "--data-dir",
                str(data_dir),
                "--epochs",
                "1",
                *RECIPE,
                "--train-limit",
                "300",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    seen = set()
    while any(p.poll() is None for p in procs):
        latest = runs / "LATEST"
        if latest.is_file():
            name = latest.read_text().strip()
            seen.add(name)
            assert (runs / name / "model.keras").is_file() and (runs / name / "metrics.json").is_file(), name
        listing = subprocess.run(
            [sys.executable, "-m", "lenet_cli", "runs", "--runs-dir", str(runs), "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
        )
        assert listing.returncode == 0, listing.stderr
        for run in json.loads(listing.stdout):
            assert run["status"] in ("running", "finished"), run
        time.sleep(0.2)
    assert all(p.returncode == 0 for p in procs), [p.communicate()[1] for p in procs]
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(run_dirs) == 3 and all((d / "model.keras").is_file() for d in run_dirs)
    assert (runs / "LATEST").read_text().strip() in {d.name for d in run_dirs}
    assert seen <= {d.name for d in run_dirs}
