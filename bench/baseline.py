"""Baselines under TensorFlow's own defaults, in a fresh process.

lenet turns TensorFlow's oneDNN kernels on before TensorFlow loads (TensorFlow
leaves them off on CPUs without AVX-512 VNNI/BF16 or AMX). The setting is read
once per process, so "what a person gets from plain Keras" has to be measured
in a process that never ran lenet's set-up: this one. It prints one JSON object.

    python -m bench.baseline fit --data-dir D --train-limit 20000 --epochs 2 --batch-size 128
    python -m bench.baseline predict --data-dir D --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from bench.common import REPO


def run_with_tensorflow_defaults(*args: str) -> dict:
    """Run this module in a child process whose TensorFlow keeps its own oneDNN choice."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.baseline", *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO
    )
    if proc.returncode != 0:
        raise RuntimeError(f"baseline {args[0]} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _load(args):
    from lenet_cli.data.loader import load_dataset

    return load_dataset(args.dataset, args.data_dir, train_limit=args.train_limit, validation_size=args.validation_size)


def plain_predict_rates(model, images, repeats: int) -> list[float]:
    """images/s of ``model.predict`` on a float numpy array, batch 1,000, after one warm-up call."""
    from lenet_cli.core.inputs import as_model_input

    x = as_model_input(images)
    model.predict(x[:1000], batch_size=1000, verbose=0)
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.predict(x, batch_size=1000, verbose=0)
        rates.append(len(x) / (time.perf_counter() - t))
    return rates


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("fit", "predict"))
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ, "the baseline must run with TensorFlow's defaults"
    data = _load(args)
    import tensorflow as tf

    from bench.common import onednn_in_use

    if args.what == "fit":
        from bench.train_speed import measure_plain_fit

        rates = measure_plain_fit(data, args.epochs, args.batch_size)
    else:
        from lenet_cli.model.network import build_lenet

        rates = plain_predict_rates(build_lenet(seed=0), data.test.images, args.repeats)
    print(json.dumps({"rates": rates, "median": statistics.median(rates), "onednn": onednn_in_use(tf)}))


if __name__ == "__main__":
    main()
