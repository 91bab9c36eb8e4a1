"""A real recipe search through ``lenet tune``, and the default recipe trained at the same budget beside it.

    python -m bench.tune                                   # Fashion-MNIST, the reduced search bench/RESULTS.md reports
    python -m bench.tune --train-limit 0 --epochs 24 --timeout 40m   # the full budget: four default trainings' time

The search runs the real command (``python -m lenet_cli tune``) in its own
process and study (a SQLite file in a scratch runs folder), so its trials are
ranked by *validation* accuracy only and the test split is read once, for the
winner. The baseline is the current default recipe trained with ``lenet
train`` on the same training subset, epochs and validation split; it is
compared on validation accuracy (its test accuracy is printed by ``lenet
train`` and recorded, never used to choose). Wall time and the CPU time of
both child processes are recorded: on a shared machine the CPU time is the
budget that counts. Results go to ``bench/results/tune_<dataset>.json`` and,
as a table, to stdout.

Never run two benchmarks at once on a 2-core machine: the times would be wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO, cpu_model, data_dir


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run one lenet command; its stderr streams through (the live line, each trial's line); returns it, wall and CPU seconds."""
    cpu, wall = _children_cpu(), time.perf_counter()
    proc = subprocess.run(
        command, stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    return proc, time.perf_counter() - wall, _children_cpu() - cpu


def baseline(args, runs: Path) -> dict:
    """The current default recipe on the same subset and epochs as the search's trials."""
    command = [
        sys.executable,
        "-m",
        "lenet_cli",
        "train",
        "--dataset",
        args.dataset,
        "--data-dir",
        str(args.data_dir),
        "--epochs",
        str(args.epochs),
        "--output",
        str(runs / "baseline"),
        "--runs-dir",
        str(runs),
        "--no-tensorboard",
        "--quiet",
        "--format",
        "json",
    ]
    if args.train_limit:
        command += ["--train-limit", str(args.train_limit)]
    proc, wall, cpu = _run(command)
    if proc.returncode != 0:
        raise SystemExit(f"the baseline run failed (exit {proc.returncode})")
    metrics = json.loads(proc.stdout)
    return {
        "command": command[3:],
        "val_accuracy": metrics["val_accuracy"],
        "test_accuracy": metrics["test_accuracy"],
        "train_seconds": metrics["train_seconds"],
        "wall_seconds": wall,
        "cpu_seconds": cpu,
    }


def search(args, runs: Path) -> dict:
    command = [
        sys.executable,
        "-m",
        "lenet_cli",
        "tune",
        "--dataset",
        args.dataset,
        "--data-dir",
        str(args.data_dir),
        "--epochs",
        str(args.epochs),
        "--trials",
        str(args.trials),
        "--timeout",
        args.timeout,
        "--pruner",
        args.pruner,
        "--study",
        f"{args.dataset}-bench",
        "--runs-dir",
        str(runs),
        "--seed",
        str(args.seed),
        "--format",
        "json",
    ]
    if args.train_limit:
        command += ["--train-limit", str(args.train_limit)]
    proc, wall, cpu = _run(command)
    if proc.returncode != 0:
        raise SystemExit(f"lenet tune failed (exit {proc.returncode})")
    outcome = json.loads(proc.stdout)
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "lenet_cli",
            "tune",
            "--show",
            "--study",
            f"{args.dataset}-bench",
            "--runs-dir",
            str(runs),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    )
    recipe = json.loads(Path(outcome["recipe_file"]).read_text())["recipe"] if outcome.get("recipe_file") else None
    return {
        "command": command[3:],
        "outcome": outcome,
        "trials": json.loads(shown.stdout),
        "recipe": recipe,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
    }


def markdown(result: dict) -> str:
    base, found = result["baseline"], result["search"]
    best = found["outcome"]["best"]
    counts = found["outcome"]["trials"]
    lines = [
        f"{cpu_model()}, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}: `lenet {' '.join(found['command'])}`",
        "",
        "| | validation accuracy | test accuracy (read once) | wall | CPU |",
        "|---|---|---|---|---|",
        f"| default recipe, same subset and epochs | {base['val_accuracy']:.2%} | {base['test_accuracy']:.2%} | "
        f"{base['wall_seconds'] / 60:.1f} min | {base['cpu_seconds'] / 60:.1f} min |",
        f"| best of {sum(counts.values())} trials (trial {best['number']}) | {best['val_accuracy']:.2%} | {best['test_accuracy']:.2%} | "
        f"{found['wall_seconds'] / 60:.1f} min | {found['cpu_seconds'] / 60:.1f} min |",
        "",
        f"trials: {', '.join(f'{n} {s}' for s, n in counts.items() if n)}; pruning saved ~{found['outcome']['pruned_saved_seconds'] / 60:.1f} min",
        "",
        "| trial | state | validation | epochs | " + " | ".join(best["params"]) + " |",
        "|---" * (4 + len(best["params"])) + "|",
    ]
    for t in found["trials"]:
        value = "-" if t["val_accuracy"] is None else f"{t['val_accuracy']:.2%}"
        params = " | ".join(
            f"{t['params'][k]:.3g}" if isinstance(t["params"].get(k), float) else str(t["params"].get(k, "-"))
            for k in best["params"]
        )
        lines.append(f"| {t['number']} | {t['state']} | {value} | {t['epochs_run']}/{t['epochs']} | {params} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion")
    parser.add_argument("--data-dir", type=Path, default=data_dir())
    parser.add_argument("--train-limit", type=int, default=10000, help="training images per trial (0: all 55,000)")
    parser.add_argument("--epochs", type=int, default=4, help="the most epochs a trial trains (the space's cap)")
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--timeout", default="8m", help="no trial starts after this")
    parser.add_argument("--pruner", default="median")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    args.train_limit = args.train_limit or None
    with tempfile.TemporaryDirectory(prefix="lenet-bench-tune-") as scratch:
        runs = Path(scratch) / "runs"
        result = {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_before": os.getloadavg(),
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        result["baseline"] = baseline(args, runs)
        result["search"] = search(args, runs)
        result["load_average_after"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"tune_{args.dataset}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\n(written to {path})", file=sys.stderr)


if __name__ == "__main__":
    main()
