"""Import TensorFlow quietly, fast, and only when a command really needs it.

TensorFlow prints oneDNN and CPU-feature notices on import; they reach the
user only when ``LENET_TF_LOG=1`` (or ``--debug``) asks for them.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512
VNNI/BF16 or AMX; on an AVX2 CPU it falls back to Eigen convolutions that run
the conv backward passes at a fifth of the speed (profile in
bench/RESULTS.md). lenet turns them on unless ``TF_ENABLE_ONEDNN_OPTS`` is
already set, so ``TF_ENABLE_ONEDNN_OPTS=0`` restores TensorFlow's own choice.
"""

from __future__ import annotations

import os

TF_LOG_ENV = "LENET_TF_LOG"
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prepare_tensorflow_env() -> None:
    """Before TensorFlow is imported: oneDNN kernels on, and its C++ chatter silenced unless asked for.

    Both are read once, when TensorFlow loads, so every entry point calls this first.
    """
    os.environ.setdefault(ONEDNN_ENV, "1")
    if os.environ.get(TF_LOG_ENV, "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tensorflow():
    """Return the ``tensorflow`` module, imported with the chatter silenced."""
    prepare_tensorflow_env()
    import tensorflow as tf

    if os.environ.get(TF_LOG_ENV, "") in ("", "0"):
        tf.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass
    return tf
