"""Measure what might make training faster, before changing anything (issue: performance).

Times lenet's own training step on the real MNIST training split for variants
of thread settings, batch size and precision, each for two epochs of
``--images`` images (the second epoch is the figure).

    python -m bench.perf_variants [--images 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

VARIANTS = {
    "baseline (batch 128)": {},
    "batch 256": {"batch_size": 256},
    "batch 512": {"batch_size": 512},
    "inter-op 1 thread": {"env": {"LENET_INTER_OP_THREADS": "1"}},
    "oneDNN off (TensorFlow's fallback kernels)": {"env": {"TF_ENABLE_ONEDNN_OPTS": "0"}},
    "mixed_bfloat16": {"env": {"LENET_MIXED_PRECISION": "mixed_bfloat16"}},
}

CHILD = r"""
import json, os, sys, tempfile, time
from pathlib import Path
from lenet_cli.core.tensorflow_env import import_tensorflow
tf = import_tensorflow()  # lenet's settings (oneDNN on unless TF_ENABLE_ONEDNN_OPTS is set)
inter = os.environ.get("LENET_INTER_OP_THREADS")
if inter:
    tf.config.threading.set_inter_op_parallelism_threads(int(inter))
policy = os.environ.get("LENET_MIXED_PRECISION")
if policy:
    import keras
    keras.mixed_precision.set_global_policy(policy)
from lenet_cli.core.config import resolve_config
from lenet_cli.data.loader import load_dataset
from lenet_cli.engine.trainer import LoopPlan, train
args = json.loads(sys.argv[1])
data = load_dataset("mnist", args["data_dir"], train_limit=args["images"])
cfg = resolve_config("mnist", epochs=2, batch_size=args.get("batch_size", 128))
with tempfile.TemporaryDirectory() as d:
    result = train(LoopPlan(cfg, data, Path(d), tensorboard=False))
print(json.dumps({"images_per_second": result.history[-1]["images_per_second"], "val_accuracy": result.history[-1]["val_accuracy"]}))
"""


def main():
    from bench.common import data_dir

    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    args = parser.parse_args()
    results = {}
    for name, variant in VARIANTS.items():
        env = {**os.environ, **variant.get("env", {}), "TF_CPP_MIN_LOG_LEVEL": "2"}
        payload = {
            "data_dir": str(data_dir()),
            "images": args.images,
            **{k: v for k, v in variant.items() if k != "env"},
        }
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(payload)], capture_output=True, text=True, env=env
        )
        results[name] = (
            json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": proc.stderr[-500:]}
        )
        print(name, results[name], file=sys.stderr, flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
