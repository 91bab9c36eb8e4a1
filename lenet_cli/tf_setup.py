"""Import TensorFlow quietly, and only when a command really needs it.

TensorFlow prints oneDNN and CPU-feature notices on import; they reach the
user only when ``LENET_TF_LOG=1`` (or ``--debug``) asks for them.
"""

from __future__ import annotations

import os

TF_LOG_ENV = "LENET_TF_LOG"


def quiet_tensorflow_env() -> None:
    """Silence TensorFlow's C++ start-up chatter unless the user asked for it."""
    if os.environ.get(TF_LOG_ENV, "") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def import_tensorflow():
    """Return the ``tensorflow`` module, imported with the chatter silenced."""
    quiet_tensorflow_env()
    import tensorflow as tf

    if os.environ.get(TF_LOG_ENV, "") in ("", "0"):
        tf.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass
    return tf
