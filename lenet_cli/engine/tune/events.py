"""What a search tells its caller while it runs, and how the caller stops it: lenet's engine never prints.

The command line turns :class:`TuneEvents` into lines on stderr and a live line
that rewrites itself; a Python caller may pass none of them, or its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class TuneProgress:
    """Where the search is, for a live line: the trial, its epoch and step, the best so far, and the time left."""

    trial: int
    epoch: int  # 1-based: the epoch in progress
    epochs: int
    step: int
    steps: int
    finished: int  # finished trials in the study when this one started
    target: int | None
    best: float | None
    best_trial: int | None
    eta_seconds: float | None


@dataclass(frozen=True)
class TuneEvents:
    """The caller's side of a search: where its lines and live progress go, and when it should stop.

    Attributes:
        log: Receives one line per notable step (the study opened, each trial's end, waiting for other workers).
        progress: Receives the live line's facts a few times a second while a trial trains.
        should_stop: Polled between trials and after every training step; a signal number stops the search.
        searching: Entered around the trials only, not while the study is opened or its results written (the command
            line catches Ctrl-C there, to fail the running trial cleanly, and clears its live line on the way out).
    """

    log: Callable[[str], None] | None = None
    progress: Callable[[TuneProgress], None] | None = None
    should_stop: Callable[[], int | None] | None = None
    searching: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext

    def say(self, line: str) -> None:
        if self.log is not None:
            self.log(line)

    def stop_signal(self) -> int | None:
        return self.should_stop() if self.should_stop is not None else None


class TuneInterrupted(Exception):
    """A signal stopped the search; the trial it stopped (if any) is failed in the study and queued to be retried."""

    def __init__(self, signum: int, trial: int | None, study: str):
        super().__init__(f"interrupted by signal {signum}" + (f" during trial {trial}" if trial is not None else ""))
        self.signum = signum
        self.trial = trial
        self.study = study
