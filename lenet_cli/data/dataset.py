"""What every dataset loader returns: three splits of uint8 28x28 images with their class names.

Pure numpy. The built-in class names of the two datasets lenet knows by heart live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion": (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
}

DATASET_TITLES = {"mnist": "MNIST", "fashion": "Fashion-MNIST"}
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Split:
    """Images as uint8 ``(n, 28, 28)`` (0 = background) and labels as uint8 ``(n,)``."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class Dataset:
    """The three splits of one dataset; ``test`` is only ever used for final scoring.

    A split that was not asked for (``load_dataset(..., splits=...)``) is None.
    ``name`` is a dataset name, or the resolved path of the user's own data.
    """

    name: str
    train: Split | None
    validation: Split | None
    test: Split | None
    source: Path
    classes: tuple[str, ...] | None = None  # None: the built-in CLASS_NAMES[name]
    fingerprint: str | None = None  # sha256 over the files it was read from (see lenet_cli.data.sources.common)
    preprocess: str | None = None  # how pictures become inputs like these: mnist | fashion | none
    skipped: tuple[tuple[str, str], ...] = ()  # pictures left out: (path, why)

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.classes if self.classes is not None else CLASS_NAMES[self.name]

    def split(self, name: str) -> Split:
        found = {"train": self.train, "validation": self.validation, "test": self.test}[name]
        if found is None:
            raise ValueError(f"the {name} split was not loaded; pass it in load_dataset(..., splits=...)")
        return found
