"""How well ``lenet predict`` reads each kind of real-world picture (issue #16, item 4).

Renders test-split images (the last ``--count``, seeded) as each picture kind
of ``tests/picture_kinds.py`` — for an MNIST model: bold marker, thin pencil,
low-resolution scan, gamma 0.5-2, grey paper with a soft shadow, JPEG at
quality 30-70, and continental 1s and 7s drawn from strokes; for a Fashion
model: product pictures — writes them as files, runs the real ``lenet
predict`` path on them (decode, preprocess, model) and reports the accuracy
per kind beside the model's accuracy on the same original 28x28 images.
A refused picture ("no content found") counts as wrong.

    python -m bench.picture_kinds RUN_DIR [--count 1000] [--kinds bold,thin]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cpu_model, model_and_test_images

JPEG_MAGIC = b"\xff\xd8"


def render_set(kind: str, images, labels, folder: Path, seed: int) -> tuple[list[Path], list[int]]:
    """Write one picture per test image (continental: drawn 1s and 7s, alternating) and return paths and labels."""
    from tests.helpers.picture_kinds import CONTINENTAL_LABELS, render_kind

    folder.mkdir(parents=True, exist_ok=True)
    paths, truth = [], []
    for index, (image, label) in enumerate(zip(images, labels)):
        if kind == "continental":
            label = CONTINENTAL_LABELS[index % len(CONTINENTAL_LABELS)]
        data = render_kind(kind, (seed, index), image, label=int(label))
        suffix = ".jpg" if data.startswith(JPEG_MAGIC) else ".png"
        path = folder / f"{index:05d}{suffix}"
        path.write_bytes(data)
        paths.append(path)
        truth.append(int(label))
    return paths, truth


def measure(run_dir: Path, count: int = 1000, kinds: list[str] | None = None, seed: int = 20260516) -> dict:
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.data.picture_inputs import expand_inputs
    from lenet_cli.engine.predict import predict_items
    from tests.helpers.picture_kinds import DIGIT_KINDS, FASHION_KINDS

    ref, loaded, images, labels, original = model_and_test_images(run_dir, count)
    dataset = loaded.dataset
    kinds = kinds or list(DIGIT_KINDS if dataset == "mnist" else FASHION_KINDS)
    result = {
        "dataset": dataset,
        "count": count,
        "model": str(ref.model_path),
        "cpu": cpu_model(),
        "original_accuracy": original,
        "per_kind": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            paths, truth = render_set(kind, images, labels, Path(tmp) / kind, seed)
            start = time.perf_counter()
            items = expand_inputs([str(p) for p in paths])
            predictions = list(predict_items(items, loaded.predict, CLASS_NAMES[dataset], dataset))
            seconds = time.perf_counter() - start
            correct = sum(p.index == y for p, y in zip(predictions, truth))
            result["per_kind"][kind] = {
                "accuracy": correct / len(truth),
                "refused": sum(p.error is not None for p in predictions),
                "seconds": round(seconds, 2),
            }
            print(f"{kind}: {correct / len(truth):.2%}", file=sys.stderr)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--count", type=int, default=1000, help="test images per kind (default 1000)")
    parser.add_argument("--kinds", help="comma-separated kinds (default: all for the model's dataset)")
    args = parser.parse_args()
    kinds = args.kinds.split(",") if args.kinds else None
    print(json.dumps(measure(args.run_dir, args.count, kinds), indent=2))


if __name__ == "__main__":
    main()
