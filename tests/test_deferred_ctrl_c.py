"""A Ctrl-C held back while a native library loads is delivered, once, to the handler that was in place."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from lenet_cli.core.deferred_ctrl_c import ctrl_c_deferred


@pytest.fixture(autouse=True)
def interruptible():
    """Python's own SIGINT handler, as in a terminal (CI may start the tests with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c_now() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # Python runs the handler at the next instruction after the signal arrives


def test_a_ctrl_c_inside_the_block_is_raised_on_leaving_it():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_deferred():
            _ctrl_c_now()
            _ctrl_c_now()
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_ctrl_c_the_block_runs_and_leaves_the_handler_as_it_was():
    with ctrl_c_deferred():
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_handler_in_place_gets_the_signal_once():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with ctrl_c_deferred():
            _ctrl_c_now()
            _ctrl_c_now()
            assert calls == []
        assert calls == [signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_ignored_ctrl_c_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with ctrl_c_deferred():
            _ctrl_c_now()
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_error_in_the_block_still_restores_the_handler_and_delivers():
    with pytest.raises(KeyboardInterrupt) as caught:
        with ctrl_c_deferred():
            _ctrl_c_now()
            raise ImportError("initialization failed")
    assert isinstance(caught.value.__context__, ImportError)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_off_the_main_thread_the_block_runs_untouched():
    seen = []

    def worker():
        with ctrl_c_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]
