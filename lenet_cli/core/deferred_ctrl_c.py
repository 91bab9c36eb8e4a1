"""Hold a Ctrl-C back while a native library loads, and deliver it the moment the load is done.

A KeyboardInterrupt raised inside TensorFlow's (or ONNX Runtime's) import lands
in code never written to be interrupted, and three things went wrong in sweeps
of a SIGINT sent 2.1-3.0 s into ``lenet train``:

- pybind11 turns it into ``ImportError: initialization failed``; an optional
  import's ``except ImportError`` then swallows it, and the command trained to
  the end and exited 0 (1 run in 25; CI caught it twice);
- when it strikes inside code a native module runs through ``PyRun_String``,
  CPython marks it unhandled even though it was caught, and ``python -m
  lenet_cli`` printed its one line, then killed itself with SIGINT (8 in 45);
- ``except ImportError`` around an optional runtime would call the Ctrl-C a
  missing extra.

The load takes seconds; holding the signal that long costs the user little, and
afterwards it takes effect exactly as the handler in place would have had it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Run the block with SIGINT only noted; on leaving it, hand a noted SIGINT to the handler that was in place.

    Outside the main thread (where Python runs no signal handlers) and where
    SIGINT's handler was not installed from Python, the block runs as it is.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is None:
        yield
        return
    noted: list[FrameType | None] = []

    def note(signum: int, frame: FrameType | None) -> None:
        noted.append(frame)

    signal.signal(signal.SIGINT, note)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if noted:
            _deliver(previous, noted[0])


def _deliver(handler, frame: FrameType | None) -> None:
    """What SIGINT would have done under ``handler``: call it, take the default action, or nothing when ignored."""
    if callable(handler):
        handler(signal.SIGINT, frame)
    elif handler == signal.SIG_DFL:
        signal.raise_signal(signal.SIGINT)
