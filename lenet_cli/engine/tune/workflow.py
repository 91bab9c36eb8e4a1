"""``lenet tune``'s one workflow, for the command line and the Python API alike: prepare, search, finish.

:func:`run_tune` checks everything a search needs before anything is made,
runs the trials, and writes the results; what happens along the way reaches the
caller through :class:`~lenet_cli.engine.tune.events.TuneEvents`.
"""

from __future__ import annotations

from collections.abc import Callable

from lenet_cli.core import tune_space
from lenet_cli.core.config import resolve_config
from lenet_cli.core.errors import BadValue
from lenet_cli.core.units import human_duration, plural
from lenet_cli.engine import tracking
from lenet_cli.engine.tune.events import TuneEvents, TuneProgress
from lenet_cli.engine.tune.records import counts
from lenet_cli.engine.tune.request import TuneRequest
from lenet_cli.engine.tune.results import TuneOutcome, finish
from lenet_cli.engine.tune.search import search
from lenet_cli.engine.tune.storage import OpenStudy, load_optuna
from lenet_cli.engine.tune.study import open_study
from lenet_cli.engine.tune.tracking import start_study


def run_tune(request: TuneRequest, events: TuneEvents | None = None) -> TuneOutcome:
    """Search for the best recipe: open (or continue) the study, run trials, then score and write the best.

    Args:
        request: What to tune, where the study is kept, and for how long.
        events: Where lines and live progress go, when to stop, and what to enter around the trials.

    Raises:
        BadValue: bad input, found before anything is created.
        MissingExtra: Optuna (or MLflow, when asked for) is not installed.
        TuneInterrupted: ``events.should_stop`` returned a signal (the trial it stopped is failed and queued again).
        StorageLost: the study's database went away mid-study (exit 5 on the command line).
        DataError: the data cannot be read.
        RunError: trials keep failing.
    """
    events = events or TuneEvents()
    opened, space = prepare(request, events.log)
    with events.searching():
        ran, reason = search(request, opened, space, events)
    return finish(request, opened, ran, reason, events.log)


def tune(
    request: TuneRequest,
    *,
    progress: Callable[[TuneProgress], None] | None = None,
    log: Callable[[str], None] | None = None,
    should_stop: Callable[[], int | None] | None = None,
) -> TuneOutcome:
    """:func:`run_tune` with its events given one by one (what :func:`lenet_cli.api.tune` calls)."""
    return run_tune(request, TuneEvents(log=log, progress=progress, should_stop=should_stop))


def prepare(request: TuneRequest, log: Callable[[str], None] | None = None) -> tuple[OpenStudy, tune_space.Space]:
    """Check everything a search needs before anything is made: the space, the data, the storage and the study.

    Raises:
        BadValue: a bad space file, storage or study (exit 2 on the command line).
        DataError: the data cannot be found or read.
    """
    from lenet_cli.engine.train import TrainRequest, load_training_data

    load_optuna()  # a missing extra is the first thing said
    if request.mlflow is not None and not tracking.mlflow_installed():
        raise tracking.missing_mlflow()
    space = tune_space.build_space(request.dataset, request.space_file, request.epochs)
    cfg = resolve_config(
        request.dataset, train_limit=request.train_limit, validation_size=request.validation_size, seed=request.seed
    )
    _, data, _ = load_training_data(TrainRequest(cfg, data_dir=request.data_dir, score_test=False), log)
    if len(data.split("validation")) == 0:
        raise BadValue("dataset", f"{request.dataset} has no validation split to score trials on")
    opened = open_study(request, space)
    if log:
        log(_opening_line(request, opened, len(data.split("train")), len(data.split("validation"))))
        searched = [f"{o} {tune_space.describe(p, o)}" for o, p in space.items() if not isinstance(p, tune_space.Fixed)]
        fixed = [f"{o} {p.value}" for o, p in space.items() if isinstance(p, tune_space.Fixed)]
        log("searching " + "; ".join(searched) + (f"; fixed {', '.join(fixed)}" if fixed else ""))
    opened.tracker = start_study(request, opened, space, log)
    return opened, space


def _opening_line(request: TuneRequest, opened: OpenStudy, train: int, validation: int) -> str:
    finished, running, _ = counts(opened.study)
    target = request.target
    goal = f"{target} finished trials" if target is not None else "no trial limit"
    until = f", starting none after {human_duration(request.timeout)}" if request.timeout is not None else ""
    return (
        f"study {opened.name} in {opened.shown}: {'new' if opened.created else plural(finished, 'finished trial')}"
        f"{f', {running} running' if running else ''}; aiming at {goal}{until}; {train:,} train / "
        f"{validation:,} validation images; pruner {request.pruner}"
    )
