"""The search: run trials until the study holds its target of finished ones, or the timeout passes.

With other workers on the same study, a worker that finds the last trials
running elsewhere waits for them (or for their heartbeats to lapse, and then
retries them), so every worker ends with the same count. A trial stopped by a
signal is failed in the study and queued again, so continuing the study retries it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.errors import LenetError, RunError
from lenet_cli.core.units import plural
from lenet_cli.engine import tracking
from lenet_cli.engine.interrupted import TrainingInterrupted
from lenet_cli.engine.tune.events import TuneEvents, TuneInterrupted
from lenet_cli.engine.tune.objective import Objective
from lenet_cli.engine.tune.records import best_of, counts, describe_trial
from lenet_cli.engine.tune.request import MAX_RETRIES, TuneRequest
from lenet_cli.engine.tune.storage import OpenStudy, load_optuna, storage_guard
from lenet_cli.engine.tune.tracking import end_study

MAX_FAILURES_IN_A_ROW = 3  # then the search stops: something is wrong beyond one recipe


def search(
    request: TuneRequest, opened: OpenStudy, space: tune_space.Space, events: TuneEvents | None = None
) -> tuple[int, str]:
    """Run trials until the study holds ``request.target`` finished ones, or the timeout passes.

    Returns:
        ``(trials this process ran, why it stopped)``.

    Raises:
        TuneInterrupted: ``events.should_stop`` returned a signal; the trial it stopped is failed and queued again.
        StorageLost: the study's database went away; the running trial is left for its heartbeats to lapse.
        RunError: :data:`MAX_FAILURES_IN_A_ROW` trials failed in a row.
    """
    try:
        with storage_guard(opened):
            return _Search(request, opened, space, events or TuneEvents()).run()
    except BaseException as exc:
        interrupted = isinstance(exc, (TuneInterrupted, KeyboardInterrupt))
        end_study(opened.tracker, tracking.STATUS_KILLED if interrupted else tracking.STATUS_FAILED)
        raise


class _Search:
    """One process's share of a search: its trials run one at a time, its counts kept for the live line's ETA."""

    def __init__(self, request: TuneRequest, opened: OpenStudy, space: tune_space.Space, events: TuneEvents):
        self.request = request
        self.opened = opened
        self.events = events
        started = time.monotonic()
        self.deadline = started + request.timeout if request.timeout is not None else None
        self.common: dict[str, Any] = {
            "durations": [],
            "target": request.target,
            "finished": 0,
            "best": None,
            "best_trial": None,
            "deadline": self.deadline,
        }
        self.objective = Objective(request, opened, space, self.common, events)
        self.ran = 0
        self.failures = 0

    def _stop_if_asked(self) -> None:
        signum = self.events.stop_signal()
        if signum:
            raise TuneInterrupted(signum, None, self.opened.name)

    def run(self) -> tuple[int, str]:
        study, target = self.opened.study, self.request.target
        waited = False
        while True:
            self._stop_if_asked()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                return self.ran, "timeout"
            load_optuna().storages.fail_stale_trials(study)  # each goes back in the queue (Optuna's retry callback)
            finished, running, waiting = counts(study)
            if target is not None and finished >= target:
                return self.ran, "trials"
            if target is not None and not waiting and finished + running >= target:
                if not waited:
                    self.events.say(
                        f"waiting for {plural(running, 'trial')} running elsewhere (a stopped worker's trial is "
                        f"retried {2 * self.request.heartbeat} s after its last heartbeat)"
                    )
                waited = True
                self._sleep(min(5.0, self.request.heartbeat))
                continue
            waited = False
            self.common["finished"] = finished
            self.common["best"], self.common["best_trial"] = best_of(study)
            self._one_trial()

    def _one_trial(self) -> None:
        optuna = load_optuna()
        study, objective = self.opened.study, self.objective
        objective.current = None
        trial_started = time.monotonic()
        try:
            study.optimize(objective, n_trials=1, catch=(LenetError,))
        except (TrainingInterrupted, KeyboardInterrupt) as exc:
            _requeue(study, objective.current)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TuneInterrupted(exc.signum, objective.current, self.opened.name) from None
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker found this trial's heartbeats late (a stalled machine) and failed it; it is retried there
            self.events.say(
                f"trial {objective.current} was failed by another worker (no heartbeat for "
                f"{2 * self.request.heartbeat} s) and is queued again; its result here is dropped"
            )
        self.ran += 1
        self.common["durations"].append(time.monotonic() - trial_started)
        if objective.current is None:
            return
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == objective.current)
        self.events.say(describe_trial(trial, best_of(study)))
        self.failures = self.failures + 1 if trial.state == optuna.trial.TrialState.FAIL else 0
        if self.failures >= MAX_FAILURES_IN_A_ROW:
            raise RunError(
                f"{plural(self.failures, 'trial')} failed in a row (the last: "
                f"{trial.user_attrs.get('error') or 'see its run'}); the search stopped"
            )

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._stop_if_asked()
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))


def _requeue(study, number: int | None) -> None:
    """The interrupted trial is failed (Optuna did it); queue its parameters again so that continuing the study retries it."""
    if number is None:
        return
    optuna = load_optuna()
    with contextlib.suppress(Exception):
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == optuna.trial.TrialState.FAIL:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)
