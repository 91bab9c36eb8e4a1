"""Which tone step should end ``--preprocess fashion``: chosen on pictures rendered from the *validation* split (issue #30).

    python -m bench.fashion_tones RUN_DIR [--count 700] [--candidates lift-faint,stretch]

Renders the first ``--count`` validation images (the first 5,000 training
images, which the run never trained on) as product pictures, product
pictures under other tone curves, and white-on-white articles (the
generators of ``tests/helpers/picture_kinds.py``, seeded apart from
``bench.picture_kinds``'s test renderings), and reads them with the run's
model after each candidate last step of ``preprocess_fashion``. Each step
is also applied straight to every validation image (``dataset``): ``lenet
predict`` leaves an image that already has the dataset's layout as it is,
so this column says what the step costs an article that already looks
like Fashion-MNIST's. The candidate steps:

* ``lift-faint``: the step before issue #30's change: an article whose 99th
  percentile is under 0.58 (Fashion-MNIST's faintest 1 %) is scaled up to it;
* ``stretch``: the shipped :func:`match_fashion_darkness`, a linear stretch
  of the content's 99th percentile to full darkness;
* ``stretch-gamma``: the stretch, then a gamma that moves the content's
  median darkness to Fashion-MNIST's (0.69), the gamma kept in 0.5-2;
* ``histogram``: the stretch, then the content's histogram matched to
  Fashion-MNIST's pooled content histogram.

The test split is not read. Prints one row per candidate, and the whole
result as JSON on stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.common import cpu_model, data_dir, validation_size_of

KINDS = ("product", "tones", "faint")
COLUMNS = (*KINDS, "dataset")
# median over training articles of each one's median content darkness (pixels above 0.05)
FASHION_MEDIAN_DARKNESS = 0.69
OLD_MIN_PEAK = 0.58  # the lift-faint step's level: the 99th percentile of 99 % of Fashion-MNIST's training articles


def lift_faint(out: np.ndarray) -> np.ndarray:
    peak = float(np.quantile(out, 0.99))
    return np.clip(out * (OLD_MIN_PEAK / peak), 0.0, 1.0).astype(np.float32) if 0.0 < peak < OLD_MIN_PEAK else out


def gamma_matcher(stretch: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def match(out: np.ndarray) -> np.ndarray:
        out = stretch(out)
        body = out[out > 0.05]
        if body.size < 10:
            return out
        median = min(max(float(np.median(body)), 0.01), 0.99)
        gamma = float(np.clip(np.log(FASHION_MEDIAN_DARKNESS) / np.log(median), 0.5, 2.0))
        return np.clip(out**gamma, 0.0, 1.0).astype(np.float32)

    return match


def histogram_matcher(
    reference: np.ndarray, stretch: Callable[[np.ndarray], np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    pixels = (reference.astype(np.float32) / 255.0).ravel()
    quantiles = np.quantile(pixels[pixels > 0.05], np.linspace(0.0, 1.0, 101))

    def match(out: np.ndarray) -> np.ndarray:
        out = stretch(out)
        mask = out > 0.05
        if mask.sum() < 10:
            return out
        values = out[mask]
        ranks = np.argsort(np.argsort(values)) / max(values.size - 1, 1)
        matched = out.copy()
        matched[mask] = np.interp(ranks, np.linspace(0.0, 1.0, 101), quantiles)
        return matched.astype(np.float32)

    return match


def render(kind: str, images: np.ndarray, labels: np.ndarray) -> list[bytes]:
    from tests.helpers.picture_kinds import VARIANTS, render_kind

    choices = VARIANTS.get(kind)
    return [
        render_kind(kind, (77, index), image, label=int(label), variant=index % len(choices) if choices else None)
        for index, (image, label) in enumerate(zip(images, labels))
    ]


def measure(run_dir: Path, count: int, names: list[str] | None = None) -> dict:
    from PIL import Image

    import lenet_cli.data.preprocess.recipes as recipes
    from lenet_cli.core.errors import LenetError
    from lenet_cli.data.loader import load_dataset
    from lenet_cli.data.preprocess import PreprocessOptions, preprocess
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    ref = resolve_model(run_dir)
    loaded = open_model(ref)
    if loaded.dataset != "fashion":
        raise SystemExit(f"{run_dir} is a {loaded.dataset} model; this benchmark is for Fashion-MNIST models")
    data = load_dataset("fashion", data_dir(), validation_size=validation_size_of(ref), splits=("train", "validation"))
    validation, train = data.split("validation"), data.split("train")
    images, labels = validation.images[:count], validation.labels[:count].astype(int)
    shipped = recipes.match_fashion_darkness
    candidates: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "lift-faint": lift_faint,
        "stretch": shipped,
        "stretch-gamma": gamma_matcher(shipped),
        "histogram": histogram_matcher(train.images[:20000], shipped),
    }
    unknown = set(names or ()) - set(candidates)
    if unknown:
        raise SystemExit(f"unknown candidates {sorted(unknown)}; choose from {list(candidates)}")
    candidates = {name: step for name, step in candidates.items() if not names or name in names}
    pictures = {kind: render(kind, images, labels) for kind in KINDS}
    dataset = validation.images.astype(np.float32) / 255.0
    result: dict = {
        "model": str(ref.model_path),
        "cpu": cpu_model(),
        "count": count,
        "split": "validation",
        "original_accuracy": accuracy(loaded, images, labels),
        "dataset_images": len(dataset),
        "dataset_accuracy": accuracy(loaded, validation.images, validation.labels),
        "candidates": {},
    }
    try:
        for name, step in candidates.items():
            recipes.match_fashion_darkness = step  # preprocess_fashion looks its last step up here at call time
            row = {}
            for kind in KINDS:
                inputs = []
                for data_bytes in pictures[kind]:
                    try:
                        inputs.append(preprocess(Image.open(io.BytesIO(data_bytes)), PreprocessOptions(mode="fashion")))
                    except LenetError:
                        inputs.append(
                            np.zeros((28, 28), np.float32)
                        )  # refused: counts as wrong unless the model guesses right
                row[kind] = accuracy(loaded, np.stack(inputs)[..., None], labels)
            row["dataset"] = accuracy(
                loaded, np.stack([step(image) for image in dataset])[..., None], validation.labels
            )
            result["candidates"][name] = row
            print(
                f"{name:14s} " + "  ".join(f"{column} {row[column]:.2%}" for column in COLUMNS),
                file=sys.stderr,
                flush=True,
            )
    finally:
        recipes.match_fashion_darkness = shipped
    return result


def accuracy(loaded, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``inputs`` (uint8 as in the IDX files, or float in [0, 1]) the model reads as ``labels``."""
    return float((loaded.predict(inputs).argmax(1) == np.asarray(labels).astype(int)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--count", type=int, default=700, help="validation images per kind (default 700)")
    parser.add_argument("--candidates", help="comma-separated candidate steps (default: all)")
    args = parser.parse_args()
    print(
        json.dumps(measure(args.run_dir, args.count, args.candidates.split(",") if args.candidates else None), indent=2)
    )


if __name__ == "__main__":
    main()
