"""Draw docs/images/preprocessing-digits.png and preprocessing-fashion.png: pictures as people make them, and the input lenet makes of each.

Run from a checkout, with the real MNIST and Fashion-MNIST test files:

    python docs/figures/preprocessing.py --data-dir DIR

``DIR`` holds ``mnist/`` and ``fashion/`` (as ``lenet train --data-dir``). Each
column is one test image rendered by the seeded generators of
``tests/helpers/picture_kinds.py`` (the ones ``python -m bench.picture_kinds``
measures accuracy on), then turned into the network's 28x28 input by
``lenet_cli.data.preprocess``, the code ``lenet predict`` runs. No model is
involved, so the figure depends on the preprocessing alone.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from lenet_cli.data.idx import load_idx_images  # noqa: E402
from lenet_cli.data.preprocess import PreprocessOptions, preprocess  # noqa: E402
from tests.helpers.picture_kinds import render_kind  # noqa: E402

DIGITS = [  # (kind, test image index, variant, what the picture shows)
    ("bold", 0, None, "fat marker"),
    ("thin", 1, None, "pencil"),
    ("lowres", 2, None, "tiny scan, enlarged"),
    ("shadow", 3, None, "grey paper, shadow"),
    ("gamma", 4, None, "another tone curve"),
    ("jpeg", 7, None, "JPEG, quality 30-70"),
]
ARTICLES = [
    ("product", 0, None, "product photo"),
    ("product", 1, None, "product photo"),
    ("tones", 2, None, "another camera's tones"),
    ("tones", 3, None, "another camera's tones"),
    ("faint", 5, 1, "white on white, 5 %"),
    ("faint", 6, 2, "white on white, 8 %"),
]


def draw(dataset: str, rows, data_dir: Path, output: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = load_idx_images(data_dir / dataset / "t10k-images-idx3-ubyte.gz")
    mode = "mnist" if dataset == "mnist" else "fashion"
    fig, axes = plt.subplots(3, len(rows), figsize=(2.0 * len(rows), 6.4))
    for column, (kind, index, variant, caption) in enumerate(rows):
        picture = Image.open(io.BytesIO(render_kind(kind, (0, index), images[index], variant=variant)))
        network_input = preprocess(picture, PreprocessOptions(mode=mode))
        panels = (
            (images[index], "the dataset's image"),
            (np.asarray(picture.convert("L")), f"{caption}\n{picture.width}x{picture.height} px"),
            (network_input, "lenet's 28x28 input"),
        )
        for row, (pixels, title) in enumerate(panels):
            ax = axes[row, column]
            ax.imshow(pixels, cmap="gray", vmin=0, vmax=1 if pixels.dtype != np.uint8 else 255)
            ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"lenet predict --preprocess {mode}: what each picture becomes (test images of {dataset})", fontsize=11
    )
    fig.tight_layout()
    fig.savefig(output, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding mnist/ and fashion/")
    parser.add_argument("--output-dir", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    draw("mnist", DIGITS, args.data_dir, args.output_dir / "preprocessing-digits.png")
    draw("fashion", ARTICLES, args.data_dir, args.output_dir / "preprocessing-fashion.png")


if __name__ == "__main__":
    main()
