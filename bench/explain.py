"""``lenet explain``'s figures on real MNIST test digits: completeness, localisation, sanity, speed.

    python -m bench.explain [RUN_DIR] [--images N]

Without RUN_DIR it trains the briefly trained model the real-data test uses
(one epoch on 10,000 training images, about 15 s on 2 cores). Prints, as
JSON, over the first N (default 100) test digits:

* Integrated Gradients' completeness gap |sum(attr) - (logit(x) - logit(0))| / |logit(x) - logit(0)|
  (median and worst, after ``lenet explain`` raised the steps where it was over 5 %), how many
  images needed how many steps, and how many stayed unreliable;
* localisation: the share of |attribution| on the ink (non-zero pixels
  dilated by one pixel), mean and worst, for both methods;
* Adebayo et al.'s sanity check: Spearman's rho of |attribution| on the ink,
  trained model vs the same network with re-drawn weights (and two re-drawn
  copies against each other, for scale);
* speed: one image through ``lenet explain``'s worker (attribution, feature
  maps, sheet) after the model is loaded, and 100 images in batches.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_model, data_dir


def _test_images(count: int) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(data_dir() / "mnist" / "t10k-images-idx3-ubyte.gz") as handle:
        images = (
            np.frombuffer(handle.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:count].astype(np.float32) / 255.0
        )
    with gzip.open(data_dir() / "mnist" / "t10k-labels-idx1-ubyte.gz") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8)[:count].astype(np.int64)
    return images, labels


def _train(out: Path) -> None:
    from click.testing import CliRunner

    from lenet_cli.cli.main import cli

    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--dataset",
            "mnist",
            "--data-dir",
            str(data_dir()),
            "--train-limit",
            "10000",
            "--epochs",
            "1",
            "--output",
            str(out),
            "--no-tensorboard",
            "--quiet",
        ],
    )
    if result.exit_code != 0:
        raise SystemExit(result.output)


def _summary(values, worst=max) -> dict:
    """Mean, median and the worst image (``worst=max`` where higher is worse, ``min`` where lower is)."""
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": round(float(values.mean()), 4),
        "median": round(float(np.median(values)), 4),
        "worst": round(float(worst(values)), 4),
    }


def measure(run: Path, count: int) -> dict:
    from lenet_cli.data.dataset import CLASS_NAMES
    from lenet_cli.engine.explain import Explainer
    from lenet_cli.engine.explain_sheets import write_sheet
    from lenet_cli.model import attribution as A
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    images, labels = _test_images(count)
    loaded = open_model(resolve_model(run))
    ig = Explainer(loaded, CLASS_NAMES["mnist"], "integrated-gradients")
    occlusion = Explainer(loaded, CLASS_NAMES["mnist"], "occlusion")
    targets = loaded.predict(images[..., None]).argmax(axis=1)

    checked = ig.attributions(
        images, targets
    )  # the steps raised where the gap is over the limit, as lenet explain does
    maps, gaps = checked.maps, checked.gaps
    occlusion_maps = occlusion.attributions(images, targets).maps
    gradient_fn = A.keras_logit_gradients(loaded.keras_model)
    random_a, _, _ = A.integrated_gradients_batch(
        A.keras_logit_gradients(A.randomized_copy(loaded.keras_model, 1)), images, targets
    )
    random_b, _, _ = A.integrated_gradients_batch(
        A.keras_logit_gradients(A.randomized_copy(loaded.keras_model, 2)), images, targets
    )
    again, _, _ = A.integrated_gradients_batch(gradient_fn, images, targets, steps=100)

    def rho(first, second):
        return [A.spearman(np.abs(a[x > 0]), np.abs(b[x > 0])) for a, b, x in zip(first, second, images)]

    with tempfile.TemporaryDirectory() as tmp:
        timings = {}
        for method, explainer in (("integrated-gradients", ig), ("occlusion", occlusion)):
            explainer.explain(images[:2])  # compile once, as the first batch of a run does
            start = time.perf_counter()
            (one,) = explainer.explain(images[:1])
            one.path = "digit.png"
            write_sheet(one, explainer, Path(tmp) / f"{method}.png", "bench", "mnist", 3)
            timings[f"one_image_{method}_s"] = round(time.perf_counter() - start, 3)
        start = time.perf_counter()
        for index, e in enumerate(ig.explain(images[:100])):
            e.path = f"{index}.png"
            write_sheet(e, ig, Path(tmp) / f"{index}.png", "bench", "mnist", 3)
        timings[f"batch_of_{min(100, count)}_images_integrated_gradients_s"] = round(time.perf_counter() - start, 2)

    return {
        "cpu": cpu_model(),
        "images": count,
        "model_accuracy_on_these_images": round(float(np.mean(targets == labels)), 4),
        "completeness_gap_integrated_gradients": _summary(gaps),
        "steps_used_integrated_gradients": {
            str(k): int(v) for k, v in zip(*np.unique(checked.steps_used, return_counts=True))
        },
        "unreliable_integrated_gradients": int((~checked.reliable).sum()),
        "mass_on_ink_integrated_gradients": _summary([A.mass_on_ink(m, x) for m, x in zip(maps, images)], min),
        "mass_on_ink_occlusion": _summary([A.mass_on_ink(m, x) for m, x in zip(occlusion_maps, images)], min),
        "sanity_rho_trained_vs_randomized": _summary(rho(maps, random_a)),
        "sanity_rho_randomized_vs_randomized": _summary(rho(random_a, random_b)),
        "rho_50_vs_100_steps_same_model": _summary(rho(maps, again), min),
        **timings,
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__.splitlines()[0])
    parser.add_argument("run", nargs="?", type=Path, help="run directory or model file [default: train one briefly]")
    parser.add_argument("--images", type=int, default=100, help="how many MNIST test digits")
    args = parser.parse_args(argv)
    if args.run is not None:
        print(json.dumps(measure(args.run, args.images), indent=2))
        return
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        _train(Path(tmp) / "run")
        print(f"trained 1 epoch on 10,000 images in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        print(json.dumps(measure(Path(tmp) / "run", args.images), indent=2))


if __name__ == "__main__":
    main()
