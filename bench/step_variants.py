"""Training-step speed of lenet's compiled step and of candidate changes, interleaved, on one machine.

    python -m bench.step_variants                       # every variant, 5 rounds, batch 128
    python -m bench.step_variants --variants now,autodiff-penalty --rounds 7

Each variant runs in its own process (thread settings are per process) and
times ``--calls`` compiled calls of 8 optimizer steps on random inputs (speed
does not depend on pixel values) after a warm-up; rounds alternate the
variants, so a shared or throttled machine slows them alike. The table shows
each variant's median images/s over rounds and its ratio to ``now``. Only
ratios measured in the same run mean anything; say which CPU (``lscpu``).

Variants:
    now               lenet's step as shipped (penalty gradient beside the loss, value once per call)
    autodiff-penalty  the step before: the penalty differentiated by autodiff and valued on every step
    inter-op-1        TensorFlow's inter-op pool at 1 thread
    intra-op-1        TensorFlow's intra-op pool at 1 thread
    xla               the same step with ``jit_compile=True``
    xla-penalty       only the penalty's gradient ``g + l1*sign(w) + wd*w`` jit-compiled (one fused pass per kernel)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import REPO, cpu_model

VARIANTS = ("now", "autodiff-penalty", "inter-op-1", "intra-op-1", "xla", "xla-penalty")

CHILD = r"""
import json, sys, time
import numpy as np
from lenet_cli.core.tensorflow_env import import_tensorflow
tf = import_tensorflow()
variant, batch, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if variant == "inter-op-1":
    tf.config.threading.set_inter_op_parallelism_threads(1)
if variant == "intra-op-1":
    tf.config.threading.set_intra_op_parallelism_threads(1)
from lenet_cli.core.config import resolve_config
from lenet_cli.model.network import build_lenet, logits_and_probabilities
from lenet_cli.model.train_step import STEPS_PER_CALL, TrainStep, make_optimizer
cfg = resolve_config("mnist", batch_size=batch)
model = build_lenet(seed=0)
if variant == "xla-penalty":
    from lenet_cli.model.objective import Objective

    @tf.function(jit_compile=True)
    def fused(g, w, l1, wd):
        return g + l1 * tf.sign(w) + wd * w

    def add_penalty_gradients(self, gradients, variables, replicas=1):
        penalized = {id(k) for k in self.kernels.values()}
        return [fused(g, v.value, self.l1 / replicas, self.weight_decay / replicas) if id(v) in penalized else g
                for g, v in zip(gradients, variables)]

    Objective.add_penalty_gradients = add_penalty_gradients
step = TrainStep.for_config(cfg, model, make_optimizer(cfg, 200))
run = step.steps
if variant == "xla":
    run = tf.function(step.steps.python_function, jit_compile=True)
if variant == "autodiff-penalty":
    view, objective, trainable, optimizer = logits_and_probabilities(model), step.objective, step.trainable, step.optimizer

    @tf.function
    def run(xs, ys):
        total = tf.constant(0.0)
        for i in tf.range(tf.shape(xs)[0]):
            with tf.GradientTape() as tape:
                logits, _ = view(tf.cast(xs[i][..., None], tf.float32) / 255.0, training=True)
                loss, ce = objective.data_loss(ys[i], logits, tf.shape(ys[i])[0])
                terms = objective.penalties()
                loss = loss + terms["l1"] + terms["l2"]
            optimizer.apply_gradients(zip(tape.gradient(loss, trainable), trainable))
            total += ce + terms["l1"] + terms["l2"]
        return {"cross_entropy": total}
rng = np.random.default_rng(0)
xs = rng.integers(0, 256, size=(STEPS_PER_CALL, batch, 28, 28), dtype=np.uint8)
ys = rng.integers(0, 10, size=(STEPS_PER_CALL, batch), dtype=np.int32)
for _ in range(3):
    float(run(xs, ys)["cross_entropy"])
started = time.perf_counter()
for _ in range(calls):
    float(run(xs, ys)["cross_entropy"])
print(json.dumps(calls * STEPS_PER_CALL * batch / (time.perf_counter() - started)))
"""


def measure(variant: str, batch: int, calls: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:  # a file, not -c: AutoGraph needs the loop's source
        child = Path(tmp) / "step_variant.py"
        child.write_text(CHILD)
        proc = subprocess.run(
            [sys.executable, str(child), variant, str(batch), str(calls)],
            cwd=REPO,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    if proc.returncode != 0:
        raise SystemExit(f"{variant} failed: {proc.stderr.strip()[-1500:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=12, help="timed compiled calls of 8 steps per round")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    rates: dict[str, list[float]] = {v: [] for v in variants}
    for round_ in range(args.rounds):
        for variant in variants:
            rates[variant].append(measure(variant, args.batch_size, args.calls))
            print(f"round {round_ + 1} {variant}: {rates[variant][-1]:,.0f} images/s", file=sys.stderr, flush=True)
    medians = {v: statistics.median(r) for v, r in rates.items()}
    reference = medians.get("now")
    print(
        f"CPU: {cpu_model()}; batch {args.batch_size}; {args.rounds} interleaved rounds of {args.calls} calls x 8 steps\n"
    )
    print("| variant | median images/s | min-max | vs now |\n|---|---|---|---|")
    for variant in variants:
        ratio = f"{medians[variant] / reference:.2f}x" if reference else "-"
        print(
            f"| {variant} | {medians[variant]:,.0f} | {min(rates[variant]):,.0f}-{max(rates[variant]):,.0f} | {ratio} |"
        )
    print("\n" + json.dumps({"cpu": cpu_model(), "batch_size": args.batch_size, "rates": rates}))


if __name__ == "__main__":
    main()
