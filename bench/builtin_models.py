"""Make, or refresh, the models that ship inside the package (``lenet_cli/builtin_models/``).

    python -m bench.builtin_models --dataset mnist --train              # train the default recipe (seed 0), then package it
    python -m bench.builtin_models --dataset fashion --run RUN_DIR      # package a run trained with the default recipe

The run must be the default recipe, ``lenet train --dataset NAME --seed 0``
(its ``config.json`` is compared with lenet's defaults; anything else is
refused). Its model is written as LiteRT three ways (float32, dynamic-range
int8 weights, full int8 calibrated on training images) and each is scored
with ``lenet evaluate`` on the whole test split. The smallest whose
accuracy is within ``INT8_TOLERANCE`` (0.1 points) of float32 ships, with
its sidecar and a model card: the command, commit, machine, test accuracy,
ECE and per-class figures, the accuracy on the first ``SLICE`` test images
(which ``tests/test_builtin_models.py`` checks on the installed file), the
file's SHA-256, and what the model is not for.

The test split is read here only to report: the recipe was chosen on the
validation split (``bench.recipes`` and ``bench.robust_choice``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, cpu_model, data_dir

OUT = REPO / "lenet_cli" / "builtin_models"
INT8_TOLERANCE = 0.001  # accuracy, as a fraction: a quantised model ships when it loses at most 0.1 points
SLICE = 1000  # the first test images whose accuracy the card records and the tests check
QUANTIZATIONS = ("dynamic", "int8", "none")  # int8 weights; int8 weights and activations; float32
TITLES = {"mnist": "MNIST handwritten digits", "fashion": "Fashion-MNIST clothing"}
NOT_FOR = {
    "mnist": [
        "letters, symbols or several digits in one picture: it always answers one of the ten digits",
        "telling whether a picture holds a digit at all (check `low_confidence` in each answer)",
        "decisions about people, such as reading cheques or forms without a person checking",
        "digits scanned at a few pixels and enlarged, in hands unlike MNIST's American writers: it reads the UCI "
        "8x8 digits at 93.0-96.5 % (nearest-neighbour to bicubic), against 99.6 % on MNIST's test split",
    ],
    "fashion": [
        "photographs of people wearing clothes, or several articles in one picture",
        "garments outside its ten classes (it always answers one of them)",
        "telling a shirt from a T-shirt or a pullover reliably: its commonest confusions",
    ],
}
RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "learning_rate",
    "schedule",
    "warmup_epochs",
    "l1",
    "weight_decay",
    "dropout",
    "dense_units",
    "augment",
    "ema_momentum",
    "label_smoothing",
    "precision",
    "validation_size",
    "train_limit",
    "freeze",
    "init_from",
    "test_time_flip",
)


def lenet(*args: str) -> str:
    """Run ``python -m lenet_cli ARGS`` from the repository; its stdout (stderr passes through)."""
    proc = subprocess.run([sys.executable, "-m", "lenet_cli", *args], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"lenet {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return proc.stdout


def check_default_recipe(run: Path, dataset: str) -> dict:
    """The run's config, refused unless it is the default recipe for ``dataset`` with seed 0."""
    from dataclasses import asdict

    from lenet_cli.core.config import resolve_config

    config = json.loads((run / "config.json").read_text())
    defaults = json.loads(json.dumps(asdict(resolve_config(dataset))))  # tuples as config.json's lists
    differ = {key: (config.get(key), defaults.get(key)) for key in RECIPE_KEYS if config.get(key) != defaults.get(key)}
    if config.get("dataset") != dataset or config.get("seed") != 0 or differ:
        raise SystemExit(
            f"{run} is not `lenet train --dataset {dataset} --seed 0` (differs: {differ}, seed {config.get('seed')})"
        )
    return config


def evaluate(model: Path, data: Path) -> dict:
    return json.loads(lenet("evaluate", str(model), "--data-dir", str(data), "--format", "json"))


def slice_accuracy(model: Path, dataset: str, data: Path, count: int = SLICE) -> float:
    """Accuracy on the first ``count`` test images, through the loader ``lenet evaluate`` uses."""
    from lenet_cli.data.loader import load_split
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import ModelRef

    test, _ = load_split(dataset, "test", data)
    loaded = open_model(ModelRef(model, None))
    return float((loaded.predict(test.images[:count]).argmax(1) == test.labels[:count].astype(int)).mean())


