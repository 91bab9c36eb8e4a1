"""How well ``lenet predict`` reads realistic pictures of test-set images.

Renders test images (the last ``--count`` of the test split, seeded) as
photographed / drawn files — dark ink on light paper at 80-320 px, off-centre,
blurred, noisy, unevenly lit, as grayscale PNG, RGB PNG, JPEG, and RGBA with
ink only in the alpha channel (Fashion: dark on white, 200-600 px) — then runs
the real ``lenet predict`` path on them and compares with the labels, beside
the model's accuracy on the same original 28x28 test images.

    python -m bench.predict_accuracy RUN_DIR [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from bench.common import model_and_test_images


def measure(run_dir: Path, count: int = 2000, seed: int = 20261127) -> dict:
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.data.picture_inputs import expand_inputs
    from lenet_cli.engine.predict import predict_items
    from tests.helpers.renderings import FORMATS, write_renderings

    ref, loaded, images, labels, original = model_and_test_images(run_dir, count)
    dataset = loaded.dataset
    result = {
        "dataset": dataset,
        "count": count,
        "model": str(ref.model_path),
        "original_accuracy": original,
        "per_format": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FORMATS:
            folder = Path(tmp) / fmt
            paths = write_renderings(images, folder, seed=seed, formats=(fmt,), style=dataset)
            items = expand_inputs([str(p) for p in paths])
            predictions = list(predict_items(items, loaded.predict, CLASS_NAMES[dataset], dataset))
            correct = sum(p.index == int(y) for p, y in zip(predictions, labels))
            result["per_format"][fmt] = {
                "accuracy": correct / count,
                "errors": sum(p.error is not None for p in predictions),
            }
    result["rendered_accuracy"] = float(np.mean([v["accuracy"] for v in result["per_format"].values()]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    print(json.dumps(measure(args.run_dir, args.count), indent=2))


if __name__ == "__main__":
    main()
