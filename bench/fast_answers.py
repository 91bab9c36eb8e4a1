"""Fast answers: a run's TensorFlow-free ``model.tflite`` against its ``model.keras``, whole processes, in one run.

    python -m bench.fast_answers                      # trains a 1-epoch MNIST run first (about a minute)
    python -m bench.fast_answers --run RUN            # an existing finished run (it becomes the latest run of a scratch folder)
    python -m bench.fast_answers --smoke              # tiny synthetic data: checks the code path, figures mean nothing

Rows (each auto beside ``--engine keras``, interleaved, so both see the same machine):

* ``lenet predict one.png`` against the latest run, cold: median of ``--repeats`` processes each;
* ``--loop`` calls of ``lenet predict`` in a bash ``for`` loop (one file each), as a shell script does; the Keras loop
  runs ``--keras-loop`` calls (default: as many) and its per-call time is scaled to ``--loop`` calls when fewer;
* ``lenet serve RUN`` from start to its first 200 on ``/readyz``, beside ``lenet serve model.onnx`` (the issue's mark);
* ``lenet evaluate RUN`` on the test split (10,000 images): whole-process time, and the accuracy of both to the last digit.

``python -m bench.run --only fast`` runs the same rows inside the suite.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import REPO, cpu_model, data_dir


def _lenet(*args) -> list[str]:
    return [sys.executable, "-m", "lenet_cli", *map(str, args)]


def _timed(cmd, env) -> float:
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed: {proc.stderr.strip()[-800:]}")
    return seconds


def _interleaved(commands: dict[str, list[str]], repeats: int, env) -> dict[str, list[float]]:
    """Each command ``repeats`` times, taking turns, so a change in the machine's load touches all alike."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, cmd in commands.items():
            times[name].append(_timed(cmd, env))
    return times


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_ready_seconds(model: Path, env, *flags: str, timeout: float = 120) -> float:
    """Seconds from starting ``lenet serve MODEL`` to its first 200 on ``/readyz``."""
    port = _free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        _lenet("serve", model, "--port", port, "--no-access-log", *flags),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"lenet serve {model} exited: {proc.stderr.read()[-800:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.005)
        raise RuntimeError(f"lenet serve {model} was not ready within {timeout:g} s")
    finally:
        proc.terminate()
        proc.wait(30)


def _shell_loop_seconds(files: list[Path], env, *flags: str) -> float:
    """One ``lenet predict FILE`` per file in a bash loop (stdout to a file, as a script keeps it)."""
    command = " ".join(map(str, _lenet("predict", '"$f"', "--format", "tsv", *flags)))
    script = f'for f in "$@"; do {command} >> "$OUT"; done'
    with tempfile.TemporaryDirectory() as scratch:
        loop_env = {**env, "OUT": str(Path(scratch) / "out.tsv")}
        started = time.perf_counter()
        proc = subprocess.run(
            ["bash", "-c", script, "loop", *map(str, files)], capture_output=True, text=True, env=loop_env
        )
        seconds = time.perf_counter() - started
        lines = (Path(scratch) / "out.tsv").read_text().splitlines() if proc.returncode == 0 else []
    if proc.returncode != 0 or len(lines) != len(files):
        raise RuntimeError(f"the shell loop failed: {proc.stderr.strip()[-800:]}")
    return seconds


def _evaluate(run: Path, env, *flags: str) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run(_lenet("evaluate", run, "--format", "json", *flags), capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"lenet evaluate failed: {proc.stderr.strip()[-800:]}")
    return seconds, json.loads(proc.stdout)


