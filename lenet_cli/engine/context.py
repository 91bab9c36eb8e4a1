"""A model's class names and preprocessing, from its metadata: the one place predict, explain and serve ask.

The class names follow the data the model was trained on (its run config or
export metadata carry them); models from before that carried only a dataset
name fall back to that dataset's built-in names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lenet_cli.core.config import PREPROCESS_MODES
from lenet_cli.core.errors import LenetError


def preprocessing_and_classes(meta: dict[str, Any], preprocess: str, model_path: Path) -> tuple[str, tuple[str, ...]]:
    """``(preprocessing mode, class names)`` for a model with metadata ``meta`` (from ``model_io.read_metadata``).

    ``preprocess`` is the user's choice; ``auto`` takes the model's.

    Raises:
        LenetError: the metadata says neither (pass --preprocess), or names no classes.
    """
    from lenet_cli.data.idx import CLASS_NAMES

    dataset = meta.get("dataset")
    if preprocess == "auto":
        preprocess = meta.get("preprocessing") or dataset
        if preprocess is None:
            raise LenetError(f"cannot tell which dataset {str(model_path)!r} was trained on; pass --preprocess mnist or --preprocess fashion")
        if preprocess not in PREPROCESS_MODES:
            preprocess = "mnist"  # the MNIST family: digit-like pictures
    names = meta.get("class_names") or CLASS_NAMES.get(dataset or "") or CLASS_NAMES.get(preprocess)
    if not names:
        raise LenetError(f"cannot tell the class names of {str(model_path)!r}; pass --preprocess mnist or --preprocess fashion")
    return preprocess, tuple(str(name) for name in names)
