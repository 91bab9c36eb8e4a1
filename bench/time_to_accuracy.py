"""Seconds of training until a recipe first reaches a test accuracy, for several recipes interleaved in one run.

    python -m bench.time_to_accuracy                          # MNIST to 99.0 %: the default recipe vs batch 512
    python -m bench.time_to_accuracy --rounds 3 --target 0.99

Each run trains with ``lenet_cli.engine.trainer.train`` on the full MNIST training
split (validation held out as usual) and scores the raw weights on the
10,000 test images every quarter epoch, the scoring kept off the clock
(``bench.run``'s probe), after one short warm-up run. It stops at the first probe at or above the target,
so no run pays for the epochs after it. The test split is only read here,
never used to choose a recipe. Recipes alternate within each round, so a
shared or throttled machine slows them alike; the table shows each recipe's
median over rounds. Only ratios from one run mean anything; say which CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_model, data_dir

# name -> overrides of lenet's MNIST defaults; "b512" is bench.recipes' b512-shift-ema (issue #17's batch-size candidate)
RECIPES: dict[str, dict] = {
    "default": {},
    "b512": {"batch_size": 512, "learning_rate": 4e-3, "warmup_epochs": 1.0, "ema_momentum": 0.998},
}


def seconds_to(target: float, overrides: dict, data, max_epochs: int | None = None) -> dict:
    """Train MNIST's default recipe with ``overrides`` until the test accuracy reaches ``target``."""
    from bench.run import _TestAccuracyProbe
    from lenet_cli.core.config import resolve_config
    from lenet_cli.engine.trainer import LoopPlan, TrainingInterrupted, train

    cfg = resolve_config("mnist", **overrides)
    if max_epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=min(cfg.epochs, max_epochs))
    probe = _TestAccuracyProbe(data.test.images, data.test.labels, len(data.train))

    def reached() -> int | None:
        return signal.SIGINT if probe.rows and probe.rows[-1]["test_accuracy"] >= target else None

    with tempfile.TemporaryDirectory() as run_dir:
        try:
            train(
                LoopPlan(cfg, data, Path(run_dir), callbacks=[probe.callback()], tensorboard=False, should_stop=reached)
            )
        except TrainingInterrupted:
            pass
    hit = next((row for row in probe.rows if row["test_accuracy"] >= target), None)
    return {
        "seconds": hit["train_seconds"] if hit else None,
        "epoch": hit["epoch"] if hit else None,
        "best": max(row["test_accuracy"] for row in probe.rows),
        "batch_size": cfg.batch_size,
        "probes": probe.rows,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="give up after this many epochs (default: the recipe's)"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--train-limit", type=int, default=None, help="the first N training images (a quick check)")
    args = parser.parse_args(argv)
    names = [name for name in args.recipes.split(",") if name]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        parser.error(f"unknown recipes {unknown}; choose from {', '.join(RECIPES)}")
    from lenet_cli.core.tensorflow_env import import_tensorflow
    from lenet_cli.data.loader import load_dataset

    import_tensorflow()
    data = load_dataset("mnist", args.data_dir or data_dir(), train_limit=args.train_limit)
    # one short run first: TensorFlow's one-time start-up (thread pools, oneDNN's first primitives) is no recipe's cost
    seconds_to(2.0, {}, load_dataset("mnist", args.data_dir or data_dir(), train_limit=2048), max_epochs=1)
    results: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names:
            started = time.perf_counter()
            out = seconds_to(args.target, RECIPES[name], data, args.max_epochs)
            results[name].append(out)
            print(
                f"round {round_ + 1} {name}: {out['seconds']} s to {args.target:.1%} (epoch {out['epoch']}); "
                f"{time.perf_counter() - started:.0f} s wall",
                file=sys.stderr,
                flush=True,
            )
    print(f"CPU: {cpu_model()}; MNIST, test accuracy >= {args.target:.1%}; {args.rounds} interleaved rounds\n")
    print("| recipe | batch | median seconds | per round (epoch reached) | vs first |\n|---|---|---|---|---|")
    medians = {}
    for name in names:
        seconds = [r["seconds"] for r in results[name] if r["seconds"] is not None]
        medians[name] = statistics.median(seconds) if len(seconds) == len(results[name]) else None
    first = medians[names[0]]
    for name in names:
        rounds = ", ".join(
            f"{r['seconds']:.0f} s ({r['epoch']})"
            if r["seconds"] is not None
            else f"not reached (best {r['best']:.4f})"
            for r in results[name]
        )
        median = f"{medians[name]:.0f}" if medians[name] is not None else "not reached"
        ratio = f"{medians[name] / first:.2f}x" if medians[name] and first else "-"
        print(f"| {name} | {results[name][0]['batch_size']} | {median} | {rounds} | {ratio} |")
    print("\n" + json.dumps({"cpu": cpu_model(), "target": args.target, "results": results}, default=float))


if __name__ == "__main__":
    main()
