"""Where the real MNIST and Fashion-MNIST files are, for the tests marked ``realdata`` (skipped, with the reason, when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REAL_DATA = Path(os.environ.get("LENET_DATA_DIR") or REPO.parent / "shared" / "datasets")


def real_data_available() -> bool:
    return all(
        (REAL_DATA / "mnist" / name).is_file() for name in ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz")
    )


requires_real_data = pytest.mark.skipif(
    not real_data_available(), reason=f"real MNIST files not found in {REAL_DATA} (set LENET_DATA_DIR)"
)
