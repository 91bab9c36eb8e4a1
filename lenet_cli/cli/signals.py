"""How a long command stops: SIGINT / SIGTERM ask it to stop at the next step, and a watchdog ends a stuck start-up.

Apart from the commands because ``lenet train`` and ``lenet tune`` share the
signal handling, and the watchdog guards what no Python exception can reach:
TensorFlow's multi-worker start-up, blocked in C++.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading


class StartupWatchdog:
    """End the process (exit code 1) when a multi-worker cluster is not joined within ``seconds``.

    TensorFlow's cluster start-up blocks in C++ with no timeout of its own, and
    while it waits it may hold the GIL, so no Python exception or thread can
    interrupt it. Two guards: a thread that prints a clear message and calls
    ``os._exit(1)`` (when the GIL is free, e.g. in the first collectives), and
    ``faulthandler.dump_traceback_later`` two seconds later, which runs in C and
    ends the process with a ``Timeout`` stack dump when the GIL is held.
    """

    def __init__(self, seconds: float, what: str):
        self.seconds = seconds
        self.what = what
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self):
        if not self._done.wait(self.seconds):
            sys.stderr.write(
                f"Error: {self.what} did not finish within {self.seconds:g} s (--worker-timeout); "
                "check that every worker is running and reachable at the addresses in TF_CONFIG / --workers\n"
            )
            sys.stderr.flush()
            os._exit(1)

    @classmethod
    def start(cls, seconds: float, what: str) -> StartupWatchdog:
        watchdog = cls(seconds, what)
        sys.stderr.write(f"waiting up to {seconds:g} s for every worker to join (--worker-timeout)\n")
        faulthandler.dump_traceback_later(seconds + 2, exit=True)
        watchdog._thread.start()
        return watchdog

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        self._done.set()


class StopOnSignal:
    """SIGINT / SIGTERM ask training to stop at the next step; a second Ctrl-C aborts at once."""

    def __init__(self):
        self.signum: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __call__(self) -> int | None:
        return self.signum
