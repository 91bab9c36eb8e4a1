"""lenet's benchmark suite: each figure beside its baseline, measured in the same run.

    python -m bench.run                       # everything, real data, writes bench/RESULTS.md
    python -m bench.run --only train,predict  # some sections
    python -m bench.run --smoke --out /tmp/r.md   # tiny synthetic data: checks the suite runs (CI)

Sections:
  train      training images/s: lenet's loop vs plain ``model.fit`` (same network, batch, data in memory)
  tensorboard  cost of all TensorBoard callbacks on one epoch
  accuracy   time to accuracy and final accuracy of the default recipe (mnist, fashion)
  evaluate   inference images/s: lenet's batched predictor vs ``model.predict`` on numpy arrays
  predict    ``lenet predict`` on 10,000 small PNG files, wall time including start-up
  coldstart  whole-process start: ``lenet --help``, ``lenet predict one.png`` per model format
  fast       a run's model.tflite against its model.keras (``--engine keras``): cold predict, a shell loop of predicts,
             serve to /readyz, evaluate on the test split (:mod:`bench.fast_answers`)
  efficiency FLOPs per trained image x images/s against the measured float32 matmul peak, and dot_1's matmul alone

Timings are medians of repeated runs where a run is short. Never run two
benchmarks at once on this 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import REPO, data_dir

SECTIONS = ("train", "tensorboard", "accuracy", "evaluate", "predict", "coldstart", "fast", "efficiency")


def _dataset(name: str, smoke: bool, tmp: Path, train_limit=None):
    from lenet_cli.data.loader import load_dataset

    if smoke:
        from tests.helpers.idx_factory import write_dataset

        root = tmp / "smoke-data"
        if not (root / name).is_dir():
            write_dataset(root / name, n_train=700, n_test=300, seed=1)
        os.environ["LENET_VERIFY_CHECKSUMS"] = "0"
        return load_dataset(name, root, validation_size=100), root
    return load_dataset(name, data_dir(), train_limit=train_limit), data_dir()


def bench_train(args, tmp):
    from bench.train_speed import run
    from lenet_cli.core.config import resolve_config

    limit = None if args.smoke else 12000
    data, root = _dataset("mnist", args.smoke, tmp, train_limit=limit)
    source = {"data_dir": root, "train_limit": limit, "validation_size": len(data.validation)}
    rows, raw = [], {}
    default_batch = resolve_config("mnist").batch_size
    # the smoke run checks the code path, not the figures; the last batch is the default one (efficiency reads it)
    for batch in (128,) if args.smoke else sorted({128, 256} - {default_batch}) + [default_batch]:
        result = run(
            data, epochs=2 if args.smoke else 4, batch_size=batch, baseline_source=source, rounds=1 if args.smoke else 2
        )
        lenet = result["lenet_images_per_second"]
        rows.append(
            (
                f"training images/s, batch {batch} (lenet train)",
                f"{lenet:,.0f}",
                f"plain model.fit, same objective, TensorFlow defaults: {result['plain_fit_tf_defaults_images_per_second']:,.0f}",
                f"{result['ratio_tf_defaults']:.2f}x",
            )
        )
        rows.append(
            (
                f"training images/s, batch {batch} (lenet train)",
                f"{lenet:,.0f}",
                f"plain model.fit, same objective, lenet's TensorFlow settings (oneDNN on): {result['plain_fit_same_settings_images_per_second']:,.0f}",
                f"{result['ratio_same_settings']:.2f}x",
            )
        )
        rows.append(
            (
                f"training images/s, batch {batch} (lenet train)",
                f"{lenet:,.0f}",
                f"model.fit by hand, TensorFlow's LRN op, lenet's TensorFlow settings: {result['by_hand_tensorflow_lrn_images_per_second']:,.0f}",
                f"{result['ratio_by_hand']:.2f}x",
            )
        )
        raw[f"batch_{batch}"] = result
    raw["lenet_images_per_second"] = raw[f"batch_{batch}"]["lenet_images_per_second"]
    raw["default_batch_size"] = batch
    return rows, raw


def bench_tensorboard(args, tmp):
    from lenet_cli.core.config import resolve_config
    from lenet_cli.engine.trainer import LoopPlan, train

    data, _ = _dataset("mnist", args.smoke, tmp)
    seconds = {}
    for tensorboard in (False, True, False, True):
        cfg = resolve_config("mnist", epochs=1)
        with tempfile.TemporaryDirectory() as run_dir:
            started = time.perf_counter()
            train(LoopPlan(cfg, data, Path(run_dir), tensorboard=tensorboard))
            seconds.setdefault(tensorboard, []).append(time.perf_counter() - started)
    # the epoch plus its end-of-epoch work (validation, callbacks), best of two each
    off, on = min(seconds[False]), min(seconds[True])
    return [
        (
            "one MNIST epoch with all TensorBoard callbacks (s)",
            f"{on:.1f}",
            f"without: {off:.1f}",
            f"+{(on / off - 1) * 100:.1f} %",
        )
    ], {"with": seconds[True], "without": seconds[False]}


class _TestAccuracyProbe:
    """Record test accuracy every ``fraction`` of an epoch (for this benchmark only), keeping its cost out of the clock.

    Scoring only at epoch ends would round the time to accuracy up to a whole
    epoch; the probe scores at each quarter instead (dropout off, the weights
    as they are at that step).
    """

    def __init__(self, images, labels, train_size: int, fraction: float = 0.25):
        self.images, self.labels = images, labels
        self.interval = max(1, int(train_size * fraction))
        self.train_size = train_size
        self.rows = []

    def callback(self):
        import keras

        probe = self

        class Probe(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                probe.start = time.perf_counter()
                probe.excluded = 0.0
                probe.next_at = probe.interval
                probe.epoch = 0

            def on_epoch_begin(self, epoch, logs=None):
                probe.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                images = probe.epoch * probe.train_size + int((logs or {}).get("images", 0))
                if probe.next_at <= images < (probe.epoch + 1) * probe.train_size:
                    probe.score(self.model, images)
                    while probe.next_at <= images:
                        probe.next_at += probe.interval

            def on_epoch_end(self, epoch, logs=None):
                probe.score(self.model, (epoch + 1) * probe.train_size)
                probe.next_at = (epoch + 1) * probe.train_size + probe.interval

        return Probe()

    def score(self, model, images: int) -> None:
        from lenet_cli.model.inference import KerasPredictor

        t0 = time.perf_counter()
        train_seconds = t0 - self.start - self.excluded
        accuracy = float((KerasPredictor(model)(self.images).argmax(1) == self.labels).mean())
        self.excluded += time.perf_counter() - t0
        self.rows.append(
            {"epoch": round(images / self.train_size, 2), "train_seconds": train_seconds, "test_accuracy": accuracy}
        )


def bench_accuracy(args, tmp):
    from lenet_cli.core.config import resolve_config
    from lenet_cli.engine.trainer import LoopPlan, train

    rows, raw = [], {}
    for name, target in (("mnist", 0.99), ("fashion", 0.90)):
        data, _ = _dataset(name, args.smoke, tmp)
        cfg = resolve_config(name, epochs=1) if args.smoke else resolve_config(name)
        probe = _TestAccuracyProbe(data.test.images, data.test.labels, len(data.train))
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_dir:
            result = train(LoopPlan(cfg, data, Path(run_dir), callbacks=[probe.callback()], tensorboard=True))
        wall = time.perf_counter() - started - probe.excluded
        reached = next((r for r in probe.rows if r["test_accuracy"] >= target), None)
        rows.append(
            (
                f"{name}: seconds of training to {target:.1%} test accuracy",
                f"{reached['train_seconds']:.0f}" if reached else "not reached",
                f"epoch {reached['epoch']}" if reached else f"best {max(r['test_accuracy'] for r in probe.rows):.4f}",
                "",
            )
        )
        rows.append(
            (
                f"{name}: default recipe ({cfg.epochs} epochs), final test accuracy",
                f"{result.metrics['test_accuracy']:.4f}",
                f"val {result.metrics['val_accuracy']:.4f}",
                f"{wall / 60:.1f} min training + scoring",
            )
        )
        raw[name] = {
            "per_epoch": probe.rows,
            "metrics": result.metrics,
            "wall_seconds": wall,
            "config": cfg.to_json_dict(),
        }
    return rows, raw


def bench_evaluate(args, tmp):
    from bench.baseline import run_with_tensorflow_defaults
    from lenet_cli.core.inputs import as_model_input
    from lenet_cli.model.inference import KerasPredictor
    from lenet_cli.model.network import build_lenet

    data, root = _dataset("mnist", args.smoke, tmp)
    repeats = 3 if args.smoke else 9
    defaults = run_with_tensorflow_defaults(
        "predict", "--data-dir", root, "--validation-size", len(data.validation), "--repeats", repeats
    )
    model = build_lenet(seed=0)
    images = data.test.images
    x = as_model_input(images)
    ours, theirs = [], []
    predictor = KerasPredictor(model, batch_size=1000)
    predictor(images[:1000])
    model.predict(x[:1000], batch_size=1000, verbose=0)
    for _ in range(repeats):
        t = time.perf_counter()
        predictor(images)
        ours.append(len(images) / (time.perf_counter() - t))
        t = time.perf_counter()
        model.predict(x, batch_size=1000, verbose=0)
        theirs.append(len(images) / (time.perf_counter() - t))
    a, b, d = statistics.median(ours), statistics.median(theirs), defaults["median"]
    low, high = min(defaults["rates"]), max(defaults["rates"])
    return [
        (
            "inference images/s, batch 1000 (lenet evaluate's predictor)",
            f"{a:,.0f}",
            f"model.predict on numpy, TensorFlow defaults: median {d:,.0f} (runs {low:,.0f}-{high:,.0f})",
            f"{a / d:.2f}x",
        ),
        (
            "inference images/s, batch 1000 (lenet evaluate's predictor)",
            f"{a:,.0f}",
            f"model.predict on numpy, lenet's TensorFlow settings: median {b:,.0f} (runs {min(theirs):,.0f}-{max(theirs):,.0f})",
            f"{a / b:.2f}x",
        ),
    ], {
        "lenet": ours,
        "model_predict_same_settings": theirs,
        "model_predict_tf_defaults": defaults["rates"],
        "tf_defaults_onednn": defaults["onednn"],
    }


def _trained_model(tmp: Path, smoke: bool) -> Path:
    """A small trained run for the predict benchmarks (1 epoch)."""
    run = tmp / "bench-run"
    if not (run / "model.keras").is_file():
        from lenet_cli.core.config import resolve_config
        from lenet_cli.engine.trainer import LoopPlan, train

        data, _ = _dataset("mnist", smoke, tmp, train_limit=None)
        run.mkdir(parents=True, exist_ok=True)
        train(LoopPlan(resolve_config("mnist", epochs=1), data, run, tensorboard=False, runs_dir=tmp / "runs"))
    return run


def _lenet_cmd(*args):
    return [sys.executable, "-m", "lenet_cli", *map(str, args)]


def bench_predict(args, tmp):
    from PIL import Image

    run = _trained_model(tmp, args.smoke)
    data, _ = _dataset("mnist", args.smoke, tmp)
    count = 200 if args.smoke else 10_000
    folder = tmp / "pngs"
    folder.mkdir(exist_ok=True)
    images = data.test.images
    for i in range(count):
        Image.fromarray(images[i % len(images)]).save(folder / f"{i:05d}.png")
    env = {**os.environ, "LENET_VERIFY_CHECKSUMS": "0"}
    t = time.perf_counter()
    proc = subprocess.run(
        _lenet_cmd("predict", "--model", run, folder, "--format", "tsv"), capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr)
    lines = proc.stdout.strip().splitlines()
    predicted = np.array([int(line.split("\t")[1]) for line in lines])
    labels = np.array([data.test.labels[i % len(images)] for i in range(count)])
    return [
        (
            f"lenet predict on {count:,} 28x28 PNG files, whole process (s)",
            f"{wall:.1f}",
            "target <= 10 s",
            f"{count / wall:,.0f} img/s",
        )
    ], {"wall": wall, "count": count, "agreement_with_labels": float((predicted == labels).mean())}


def bench_coldstart(args, tmp):
    run = _trained_model(tmp, args.smoke)
    from PIL import Image

    data, _ = _dataset("mnist", args.smoke, tmp)
    one = tmp / "one.png"
    Image.fromarray(data.test.images[0]).save(one)
    models = {"keras": run / "model.keras"}
    exports = (
        () if args.smoke else (("onnx", "model.onnx"), ("litert", "model.tflite"))
    )  # smoke: tests/test_export.py covers exporting
    for fmt, name in exports:
        proc = subprocess.run(
            _lenet_cmd("export", run, "--to", fmt, "--output", tmp / name, "--no-verify"),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"export to {fmt} failed: {proc.stderr.strip()[-500:]}")
        models[fmt] = tmp / name
    repeats = 1 if args.smoke else 5
    rows, raw = [], {}

    def timed(cmd):
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            times.append(time.perf_counter() - t)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr)
        return statistics.median(times)

    import compileall

    compileall.compile_dir(str(REPO / "lenet_cli"), quiet=1)  # as pip leaves an installed package: byte-compiled
    raw["help"] = timed(_lenet_cmd("--help"))
    rows.append(("cold start: lenet --help (s)", f"{raw['help']:.2f}", "target < 0.3 s", ""))
    for fmt, path in models.items():
        raw[fmt] = timed(_lenet_cmd("predict", "--model", path, "--preprocess", "mnist", one, "--format", "tsv"))
        floor = timed([sys.executable, "-c", _FLOOR[fmt], str(path), str(one)]) if fmt in _FLOOR else None
        raw[f"{fmt}_floor"] = floor
        note = f"floor, the runtime alone (python + numpy + Pillow + runtime, one image): {floor:.2f}" if floor else ""
        rows.append(
            (
                f"cold start: lenet predict one.png with .{path.suffix.lstrip('.')} (s)",
                f"{raw[fmt]:.2f}",
                note,
                f"{raw[fmt] - floor:+.2f} s" if floor else "",
            )
        )
    return rows, raw


def bench_fast(args, tmp):
    from bench.fast_answers import measure

    run = _trained_model(tmp, args.smoke)
    data, root = _dataset("mnist", args.smoke, tmp)
    counts = (
        {"repeats": 1, "loop": 3, "keras_loop": 2, "serve_repeats": 1, "evaluate_repeats": 1}
        if args.smoke
        else {"repeats": 11, "loop": 100, "keras_loop": args.keras_loop, "serve_repeats": 5, "evaluate_repeats": 3}
    )
    return measure(run, data.test.images, tmp, data=root, **counts)


# The least any program can do for one PNG with each model: import the runtime, load the file, decode, run.
_FLOOR = {
    "keras": "import sys, numpy as np\n"
    "import lenet_cli.model.network  # lenet's TensorFlow settings; registers the LRN layer the file names\n"
    "import keras\nfrom PIL import Image\n"
    "m = keras.saving.load_model(sys.argv[1], safe_mode=True, compile=False)\n"
    "x = np.asarray(Image.open(sys.argv[2]), np.float32)[None, :, :, None] / 255\nprint(m(x).numpy().argmax())",
    "onnx": "import sys, numpy as np, onnxruntime as ort\nfrom PIL import Image\n"
    "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
    "x = np.asarray(Image.open(sys.argv[2]), np.float32)[None, :, :, None] / 255\nprint(s.run(None, {s.get_inputs()[0].name: x})[0].argmax())",
    "litert": "import sys, numpy as np\nfrom ai_edge_litert.interpreter import Interpreter\nfrom PIL import Image\n"
    "i = Interpreter(model_path=sys.argv[1]); i.allocate_tensors()\n"
    "x = np.asarray(Image.open(sys.argv[2]), np.float32)[None, :, :, None] / 255\n"
    "i.set_tensor(i.get_input_details()[0]['index'], x); i.invoke()\nprint(i.get_tensor(i.get_output_details()[0]['index']).argmax())",
}


def _dense_matmul_rate(kernel_shape: tuple[int, int], batch: int, smoke: bool) -> float:
    """FLOP/s of a dense layer's forward matmul (batch x inputs @ ``kernel_shape``) on its own, best of 5 timings of 20 calls."""
    import tensorflow as tf

    features, units = kernel_shape
    a = tf.random.normal((batch, features))
    b = tf.random.normal((features, units))
    matmul = tf.function(tf.linalg.matmul)
    matmul(a, b).numpy()
    best = 0.0
    for _ in range(2 if smoke else 5):
        started = time.perf_counter()
        for _ in range(20):
            out = matmul(a, b)
        out.numpy()
        best = max(best, 20 * 2 * batch * features * units / (time.perf_counter() - started))
    return best


