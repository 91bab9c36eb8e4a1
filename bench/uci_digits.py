"""Other writers at low resolution: the UCI optical digits (8x8 scans), enlarged, read by ``lenet predict``'s path.

    pip install -r bench/requirements.txt      # scikit-learn, which ships the 1,797 UCI digits in its wheel
    python -m bench.uci_digits MODEL [--resample bilinear|bicubic|nearest|all]

The UCI "Optical Recognition of Handwritten Digits" set (Alpaydin & Kaynak,
1998; 43 writers, none of them MNIST's) was scanned as 32x32 bitmaps and
reduced to 8x8 blocks of ink counts (0-16). Each is drawn here as a picture a
person might have: dark ink on white paper, enlarged to 80x80 with bilinear
interpolation (a soft scan), bicubic (Pillow's default for ``Image.resize``,
and most viewers' smooth zoom) or nearest-neighbour (blocky), written as PNG,
and read through the real ``lenet predict`` path (decode, preprocess,
model). MODEL is anything ``lenet predict --model`` takes (a run, a file, a
built-in's name).

A held-out check: no recipe is chosen on it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import cpu_model

SIDE = 80  # pixels of the enlarged picture
RESAMPLING = ("bilinear", "bicubic", "nearest")  # names of PIL.Image.Resampling, in lower case


def render(block: np.ndarray, resample: str) -> bytes:
    """One 8x8 UCI digit (ink counts 0-16) as PNG bytes: dark ink on white, enlarged to ``SIDE`` pixels."""
    import io

    from PIL import Image

    paper = (255 - np.clip(block / 16.0, 0, 1) * 255).astype(np.uint8)
    picture = Image.fromarray(paper, mode="L").resize((SIDE, SIDE), Image.Resampling[resample.upper()])
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def measure(model: str, resample: str) -> dict:
    from sklearn.datasets import load_digits

    from lenet_cli import api

    digits = load_digits()
    with tempfile.TemporaryDirectory(prefix="lenet-uci-") as tmp:
        paths = []
        for index, block in enumerate(digits.images):
            path = Path(tmp) / f"{index:04d}.png"
            path.write_bytes(render(block, resample))
            paths.append(path)
        answers = api.predict(paths, model=model)
    truth = digits.target.astype(int)
    guessed = np.array([-1 if a.error else a.index for a in answers])
    confusions = Counter(f"{t}->{g}" for t, g in zip(truth, guessed) if t != g)
    return {
        "resample": resample,
        "count": len(truth),
        "accuracy": float(np.mean(guessed == truth)),
        "refused": int(np.sum(guessed < 0)),
        "per_class": {str(d): float(np.mean(guessed[truth == d] == d)) for d in range(10)},
        "commonest_confusions": dict(confusions.most_common(5)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--resample", choices=(*RESAMPLING, "all"), default="all")
    args = parser.parse_args(argv)
    rows = [measure(args.model, r) for r in (RESAMPLING if args.resample == "all" else (args.resample,))]
    for row in rows:
        print(
            f"{row['resample']}: {row['accuracy']:.2%} of {row['count']} ({row['refused']} refused); "
            f"commonest: {row['commonest_confusions']}",
            file=sys.stderr,
        )
    print(json.dumps({"model": args.model, "cpu": cpu_model(), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
