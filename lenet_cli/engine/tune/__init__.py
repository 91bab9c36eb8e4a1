"""``lenet tune``'s work: an Optuna study whose trials are calls to the training engine.

A trial draws a recipe from the space (:mod:`lenet_cli.core.tune_space`),
trains it with :func:`lenet_cli.engine.train.train` into an ordinary run
directory, ``<runs>/tune/<study>/trial-<n>/``, and scores it by its final
*validation* accuracy; the trials never read the test split. Every epoch
reports validation accuracy to the pruner, which may stop the trial before
its next epoch. The study lives in an Optuna storage: a SQLite file by
default, or a PostgreSQL or MySQL database that any number of processes on
any machines share. When the search stops, the best trial's model is scored
on the test split once, and its recipe and the study's plots are written
beside the study. Nothing here prints: people's lines and live progress go to
the caller's :class:`TuneEvents`. Optuna is imported only when a study is opened.

The modules, from the bottom up: :mod:`.request` (what is asked, checked when
it is built), :mod:`.events`, :mod:`.storage` (the database), :mod:`.records`
(reading trials), :mod:`.study` (opening and showing a study), :mod:`.tracking`
(MLflow), :mod:`.objective` (one trial), :mod:`.search`, :mod:`.results` and
:mod:`.workflow` (:func:`run_tune`, which the command line and the API call).
"""

from __future__ import annotations

from lenet_cli.engine.tune.events import TuneEvents, TuneInterrupted, TuneProgress
from lenet_cli.engine.tune.records import TrialRecord
from lenet_cli.engine.tune.request import DEFAULT_TRIALS, TuneRequest
from lenet_cli.engine.tune.results import TuneOutcome
from lenet_cli.engine.tune.study import show
from lenet_cli.engine.tune.workflow import run_tune, tune

__all__ = [
    "DEFAULT_TRIALS",
    "TrialRecord",
    "TuneEvents",
    "TuneInterrupted",
    "TuneOutcome",
    "TuneProgress",
    "TuneRequest",
    "run_tune",
    "show",
    "tune",
]