def portable_sidecar(source: Path, target: Path, run: Path) -> None:
    """Copy an export's metadata without this machine's paths: the shipped file names its run, not where it lay.

    ``source_model`` becomes the run's folder name and ``model.keras``; ``data_source`` (where later commands
    look for the data first) is dropped, since a built-in model's data is wherever its user keeps it.
    """
    meta = json.loads(source.read_text(encoding="utf-8"))
    meta["source_model"] = f"{run.name}/model.keras"
    if isinstance(meta.get("run_config"), dict):
        meta["run_config"]["data_source"] = None
    target.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package(run: Path, dataset: str, data: Path, train_seconds: float | None, commit: str | None = None) -> dict:
    config = check_default_recipe(run, dataset)
    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    with tempfile.TemporaryDirectory(prefix="lenet-builtin-") as tmp:
        scored = {}
        for quantize in QUANTIZATIONS:
            target = Path(tmp) / f"{quantize}.tflite"
            lenet(
                "export",
                str(run),
                "--to",
                "litert",
                "--quantize",
                quantize,
                "--output",
                str(target),
                "--data-dir",
                str(data),
                "--format",
                "json",
            )
            scored[quantize] = (target, evaluate(target, data), target.stat().st_size)
            print(
                f"{dataset} {quantize}: {scored[quantize][1]['accuracy']:.4%}, {target.stat().st_size / 1e6:.2f} MB",
                file=sys.stderr,
            )
        float_accuracy = scored["none"][1]["accuracy"]
        close = [q for q in QUANTIZATIONS if scored[q][1]["accuracy"] >= float_accuracy - INT8_TOLERANCE - 1e-12]
        chosen = min(close, key=lambda q: scored[q][2])  # the smallest file that keeps the accuracy
        source, report, _ = scored[chosen]
        OUT.mkdir(parents=True, exist_ok=True)
        final = OUT / f"{dataset}.tflite"
        shutil.copyfile(source, final)
        portable_sidecar(Path(str(source) + ".lenet.json"), Path(str(final) + ".lenet.json"), run)
    names = report["class_names"]
    card = {
        "name": dataset,
        "title": TITLES[dataset],
        "file": final.name,
        "sha256": sha256(final),
        "size_bytes": final.stat().st_size,
        "format": "litert",
        "quantization": {"int8": "int8 (weights and activations)", "dynamic": "int8 weights", "none": "float32"}[
            chosen
        ],
        "float32_test_accuracy": float_accuracy,
        "quantization_candidates": {
            q: {"test_accuracy": scored[q][1]["accuracy"], "size_bytes": scored[q][2]} for q in QUANTIZATIONS
        },
        "test": {
            "split": "test",
            "count": report["count"],
            "accuracy": report["accuracy"],
            "expected_calibration_error": report["expected_calibration_error"],
            "per_class": {names[i]: row for i, row in enumerate(report["per_class"])},
        },
        "slice": {"first_test_images": SLICE, "accuracy": slice_accuracy(final, dataset, data)},
        "training": {
            "command": f"lenet train --dataset {dataset} --seed 0",
            "recipe": {key: config.get(key) for key in RECIPE_KEYS},
            "validation_accuracy": history[-1]["val_accuracy"],
            "run_metrics": {
                key: metrics.get(key) for key in ("val_accuracy", "test_accuracy", "test_count", "epochs")
            },  # Keras, metrics.json
            "train_seconds": metrics.get("train_seconds", train_seconds),
            "machine": f"{cpu_model()}, {os.cpu_count()} cores ({platform.machine()})",
            "commit": commit
            or subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip(),
            "lenet_version": lenet("--version").split()[-1],
            "date": time.strftime("%Y-%m-%d"),
        },
        "refresh": f"python -m bench.builtin_models --dataset {dataset} --train",
        "not_for": NOT_FOR[dataset],
    }
    (OUT / f"{dataset}.card.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=sorted(TITLES), required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a run trained with the default recipe and seed 0")
    source.add_argument("--train", action="store_true", help="train it first (the default recipe, seed 0)")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--commit", default=None, help="the commit --run was trained at (default: this checkout's HEAD)"
    )
    args = parser.parse_args(argv)
    data = args.data_dir or data_dir()
    seconds = None
    with tempfile.TemporaryDirectory(prefix="lenet-builtin-run-") as tmp:
        run = args.run
        if args.train:
            run = Path(tmp) / f"{args.dataset}-default"
            started = time.perf_counter()
            lenet(
                "train",
                "--dataset",
                args.dataset,
                "--seed",
                "0",
                "--data-dir",
                str(data),
                "--output",
                str(run),
                "--runs-dir",
                tmp,
                "--no-tensorboard",
                "--quiet",
                "--format",
                "json",
            )
            seconds = time.perf_counter() - started
        card = package(run, args.dataset, data, seconds, args.commit)
    print(
        json.dumps(
            {k: card[k] for k in ("name", "quantization", "size_bytes", "sha256")}
            | {"test_accuracy": card["test"]["accuracy"]}
        )
    )


if __name__ == "__main__":
    main()