def bench_efficiency(args, tmp, train_rate: float | None, train_batch: int | None = None):
    import tensorflow as tf

    from lenet_cli.core.flops import training_flops_per_image
    from lenet_cli.model.network import build_lenet

    model = build_lenet()
    flops = training_flops_per_image(model)
    n = 1024 if args.smoke else 4096
    a = tf.random.normal((n, n))
    b = tf.random.normal((n, n))
    tf.linalg.matmul(a, b).numpy()
    rates = []
    for _ in range(3 if args.smoke else 5):
        t = time.perf_counter()
        tf.linalg.matmul(a, b).numpy()
        rates.append(2 * n**3 / (time.perf_counter() - t))
    peak = max(rates)
    rows = [
        ("float32 matmul peak, TensorFlow (GFLOP/s)", f"{peak / 1e9:,.0f}", f"{n}x{n} matmul", ""),
        (
            "training FLOPs per image (forward + backward)",
            f"{flops / 1e6:.1f} M",
            "counted from the model's layers",
            "",
        ),
    ]
    dense = _dense_matmul_rate(tuple(model.get_layer("dot_1").kernel.shape), train_batch or 256, smoke=args.smoke)
    rows.append(
        (
            f"dot_1's forward matmul alone, batch {train_batch or 256} (GFLOP/s)",
            f"{dense / 1e9:,.0f}",
            "the largest matmul of a training step",
            f"{dense / peak:.0%} of peak",
        )
    )
    if train_rate:
        achieved = flops * train_rate
        rows.append(
            (
                "training efficiency at the default batch size",
                f"{achieved / 1e9:,.0f} GFLOP/s",
                f"ceiling {peak / flops:,.0f} img/s",
                f"{achieved / peak:.0%} of peak",
            )
        )
    return rows, {"peak_flops": peak, "flops_per_image": flops, "dense_matmul_flops": dense}