def measure(
    run: Path,
    test_images,
    tmp: Path,
    *,
    repeats: int = 11,
    loop: int = 100,
    keras_loop: int | None = None,
    serve_repeats: int = 5,
    evaluate_repeats: int = 3,
    data: Path | None = None,
) -> tuple[list[tuple[str, str, str, str]], dict]:
    """Every row of this bench for the finished run ``run`` (which must hold ``model.tflite``); ``(rows, raw numbers)``."""
    from PIL import Image

    if not (run / "model.tflite").is_file():
        raise SystemExit(
            f"{run} has no model.tflite: train it with this lenet, or run lenet export {run} --to litert --output {run}/model.tflite"
        )
    runs_root = tmp / "latest-runs"
    runs_root.mkdir(exist_ok=True)
    (runs_root / "LATEST").write_text(str(run.resolve()) + "\n")  # `lenet predict one.png`: the latest run, no --model
    env = {**os.environ, "LENET_RUNS_DIR": str(runs_root)}
    if data is not None:
        env["LENET_DATA_DIR"] = str(data)
    pngs = tmp / "loop"
    pngs.mkdir(exist_ok=True)
    files = []
    for i in range(loop):
        files.append(pngs / f"{i:03d}.png")
        Image.fromarray(test_images[i % len(test_images)]).save(files[-1])
    one = files[0]
    import compileall

    compileall.compile_dir(str(REPO / "lenet_cli"), quiet=1)  # as pip leaves an installed package: byte-compiled
    rows, raw = (
        [],
        {"run": str(run), "cpu": cpu_model(), "cores": os.cpu_count(), "load_average_before": os.getloadavg()[0]},
    )

    cold = _interleaved(
        {
            "auto": _lenet("predict", one, "--format", "tsv"),
            "keras": _lenet("predict", one, "--format", "tsv", "--engine", "keras"),
        },
        repeats,
        env,
    )
    fast, slow = statistics.median(cold["auto"]), statistics.median(cold["keras"])
    raw["predict_cold"] = cold
    rows.append(
        (
            "cold start: lenet predict one.png against the latest run (s)",
            f"{fast:.2f}",
            f"--engine keras (model.keras, TensorFlow): {slow:.2f}; median of {repeats} each, interleaved",
            f"{slow / fast:.1f}x faster",
        )
    )

    keras_calls = keras_loop or loop
    loop_fast = _shell_loop_seconds(files, env)
    loop_slow = _shell_loop_seconds(files[:keras_calls], env, "--engine", "keras") * loop / keras_calls
    raw["shell_loop"] = {
        "calls": loop,
        "auto_seconds": loop_fast,
        "keras_calls": keras_calls,
        "keras_seconds_scaled": loop_slow,
    }
    scaled = "" if keras_calls == loop else f" ({keras_calls} calls measured, scaled to {loop})"
    rows.append(
        (
            f"{loop} lenet predict calls in a bash loop, one file each (s)",
            f"{loop_fast:.1f}",
            f"--engine keras: {loop_slow:.1f}{scaled}",
            f"{loop_slow / loop_fast:.1f}x faster",
        )
    )

    onnx = tmp / "model.onnx"
    if not onnx.is_file():
        proc = subprocess.run(
            _lenet("export", run, "--to", "onnx", "--output", onnx, "--no-verify"),
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"export to onnx failed: {proc.stderr.strip()[-800:]}")
    ready: dict[str, list[float]] = {"auto": [], "keras": [], "onnx": []}
    for _ in range(serve_repeats):
        ready["auto"].append(serve_ready_seconds(run, env))
        ready["keras"].append(serve_ready_seconds(run, env, "--engine", "keras"))
        ready["onnx"].append(serve_ready_seconds(onnx, env))
    raw["serve_ready"] = ready
    auto, keras, by_onnx = (statistics.median(ready[k]) for k in ("auto", "keras", "onnx"))
    rows.append(
        (
            "lenet serve RUN: start to first 200 on /readyz (s)",
            f"{auto:.2f}",
            f"--engine keras: {keras:.2f}; lenet serve model.onnx: {by_onnx:.2f}; median of {serve_repeats}",
            f"{keras / auto:.1f}x faster",
        )
    )

    evaluations: dict[str, list] = {"auto": [], "keras": []}
    for _ in range(evaluate_repeats):
        evaluations["auto"].append(_evaluate(run, env))
        evaluations["keras"].append(_evaluate(run, env, "--engine", "keras"))
    report_fast, report_slow = evaluations["auto"][0][1], evaluations["keras"][0][1]
    seconds_fast = statistics.median(s for s, _ in evaluations["auto"])
    seconds_slow = statistics.median(s for s, _ in evaluations["keras"])
    same = (
        report_fast["accuracy"] == report_slow["accuracy"]
        and report_fast["confusion_matrix"] == report_slow["confusion_matrix"]
    )
    raw["evaluate"] = {
        "auto_seconds": [s for s, _ in evaluations["auto"]],
        "keras_seconds": [s for s, _ in evaluations["keras"]],
        "auto_accuracy": report_fast["accuracy"],
        "keras_accuracy": report_slow["accuracy"],
        "count": report_fast["count"],
        "same_accuracy_and_confusion_matrix": same,
        "auto_model": report_fast["model"],
        "keras_model": report_slow["model"],
        "auto_inference_images_per_second": report_fast["images_per_second"],
        "keras_inference_images_per_second": report_slow["images_per_second"],
        "auto_cross_entropy": report_fast["cross_entropy"],
        "keras_cross_entropy": report_slow["cross_entropy"],
    }
    rows.append(
        (
            f"lenet evaluate RUN on {report_fast['count']:,} test images, whole process (s)",
            f"{seconds_fast:.2f}",
            f"--engine keras: {seconds_slow:.2f}; accuracy {report_fast['accuracy']!r} vs {report_slow['accuracy']!r}"
            f"{' (same, and the same confusion matrix)' if same else ' (DIFFERENT)'}",
            f"{seconds_slow / seconds_fast:.1f}x faster",
        )
    )
    raw["load_average_after"] = os.getloadavg()[0]
    return rows, raw


