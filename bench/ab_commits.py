"""Training and inference speed of this checkout against an earlier commit, on the same machine, interleaved.

    python -m bench.ab_commits f0ff0a2                 # 3 rounds: old, new, old, new, ...
    python -m bench.ab_commits f0ff0a2 --rounds 2 --train-limit 12000

A refactor should leave speed unchanged; figures from two machines cannot
show that (they differ 2-3x), so both versions run here, alternating, through
their own ``lenet train`` and ``lenet evaluate`` on the same MNIST data. The
old commit is checked out with ``git worktree`` into a temporary folder and
run from there (``PYTHONPATH``), with the same installed libraries.

Per round and version: ``lenet train`` for ``--epochs`` epochs (images/s of
each epoch after the first, from history.json) and ``lenet evaluate`` on the
10,000 test images (images/s from its report). The table shows medians.
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

from bench.common import REPO, cpu_model, data_dir


def _run(tree: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "lenet_cli", *args],
        cwd=tree,
        env={**env, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: lenet {' '.join(args[:1])} failed: {proc.stderr.strip()[-800:]}")
    return proc


def measure(tree: Path, out: Path, args, env: dict) -> dict:
    """One round of one version: training images/s per epoch (first dropped) and evaluate's images/s."""
    _run(
        tree,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(args.data_dir),
            "--epochs",
            str(args.epochs),
            "--train-limit",
            str(args.train_limit),
            "--batch-size",
            str(args.batch_size),
            "--no-tensorboard",
            "--quiet",
            "--output",
            str(out),
        ],
        env,
    )
    history = json.loads((out / "history.json").read_text())
    report = json.loads(
        _run(tree, ["evaluate", str(out), "--data-dir", str(args.data_dir), "--format", "json"], env).stdout
    )
    return {"train": [h["images_per_second"] for h in history[1:]], "evaluate": report["images_per_second"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("commit", help="the earlier commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=12000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    args.data_dir = args.data_dir or data_dir()
    with tempfile.TemporaryDirectory(prefix="lenet-ab-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.commit], cwd=REPO, check=True, capture_output=True
        )
        try:
            env = {**os.environ, "LENET_RUNS_DIR": str(Path(tmp) / "runs")}
            results: dict[str, list[dict]] = {"old": [], "new": []}
            for round_ in range(args.rounds):
                for name, tree in (("old", old), ("new", REPO)):
                    results[name].append(measure(tree, Path(tmp) / f"{name}-{round_}", args, env))
                    print(f"round {round_ + 1} {name}: {results[name][-1]}", file=sys.stderr, flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=REPO, capture_output=True)
    rows = {
        name: {
            "train": statistics.median(v for r in runs for v in r["train"]),
            "evaluate": statistics.median(r["evaluate"] for r in runs),
        }
        for name, runs in results.items()
    }
    print(
        f"{cpu_model()}: {args.rounds} interleaved rounds, MNIST, {args.train_limit:,} training images x {args.epochs} epochs "
        f"at batch {args.batch_size} (first epoch dropped), evaluate on 10,000 test images\n"
    )
    print(f"| measurement | {args.commit} | this checkout | ratio |\n|---|---|---|---|")
    for key, label in (("train", "lenet train images/s"), ("evaluate", "lenet evaluate images/s")):
        print(
            f"| {label} (median) | {rows['old'][key]:,.0f} | {rows['new'][key]:,.0f} | {rows['new'][key] / rows['old'][key]:.2f}x |"
        )
    print("\n```json\n" + json.dumps(results, indent=1) + "\n```")


if __name__ == "__main__":
    main()