def write_results(path: Path, facts: dict, rows: list, raw: dict) -> None:
    lines = [
        "# Benchmark results",
        "",
        f"Measured {facts['date']} on {facts['cpu']} ({facts['cores']} cores); Python {facts['python']}, "
        f"TensorFlow {facts['tensorflow']}, Keras {facts['keras']}, NumPy {facts['numpy']}.",
        f"Command: `python -m bench.run{' --smoke' if raw.get('smoke') else ''}`. Each figure and its baseline come from this one run.",
        "",
        "| measurement | lenet | baseline / note | ratio |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    lines += [
        "",
        "<details><summary>raw numbers</summary>",
        "",
        "```json",
        json.dumps(raw, indent=1, default=str),
        "```",
        "",
        "</details>",
        "",
    ]
    from lenet_cli.store.atomic import write_text_atomic

    write_text_atomic(path, "\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument(
        "--smoke", action="store_true", help="tiny synthetic data: checks the suite runs, timings mean nothing"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument(
        "--keras-loop",
        type=int,
        default=None,
        help="fast: lenet predict --engine keras calls in the shell loop, scaled to 100 [default: 100]",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lenet_cli.core.tensorflow_env import import_tensorflow

    import_tensorflow()
    from bench.common import machine_facts

    facts = machine_facts()
    rows, raw = [], {"smoke": args.smoke}
    wanted = [s for s in args.only.split(",") if s]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for section in SECTIONS:
            if section not in wanted:
                continue
            print(f"bench: {section} ...", file=sys.stderr, flush=True)
            started = time.perf_counter()
            if section == "efficiency":
                rate = raw.get("train", {}).get("lenet_images_per_second")
                section_rows, section_raw = bench_efficiency(
                    args, tmp, rate, raw.get("train", {}).get("default_batch_size")
                )
            else:
                section_rows, section_raw = globals()[f"bench_{section}"](args, tmp)
            rows += section_rows
            raw[section] = section_raw
            raw.setdefault("load_average_after_section", {})[section] = os.getloadavg()[0]
            write_results(args.out, facts, rows, raw)  # partial results survive an interrupted run
            print(f"bench: {section} done in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    write_results(args.out, facts, rows, raw)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
