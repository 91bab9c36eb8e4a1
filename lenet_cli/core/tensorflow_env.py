"""Import TensorFlow quietly, fast, and only when a command really needs it.

TensorFlow prints oneDNN and CPU-feature notices on import; they reach the
user only when ``LENET_TF_LOG=1``, ``LENET_DEBUG=1`` or ``--debug`` asks for
them. ``--debug`` says so through :func:`show_native_logs`, never by writing
to the process environment.

TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512
VNNI/BF16 or AMX; on an AVX2 CPU it falls back to Eigen convolutions that run,
with their gradients, at a half to a third of the speed (profile in
bench/RESULTS.md). lenet turns them on unless ``TF_ENABLE_ONEDNN_OPTS`` is
already set, so ``TF_ENABLE_ONEDNN_OPTS=0`` restores TensorFlow's own choice.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator

from lenet_cli.core.deferred_ctrl_c import ctrl_c_deferred
from lenet_cli.core.env import DEBUG_ENV, TF_LOG_ENV

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"

_native_logs_shown = False  # set by --debug for this process
_silenced_here = False  # TF_CPP_MIN_LOG_LEVEL was set by prepare_tensorflow_env, not by the user


def show_native_logs() -> None:
    """Let TensorFlow's and the runtimes' own notices through in this process (``--debug``).

    ``--debug`` may come after the command's name, when :func:`prepare_tensorflow_env` has already silenced
    TensorFlow: that silencing is undone while TensorFlow is not loaded yet (a level the user set stays).
    """
    global _native_logs_shown, _silenced_here
    _native_logs_shown = True
    if _silenced_here and "tensorflow" not in sys.modules:
        os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        _silenced_here = False


def logs_requested() -> bool:
    """``--debug``, ``LENET_DEBUG=1`` or ``LENET_TF_LOG=1``: let native libraries' notices through."""
    return _native_logs_shown or any(os.environ.get(name, "") not in ("", "0") for name in (DEBUG_ENV, TF_LOG_ENV))


def prepare_tensorflow_env() -> None:
    """Before TensorFlow is imported: oneDNN kernels on, and its C++ chatter silenced unless asked for.

    TensorFlow reads these variables once, when it loads, so every entry point
    calls this first; a variable the user set is never overridden.
    """
    os.environ.setdefault(ONEDNN_ENV, "1")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    global _silenced_here
    if (
        not logs_requested() and "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    ):  # 3: not even its C++ ERROR lines; lenet reports failures itself
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        _silenced_here = True


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Silence C++ notices written straight to file descriptor 2 (and Python warnings) unless logs were asked for.

    TensorFlow's oneDNN notice is logged before absl is initialised, so
    ``TF_CPP_MIN_LOG_LEVEL`` does not hold it back; LiteRT announces its CPU
    delegate and the converters report their settings the same way.
    """
    if logs_requested():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
            warnings.simplefilter("ignore")
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow():
    """Return the ``tensorflow`` module, imported with the chatter silenced.

    Modules that import Keras at their top call this first, so TensorFlow
    is always loaded here, quietly, whichever lenet module asks first, and a
    Ctrl-C during the load takes effect once it is over (see
    :mod:`lenet_cli.core.deferred_ctrl_c`).
    """
    prepare_tensorflow_env()
    if "tensorflow" in sys.modules:
        import tensorflow as tf
    else:
        with ctrl_c_deferred(), quiet_native_stderr():
            import keras  # noqa: F401  (its import loads TensorFlow's remaining native libraries)
            import tensorflow as tf

    if not logs_requested():
        tf.get_logger().setLevel("ERROR")
        try:
            import absl.logging

            absl.logging.set_verbosity(absl.logging.ERROR)
        except ImportError:  # pragma: no cover - absl ships with TensorFlow
            pass
    return tf
