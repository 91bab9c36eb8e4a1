"""The recipe rule of issue #38: accurate on the dataset first, then robust on pictures from other cameras and writers.

    python -m bench.robust_choice RUNS_DIR --dataset fashion [--count 1000]

RUNS_DIR is a ``bench.recipes --keep-runs`` folder (``<dataset>-<candidate>-seed<N>/``
run directories). The rule, decided before the searches it judges:

1. every candidate's mean *validation* accuracy over its seeds (0 and 1);
2. the candidates within ``TOLERANCE`` (0.2 points) of the best of them are
   equals: one seed's spread is about that wide;
3. among those, the default is the one with the best mean accuracy on the
   picture kinds of ``ROBUST_KINDS`` rendered from the run's own
   *validation* split (``bench.picture_kinds --split validation``); a tie
   (the same share of renderings read right, up to rounding) goes to the
   better validation accuracy.

The test split is never read here. For Fashion-MNIST each run also counts
as a second candidate, ``<name>+flip``: the same weights answering the mean
of the picture and its mirror image (test-time flip averaging,
``lenet_cli.core.mirror``), measured the same way.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

from bench.common import cpu_model

TOLERANCE = 0.002  # validation accuracy, as a fraction: candidates this close to the best are equals
ROBUST_KINDS = {"fashion": ("product", "tones", "faint"), "mnist": ("styles", "lowres", "blocks", "bold", "thin")}
KINDS_SEED = 20261207  # the renderings' seed: every candidate reads the same pictures
RUN_NAME = re.compile(r"^(?P<dataset>[a-z]+)-(?P<candidate>.+)-seed(?P<seed>\d+)$")


def score_run(run_dir: Path, dataset: str, count: int) -> dict[str, dict]:
    """For the run's model as it is (``plain``) and, for Fashion-MNIST, flip-averaged (``flip``): the accuracy on the
    whole validation split and on ``count`` validation renderings of each robust kind (the same pictures for both).

    Kept in the run's ``robust_scores.json``, so a search can be scored as its runs finish.
    """
    import tempfile

    from bench.common import data_dir, validation_size_of
    from bench.picture_kinds import render_set
    from lenet_cli.core.mirror import MirrorAveraged
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.data.loader import load_split
    from lenet_cli.data.picture_inputs import expand_inputs
    from lenet_cli.engine.predict import predict_items
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    cache = run_dir / "robust_scores.json"
    key = f"count={count},seed={KINDS_SEED}"
    saved = json.loads(cache.read_text()) if cache.is_file() else {}
    if key in saved:
        return saved[key]
    ref = resolve_model(run_dir)
    loaded = open_model(ref)
    held_out, _ = load_split(dataset, "validation", data_dir(), validation_size=validation_size_of(ref))
    images, labels = (
        held_out.images[:count],
        held_out.labels[:count].astype(int),
    )  # the renderings' originals, as bench.picture_kinds
    one_view = getattr(loaded.predict_fn, "one_view", loaded.predict_fn)  # a run whose recipe flips: its single view
    predictors = {"plain": one_view}
    if dataset == "fashion":
        predictors["flip"] = MirrorAveraged(one_view)
    scores = {
        name: {
            "val_accuracy": float((predict(held_out.images).argmax(1) == held_out.labels.astype(int)).mean()),
            "kinds": {},
        }
        for name, predict in predictors.items()
    }
    with tempfile.TemporaryDirectory(prefix="lenet-robust-") as tmp:
        for kind in ROBUST_KINDS[dataset]:
            paths, truth, _ = render_set(kind, images, labels, Path(tmp) / kind, KINDS_SEED)
            items = expand_inputs([str(p) for p in paths])
            for name, predict in predictors.items():
                answers = list(predict_items(items, predict, CLASS_NAMES[dataset], dataset))
                scores[name]["kinds"][kind] = sum(a.index == y for a, y in zip(answers, truth)) / len(truth)
                print(f"  {run_dir.name} {name} {kind}: {scores[name]['kinds'][kind]:.2%}", file=sys.stderr, flush=True)
    for entry in scores.values():
        entry["kinds_mean"] = statistics.mean(entry["kinds"].values())
    saved[key] = scores
    cache.write_text(json.dumps(saved, indent=2))
    return scores


def choose(rows: list[dict]) -> tuple[list[dict], str]:
    """Rank candidates by the rule; returns one row per candidate (best validation first) and the chosen name."""
    by_name: dict[str, list[dict]] = {}
    for row in rows:
        by_name.setdefault(row["candidate"], []).append(row)
    table = []
    for name, runs in by_name.items():
        kinds = sorted(runs[0]["kinds"])
        table.append(
            {
                "candidate": name,
                "seeds": [r["seed"] for r in runs],
                "val_accuracy": statistics.mean(r["val_accuracy"] for r in runs),
                "kinds": {k: statistics.mean(r["kinds"][k] for r in runs) for k in kinds},
                "kinds_mean": statistics.mean(r["kinds_mean"] for r in runs),
            }
        )
    table.sort(key=lambda r: -r["val_accuracy"])
    best = table[0]["val_accuracy"]
    equals = [r for r in table if r["val_accuracy"] >= best - TOLERANCE - 1e-12]
    for row in table:
        row["within_tolerance"] = row in equals
    # a tie on the kinds (means of the same counts can differ in the last bit) goes to the better validation accuracy
    return table, max(equals, key=lambda r: (round(r["kinds_mean"], 9), r["val_accuracy"]))["candidate"]


def markdown(dataset: str, table: list[dict], chosen: str, count: int) -> str:
    kinds = list(ROBUST_KINDS[dataset])
    lines = [
        f"Robust recipe rule for `{dataset}` ({cpu_model()}; `python -m bench.robust_choice RUNS --dataset {dataset} --count {count}`): "
        f"candidates within {TOLERANCE:.1%} of the best mean validation accuracy are equals; among them, the best mean "
        f"accuracy on {count} validation renderings of each kind wins.",
        "",
        "| candidate | validation (mean) | within 0.2 | " + " | ".join(kinds) + " | kinds mean |",
        "|---|---|---|" + "---|" * len(kinds) + "---|",
    ]
    for row in table:
        mark = "**" if row["candidate"] == chosen else ""
        lines.append(
            f"| {mark}{row['candidate']}{mark} | {row['val_accuracy']:.2%} | {'yes' if row['within_tolerance'] else 'no'} | "
            + " | ".join(f"{row['kinds'][k]:.1%}" for k in kinds)
            + f" | {row['kinds_mean']:.2%} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, help="a bench.recipes --keep-runs folder")
    parser.add_argument("--dataset", choices=sorted(ROBUST_KINDS), required=True)
    parser.add_argument("--count", type=int, default=1000, help="validation renderings per kind (default 1000)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows and the choice as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for run_dir in sorted(p for p in args.runs.iterdir() if p.is_dir()):
        match = RUN_NAME.match(run_dir.name)
        if not match or match["dataset"] != args.dataset or not (run_dir / "model.keras").is_file():
            continue
        for variant, scores in score_run(run_dir, args.dataset, args.count).items():
            name = match["candidate"] + ("" if variant == "plain" else f"+{variant}")
            row = {"candidate": name, "seed": int(match["seed"]), **scores}
            rows.append(row)
            print(
                f"{name} seed {row['seed']}: validation {row['val_accuracy']:.4f}, kinds {row['kinds_mean']:.4f}",
                file=sys.stderr,
            )
    table, chosen = choose(rows)
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_model(), "rows": rows, "table": table, "chosen": chosen}, indent=2))
    print(markdown(args.dataset, table, chosen, args.count))


if __name__ == "__main__":
    main()
