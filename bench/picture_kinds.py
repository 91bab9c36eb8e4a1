"""How well ``lenet predict`` reads each kind of real-world picture (issue #16, item 4; issue #30).

Renders test-split images (the last ``--count``, seeded) as each picture kind
of ``tests/helpers/picture_kinds.py`` — for an MNIST model: bold marker, thin
pencil, low-resolution scan, 8x8 block scan (the UCI digits' recipe), gamma 0.5-2, grey paper with a soft shadow, JPEG
at quality 30-70, continental 1s and 7s drawn from strokes, and other
writers' styles drawn from strokes (closed-top and open 4, looped 2, flat-top
3, hooked 9, flag 1); for a Fashion model: product pictures, product
pictures under other tone curves, and faint articles (white on white at 3, 5
and 8 %) — writes them as files, runs the real ``lenet predict`` path on
them (decode, preprocess, model) and reports the accuracy per kind beside
the model's accuracy on the same original 28x28 images, with each kind's
accuracy per class (and its commonest confusions), per variant (style, tone
curve, contrast), and how many answers were flagged ``low_confidence``.
A refused picture ("no content found") counts as wrong. The drawn kinds
take nothing from MNIST, and no check set ever feeds training or the
choice of a recipe.

    python -m bench.picture_kinds RUN_DIR [--count 1000] [--kinds bold,thin] [--split validation]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.common import cpu_model, model_and_test_images

JPEG_MAGIC = b"\xff\xd8"


def render_set(kind: str, images, labels, folder: Path, seed: int) -> tuple[list[Path], list[int], list[str | None]]:
    """Write one picture per test image and return paths, labels and variants.

    ``continental`` alternates drawn 1s and 7s and ``styles`` cycles through the writing styles
    (each is its own digit); ``tones`` and ``faint`` cycle through their curves and contrasts.
    """
    from tests.helpers.picture_kinds import CONTINENTAL_LABELS, VARIANTS, label_of, render_kind

    folder.mkdir(parents=True, exist_ok=True)
    paths, truth, variants = [], [], []
    choices = VARIANTS.get(kind)
    for index, (image, label) in enumerate(zip(images, labels)):
        if kind == "continental":
            label = CONTINENTAL_LABELS[index % len(CONTINENTAL_LABELS)]
        variant = index % len(choices) if choices else None
        if variant is not None:
            label = label_of(kind, variant, int(label))
        data = render_kind(kind, (seed, index), image, label=int(label), variant=variant)
        suffix = ".jpg" if data.startswith(JPEG_MAGIC) else ".png"
        path = folder / f"{index:05d}{suffix}"
        path.write_bytes(data)
        paths.append(path)
        truth.append(int(label))
        named = None if variant is None or choices is None else choices[variant]
        variants.append(named[0] if isinstance(named, tuple) else None if named is None else str(named))
    return paths, truth, variants


def breakdown(predictions, truth: list[int], groups: list, class_names) -> dict:
    """Accuracy, count and the three commonest wrong answers of each group (a class, or a variant)."""
    table: dict = {}
    for prediction, label, group in zip(predictions, truth, groups):
        row = table.setdefault(str(group), {"count": 0, "correct": 0, "confusions": Counter()})
        row["count"] += 1
        if prediction.index == label:
            row["correct"] += 1
        else:
            row["confusions"][class_names[prediction.index] if prediction.error is None else "refused"] += 1
    return {
        group: {
            "count": row["count"],
            "accuracy": row["correct"] / row["count"],
            "confusions": dict(row["confusions"].most_common(3)),
        }
        for group, row in sorted(table.items())
    }


def measure(
    run_dir: Path, count: int = 1000, kinds: list[str] | None = None, seed: int = 20260516, split: str = "test"
) -> dict:
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.data.picture_inputs import expand_inputs
    from lenet_cli.engine.predict import predict_items
    from tests.helpers.picture_kinds import DIGIT_KINDS, FASHION_KINDS, OTHER_WRITERS_KINDS

    ref, loaded, images, labels, original = model_and_test_images(run_dir, count, split)
    dataset = loaded.dataset
    names = CLASS_NAMES[dataset]
    kinds = kinds or list(DIGIT_KINDS + OTHER_WRITERS_KINDS if dataset == "mnist" else FASHION_KINDS)
    result = {
        "dataset": dataset,
        "count": count,
        "split": split,
        "model": str(ref.model_path),
        "cpu": cpu_model(),
        "original_accuracy": original,
        "per_kind": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            paths, truth, variants = render_set(kind, images, labels, Path(tmp) / kind, seed)
            start = time.perf_counter()
            items = expand_inputs([str(p) for p in paths])
            predictions = list(predict_items(items, loaded.predict, names, dataset))
            seconds = time.perf_counter() - start
            correct = sum(p.index == y for p, y in zip(predictions, truth))
            entry = {
                "accuracy": correct / len(truth),
                "refused": sum(p.error is not None for p in predictions),
                "low_confidence": sum(bool(p.low_confidence) for p in predictions),
                "seconds": round(seconds, 2),
                "per_class": breakdown(predictions, truth, [names[y] for y in truth], names),
            }
            if any(v is not None for v in variants):
                entry["per_variant"] = breakdown(predictions, truth, variants, names)
            result["per_kind"][kind] = entry
            print(f"{kind}: {correct / len(truth):.2%}", file=sys.stderr)
            for label, group in ({**entry["per_class"], **entry.get("per_variant", {})}).items():
                confusions = ", ".join(f"{k} {v}" for k, v in group["confusions"].items())
                print(
                    f"  {label}: {group['accuracy']:.1%} of {group['count']}"
                    + (f" (read as {confusions})" if confusions else ""),
                    file=sys.stderr,
                )
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--count", type=int, default=1000, help="test images per kind (default 1000)")
    parser.add_argument("--kinds", help="comma-separated kinds (default: all for the model's dataset)")
    parser.add_argument(
        "--split",
        choices=("test", "validation"),
        default="test",
        help="render the last COUNT test images (default), or the first COUNT of the run's validation split",
    )
    args = parser.parse_args()
    kinds = args.kinds.split(",") if args.kinds else None
    print(json.dumps(measure(args.run_dir, args.count, kinds, split=args.split), indent=2))


if __name__ == "__main__":
    main()
