"""Shared benchmark helpers: machine facts, timing, data location."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from lenet_cli.core.machine import cpu_model  # one reading of the CPU for lenet benchmark and the bench scripts

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "datasets"


def data_dir() -> Path:
    return Path(os.environ.get("LENET_DATA_DIR") or DEFAULT_DATA)


def machine_facts() -> dict:
    import keras
    import numpy
    import tensorflow as tf

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": numpy.__version__,
    }


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def onednn_in_use(tf) -> bool:
    """Whether this process's TensorFlow runs oneDNN kernels (TensorFlow's own flag, read after it loaded)."""
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "") == "1"


def validation_size_of(ref) -> int:
    """How many training images a run held out for validation (its ``config.json``; lenet's 5,000 for a bare model file)."""
    return (ref.run_config() or {}).get("validation_size", 5000)


def model_and_test_images(run_dir: Path, count: int, split: str = "test"):
    """A trained model, ``count`` images of a split, their labels, and its accuracy on them.

    The starting point of the picture benchmarks (``predict_accuracy``, ``picture_kinds``), which compare how
    ``lenet predict`` reads rendered pictures with how the model reads the same 28x28 originals. ``test``
    gives the last ``count`` test images; ``validation`` the first ``count`` of the run's own validation
    split (which it never trained on), for choices that must not look at the test split.
    """
    from lenet_cli.data.loader import load_split
    from lenet_cli.runtimes.loading import open_model
    from lenet_cli.store.runs import resolve_model

    ref = resolve_model(run_dir)
    loaded = open_model(ref)
    if split == "validation":
        held_out, _ = load_split(loaded.dataset, "validation", data_dir(), validation_size=validation_size_of(ref))
        images, labels = held_out.images[:count], held_out.labels[:count].astype(int)
    else:
        held_out, _ = load_split(loaded.dataset, "test", data_dir())
        images, labels = held_out.images[-count:], held_out.labels[-count:].astype(int)
    original = float((loaded.predict(images).argmax(1) == labels).mean())
    return ref, loaded, images, labels, original