def _train_run(tmp: Path, smoke: bool) -> tuple[Path, object]:
    """A 1-epoch MNIST run (synthetic data with ``smoke``) and its test images."""
    from lenet_cli.core.config import resolve_config
    from lenet_cli.data.loader import load_dataset
    from lenet_cli.engine.trainer import LoopPlan, train

    root = data_dir()
    if smoke:
        sys.path.insert(0, str(REPO / "tests"))
        from idx_factory import write_dataset

        root = tmp / "smoke-data"
        write_dataset(root / "mnist", n_train=700, n_test=300, seed=1)
        os.environ["LENET_VERIFY_CHECKSUMS"] = "0"
    data = load_dataset("mnist", root, **({"validation_size": 100} if smoke else {}))
    run = tmp / "fast-run"
    run.mkdir()
    train(LoopPlan(resolve_config("mnist", epochs=1), data, run, tensorboard=False, runs_dir=tmp / "train-runs"))
    return run, data.test.images


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--run", type=Path, default=None, help="a finished run to measure [default: train a 1-epoch MNIST run]"
    )
    parser.add_argument("--repeats", type=int, default=11, help="cold predict processes per engine")
    parser.add_argument("--loop", type=int, default=100, help="lenet predict calls in the shell loop")
    parser.add_argument(
        "--keras-loop", type=int, default=None, help="calls in the Keras loop, scaled to --loop [default: --loop]"
    )
    parser.add_argument("--serve-repeats", type=int, default=5)
    parser.add_argument("--evaluate-repeats", type=int, default=3)
    parser.add_argument(
        "--smoke", action="store_true", help="tiny synthetic data and few repeats: checks the code path"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        if args.run is None:
            run, images = _train_run(tmp, args.smoke)
        else:
            from lenet_cli.data.loader import load_dataset

            run = args.run.resolve()
            images = load_dataset("mnist", data_dir(), splits=("test",)).test.images
        if args.smoke:
            args.repeats, args.loop, args.keras_loop, args.serve_repeats, args.evaluate_repeats = 1, 3, 2, 1, 1
        rows, raw = measure(
            run,
            images,
            tmp,
            repeats=args.repeats,
            loop=args.loop,
            keras_loop=args.keras_loop,
            serve_repeats=args.serve_repeats,
            evaluate_repeats=args.evaluate_repeats,
            data=(tmp / "smoke-data") if args.smoke else data_dir(),
        )
        if args.run is None:
            shutil.rmtree(run, ignore_errors=True)
    print(
        f"{raw['cpu']} ({raw['cores']} cores), load average {raw['load_average_before']:.2f} before, {raw['load_average_after']:.2f} after"
    )
    print("| measurement | lenet (auto: model.tflite) | baseline / note | ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(json.dumps(raw, indent=1, default=str), file=sys.stderr)


if __name__ == "__main__":
    main()
