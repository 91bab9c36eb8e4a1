"""``lenet tune``'s work: an Optuna study whose trials are calls to the training engine.

A trial draws a recipe from the space (:mod:`lenet_cli.core.tune_space`),
trains it with :func:`lenet_cli.engine.train.train` into an ordinary run
directory, ``<runs>/tune/<study>/trial-<n>/``, and scores it by its final
*validation* accuracy; the trials never read the test split. Every epoch
reports validation accuracy to the pruner, which may stop the trial before
its next epoch (its run keeps config, history and metrics, no model). The
study lives in an Optuna storage: a SQLite file by default, or a PostgreSQL
or MySQL database that any number of processes on any machines share. Each
running trial sends heartbeats; a trial whose worker died is failed by the
next worker that looks, and put back in the queue for another to retry.

When the search stops, the best trial's model is scored on the test split
(once per best trial: the result is kept in the study), and its recipe, the
optimisation history and the parameter importances are written beside the
study. Nothing here prints: people's lines go to ``log``, live progress to
``progress``. Optuna is imported only when a study is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.config import resolve_config
from lenet_cli.core.errors import BadValue, LenetError
from lenet_cli.core.units import human_duration, plural
from lenet_cli.store import runs

DEFAULT_TRIALS = 20  # with neither --trials nor --timeout
DEFAULT_HEARTBEAT = 60  # seconds between a running trial's heartbeats; a trial silent for twice this is failed
MAX_RETRIES = 3  # a trial whose worker died is queued again at most this often
MAX_FAILURES_IN_A_ROW = 3  # then the search stops: something is wrong beyond one recipe
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
BEST_SUFFIX = "-best.json"
PLOT_SUFFIXES = {"history": "-history.png", "importances": "-importances.png"}
LENET_ATTR = "lenet"  # the study's user attribute: what it tunes (dataset, training subset), checked when it is opened again
TEST_ATTR = "lenet_test"  # the study's user attribute: the best trial's test accuracy, read once


@dataclass(frozen=True)
class TuneRequest:
    """What ``lenet tune`` (and :func:`lenet_cli.api.tune`) is asked to do.

    Attributes:
        dataset: A dataset name or the path of your own data.
        data_dir: Where a named dataset's files are (None: ``$LENET_DATA_DIR``, then the cache).
        runs_dir: The runs folder; trials go to ``<runs_dir>/tune/<study>/trial-<n>/``.
        study: The study's name (None: the dataset's).
        storage: An Optuna storage URL (None: ``sqlite:///<runs_dir>/tune/<dataset>.db``).
        trials: Finished (complete or pruned) trials the study should hold, counted across machines and runs
            (None: :data:`DEFAULT_TRIALS`, or no limit with ``timeout``).
        timeout: Seconds after which this process starts no new trial.
        pruner: ``median``, ``hyperband`` or ``none``.
        heartbeat: Seconds between a running trial's heartbeats; one silent for twice this is failed and retried.
        space_file: A TOML or JSON file that changes the default space (:mod:`lenet_cli.core.tune_space`).
        train_limit: Train every trial on only the first N training images.
        validation_size: Training images held out to score the trials (None: the dataset's default).
        epochs: The most epochs a trial trains (caps the space's ``epochs``).
        seed: Every trial's training seed; also seeds the sampler of a study kept in a local SQLite file.
    """

    dataset: str = "mnist"
    data_dir: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    study: str | None = None
    storage: str | None = None
    trials: int | None = None
    timeout: float | None = None
    pruner: str = "median"
    heartbeat: int = DEFAULT_HEARTBEAT
    space_file: str | os.PathLike | None = None
    train_limit: int | None = None
    validation_size: int | None = None
    epochs: int | None = None
    seed: int = 0

    @property
    def target(self) -> int | None:
        """The finished trials the study should hold (None: until the timeout)."""
        return self.trials if self.trials is not None else (None if self.timeout is not None else DEFAULT_TRIALS)


@dataclass(frozen=True)
class TrialRecord:
    """One row of ``lenet tune --show``: a trial as people and programs read it.

    ``val_accuracy`` is the score of a complete trial, and the last reported
    epoch's of any other; ``epochs_run`` counts the epochs it reported.
    """

    number: int
    state: str  # complete | pruned | running | failed | waiting
    val_accuracy: float | None
    epochs_run: int
    epochs: int | None
    seconds: float | None
    params: dict[str, Any]
    run_dir: str | None
    host: str | None
    retry_of: int | None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


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


@dataclass
class TuneOutcome:
    """A search that stopped: the study's trials, the best one with its test accuracy, and the files written."""

    study: str
    storage: str  # the URL, password hidden
    dataset: str
    records: list[TrialRecord]
    best: TrialRecord | None
    test_accuracy: float | None
    test_note: str | None  # why there is no test accuracy, when there is none
    recipe_file: Path | None
    plots: dict[str, Path]
    plots_skipped: dict[str, str]
    ran: int  # trials this process ran
    stop_reason: str
    saved_seconds: float = 0.0  # training time the pruned trials did not spend (estimated from their own epochs)

    def counts(self) -> dict[str, int]:
        found = {state: 0 for state in ("complete", "pruned", "running", "failed", "waiting")}
        for record in self.records:
            found[record.state] = found.get(record.state, 0) + 1
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study, "storage": self.storage, "dataset": self.dataset, "stop_reason": self.stop_reason,
            "trials": self.counts(), "ran_here": self.ran, "pruned_saved_seconds": self.saved_seconds,
            "best": None if self.best is None else {**self.best.to_dict(), "test_accuracy": self.test_accuracy},
            "test_note": self.test_note, "recipe_file": None if self.recipe_file is None else str(self.recipe_file),
            "plots": {name: str(path) for name, path in self.plots.items()}, "plots_skipped": self.plots_skipped,
        }


class TuneInterrupted(Exception):
    """A signal stopped the search; the trial it stopped (if any) is failed in the study and queued to be retried."""

    def __init__(self, signum: int, trial: int | None, study: str):
        super().__init__(f"interrupted by signal {signum}" + (f" during trial {trial}" if trial is not None else ""))
        self.signum = signum
        self.trial = trial
        self.study = study


# --- Names and places ----------------------------------------------------------------


def dataset_label(dataset: str) -> str:
    """A dataset as a study and file name: its name, or the last part of its path."""
    return dataset if os.sep not in dataset and "/" not in dataset else Path(dataset).name


def study_name(request: TuneRequest) -> str:
    """The study's name: ``--study``, else the dataset's.

    Raises:
        BadValue: a name that cannot also be a folder name (field ``study``).
    """
    name = request.study or re.sub(r"[^A-Za-z0-9._-]", "-", dataset_label(request.dataset)).lstrip(".-_") or "study"
    if not STUDY_NAME.match(name):
        raise BadValue("study", f"--study {name!r}: use letters, digits, '.', '_' and '-' (it names the trials' folder)")
    return name


def tune_root(runs_dir: str | os.PathLike | None) -> Path:
    """``<runs root>/tune``: the default study files, the trials' folders and the results."""
    return runs.runs_root(runs_dir) / runs.TUNE_DIR


def default_storage(request: TuneRequest) -> str:
    return f"sqlite:///{(tune_root(request.runs_dir) / dataset_label(request.dataset)).as_posix()}.db"


def shown_url(url: str) -> str:
    """A storage URL fit to print: its password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as given, minus anything after a colon in the user part
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


# --- Opening a study -----------------------------------------------------------------------


def _optuna():
    """Optuna, quiet: its own log lines and experimental-feature warnings are not for lenet's users."""
    import warnings

    try:
        import optuna
    except ModuleNotFoundError:
        from lenet_cli.core.errors import MissingExtra

        raise MissingExtra("lenet tune needs Optuna: pip install 'lenet-cli[tune]'", hint="pip install 'lenet-cli[tune]'") from None
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _driver_url(url: str) -> str:
    """``postgresql://`` through psycopg 3 (the tune extra's driver) when psycopg2 is absent; anything else as given."""
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername == "postgresql" and importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is not None:
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def connect(url: str, heartbeat: int = DEFAULT_HEARTBEAT):
    """An Optuna RDB storage with heartbeats, whose dead workers' trials are queued again.

    Raises:
        BadValue: the URL is malformed, names a database that cannot be reached or opened, or needs a driver
            that is not installed (field ``storage``).
    """
    optuna = _optuna()
    import sqlalchemy.exc

    shown = shown_url(url)
    try:
        driver_url = _driver_url(url)
        kwargs: dict[str, Any] = {}
        if driver_url.startswith("sqlite"):
            kwargs = {"connect_args": {"timeout": 60}}  # the heartbeat thread and the trial share the file
        elif driver_url.startswith("postgresql"):
            kwargs = {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
        elif driver_url.startswith("mysql"):
            kwargs = {"pool_pre_ping": True}
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(
                    driver_url, engine_kwargs=kwargs, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(0.5 + attempt)  # workers that start together race to create a new database's tables: the loser waits
        raise AssertionError("unreachable")
    except (ModuleNotFoundError, ImportError) as exc:
        raise BadValue("storage", f"--storage {shown}: its database driver is not installed ({exc}); PostgreSQL works with the "
                                  f"tune extra (pip install 'lenet-cli[tune]'), MySQL with pip install pymysql and mysql+pymysql://") from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise BadValue("storage", f"--storage {shown}: cannot open the study database ({detail}); check the URL, that the "
                                  f"server runs and that the database exists") from None


def _check_url_shape(url: str, default: bool = False) -> None:
    """Refuse a URL that is not a database URL before anything connects (or creates a file); ``default``: lenet's own, made as needed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise BadValue("storage", f"--storage {url!r} is not a database URL; write sqlite:///FILE, "
                                  f"postgresql://USER@HOST/DATABASE or mysql+pymysql://USER@HOST/DATABASE") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise BadValue("storage", f"--storage {url!r}: an in-memory study is lost when the command ends; name a file: sqlite:///FILE")
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir() and not default:
            raise BadValue("storage", f"--storage {url!r}: the folder {str(parent)!r} does not exist")


@dataclass
class OpenStudy:
    """A study opened for a search or for ``--show``."""

    study: Any  # optuna.Study
    name: str
    url: str  # as given (None-free), to connect again
    shown: str
    created: bool


def _study_names(storage) -> list[str]:
    return [summary.study_name for summary in storage.get_all_studies()]


def _fixed_settings(request: TuneRequest) -> dict[str, Any]:
    """What every trial of a study must share to be compared: the data and the training subset."""
    return {"dataset": dataset_label(request.dataset), "train_limit": request.train_limit, "validation_size": request.validation_size}


def _check_study(study, name: str, request: TuneRequest, shown: str, space: tune_space.Space) -> None:
    """An existing study must tune the same data the same way, and with parameters of the same kinds.

    Raises:
        BadValue: another dataset or training subset (field ``study``), or a space whose entries the study
            recorded as another kind of distribution (field ``space``).
    """
    optuna = _optuna()
    settings = study.user_attrs.get(LENET_ATTR)
    if not isinstance(settings, dict):
        raise BadValue("study", f"--study {name} in {shown} was not made by lenet tune; choose another --study")
    for key, value in _fixed_settings(request).items():
        if settings.get(key) != value:
            option = "--" + key.replace("_", "-")
            raise BadValue("study", f"--study {name} in {shown} tunes with {option} {settings.get(key)}, not {value}; "
                                    f"give the same {option} to continue it, or choose another --study")
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise BadValue("study", f"--study {name} in {shown} minimises its objective; lenet tune maximises validation accuracy")
    seen: dict[str, Any] = {}
    for trial in study.get_trials(deepcopy=False):
        seen.update(trial.distributions)
    for option, distribution in seen.items():
        param = space.get(option)
        if param is None or isinstance(param, tune_space.Fixed):
            continue
        wanted = _distribution(param, option)
        try:
            optuna.distributions.check_distribution_compatibility(distribution, wanted)
        except ValueError:
            raise BadValue("space", f"{option}: --study {name} searched it as {_describe_distribution(distribution)}; "
                                    f"a study keeps each parameter's kind (and a list its choices): use another --study") from None


def _distribution(param: tune_space.Param, option: str):
    optuna = _optuna()
    if isinstance(param, tune_space.Choice):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    assert isinstance(param, tune_space.Range)
    if tune_space.LEVERS[option].kind is int:
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log, step=int(param.step or 1))
    return optuna.distributions.FloatDistribution(param.low, param.high, log=param.log, step=param.step)


def _describe_distribution(distribution) -> str:
    if hasattr(distribution, "choices"):
        return "choices " + " | ".join(map(str, distribution.choices))
    return f"a range {distribution.low:g}..{distribution.high:g}"


def _sampler(request: TuneRequest, local: bool, finished_before: int):
    """TPE, multivariate; seeded for a local study (continuing at a seed that depends on its history), from the OS for a shared one.

    Workers of a shared study must not draw the same random start-up trials, and
    ``constant_liar`` keeps them from converging on one point while trials run.
    """
    optuna = _optuna()
    target = request.target or DEFAULT_TRIALS
    seed = request.seed + finished_before if local else None
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, min(10, target // 4)), multivariate=True,
                                      constant_liar=not local)


def _pruner(name: str, max_epochs: int):
    optuna = _optuna()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2)  # never on the first epoch
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(1, max_epochs), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _max_epochs(space: tune_space.Space) -> int:
    param = space["epochs"]
    if isinstance(param, tune_space.Range):
        return int(param.high)
    if isinstance(param, tune_space.Choice):
        return int(max(param.choices))
    return int(param.value)


def _earlier_trials(trials_dir: Path) -> str | None:
    """What a study folder left by another database holds (``fashion``'s trials), or None when it holds none."""
    if not trials_dir.is_dir() or not any(trials_dir.iterdir()):
        return None
    for config_file in sorted(trials_dir.glob("trial-*/" + runs.CONFIG_FILE)):
        config = runs.read_json_or_none(config_file)
        if isinstance(config, dict) and isinstance(config.get("dataset"), str):
            return f"trials of {dataset_label(config['dataset'])}"
    return "files"


def open_study(request: TuneRequest, space: tune_space.Space) -> OpenStudy:
    """Connect to the storage and open the study, or make it; an existing one must fit the request.

    Raises:
        BadValue: a bad storage URL, a study of other data or made by another program, a space the study cannot
            take, or a trials folder left by a study kept elsewhere.
    """
    optuna = _optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    _check_url_shape(url, default=request.storage is None)
    trials_dir = tune_root(request.runs_dir) / name
    earlier = _earlier_trials(trials_dir)
    local_file = Path(url.removeprefix("sqlite:///")) if request.storage is None else None
    if earlier and local_file is not None and not local_file.is_file():
        raise BadValue("study", f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
                                f"give its --storage (or its --dataset), or choose another --study")
    if local_file is not None:
        local_file.parent.mkdir(parents=True, exist_ok=True)
    storage = connect(url, request.heartbeat)
    local = url.startswith("sqlite")
    names = _study_names(storage)
    if name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        _check_study(study, name, request, shown, space)
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(request, local, len(study.get_trials(deepcopy=False))),
                                  pruner=_pruner(request.pruner, _max_epochs(space)))
        return OpenStudy(study, name, url, shown, created=False)
    if earlier:
        raise BadValue("study", f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
                                f"give its --storage, move that folder away, or choose another --study")
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                sampler=_sampler(request, local, 0), pruner=_pruner(request.pruner, _max_epochs(space)))
    import sqlalchemy.exc

    try:
        if LENET_ATTR not in study.user_attrs:
            study.set_user_attr(LENET_ATTR, _fixed_settings(request))
    except sqlalchemy.exc.IntegrityError:  # another worker set it in the same instant
        pass
    _check_study(study, name, request, shown, space)  # also when another worker made it a moment ago
    return OpenStudy(study, name, url, shown, created=True)


# --- Reading a study ------------------------------------------------------------------------

_STATES = {"COMPLETE": "complete", "PRUNED": "pruned", "RUNNING": "running", "FAIL": "failed", "WAITING": "waiting"}


def trial_record(trial) -> TrialRecord:
    """A frozen Optuna trial as a :class:`TrialRecord`."""
    state = _STATES.get(trial.state.name, trial.state.name.lower())
    steps = trial.intermediate_values
    value = trial.value if state == "complete" else (steps[max(steps)] if steps else None)
    if value is not None and not math.isfinite(value):
        value = None
    end = trial.datetime_complete
    seconds = None
    if trial.datetime_start is not None:
        import datetime

        seconds = ((end or datetime.datetime.now()) - trial.datetime_start).total_seconds()
    attrs = trial.user_attrs if state != "waiting" else {}
    return TrialRecord(
        number=trial.number, state=state, val_accuracy=value, epochs_run=len(steps),
        epochs=attrs.get("epochs", trial.params.get("epochs")), seconds=seconds, params=dict(trial.params),
        run_dir=attrs.get("run_dir"), host=attrs.get("host"), retry_of=trial.system_attrs.get("failed_trial"),
    )


def _rank(record: TrialRecord) -> tuple:
    order = {"complete": 0, "pruned": 1, "running": 2, "failed": 3, "waiting": 4}
    return (record.val_accuracy is None, order.get(record.state, 5), -(record.val_accuracy or 0.0), record.number)


def trial_records(study) -> list[TrialRecord]:
    """Every trial of the study, best first: by validation accuracy (complete before pruned at equal values), then state."""
    return sorted((trial_record(t) for t in study.get_trials(deepcopy=False)), key=_rank)


def show(request: TuneRequest, find: bool = False) -> tuple[OpenStudy, list[TrialRecord]]:
    """The study's trials so far, best first, without training or creating anything (``lenet tune --show``).

    Args:
        request: Names the study and its storage as a search would.
        find: Look for the study among the local study files (``<runs>/tune/*.db``) instead of the dataset's:
            the command line does when given neither ``--dataset`` nor ``--storage``.

    Raises:
        BadValue: no such database or study.
    """
    if find and request.storage is None:
        request = _locate_local_study(request)
    opened = _open_for_show(request, only_one=find and request.study is None)
    return opened, trial_records(opened.study)


def _open_for_show(request: TuneRequest, only_one: bool = False) -> OpenStudy:
    """Open an existing study; with ``only_one``, the storage's only study whatever its name."""
    optuna = _optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    _check_url_shape(url, default=request.storage is None)
    if request.storage is None and not Path(url.removeprefix("sqlite:///")).is_file():
        raise BadValue("study", f"no study database {url.removeprefix('sqlite:///')!r} yet; lenet tune --dataset "
                                f"{dataset_label(request.dataset)} makes it")
    storage = connect(url, request.heartbeat)
    names = _study_names(storage)
    if only_one and len(names) == 1:
        name = names[0]
    if name not in names:
        raise BadValue("study", f"no study {name!r} in {shown} (studies there: {', '.join(names) if names else 'none'})")
    return OpenStudy(optuna.load_study(study_name=name, storage=storage), name, url, shown, created=False)


def _locate_local_study(request: TuneRequest) -> TuneRequest:
    """Find the study among ``<runs>/tune/*.db``: the one named ``--study``, or the only one there is."""
    found: list[tuple[str, Path]] = []
    for path in sorted(tune_root(request.runs_dir).glob("*.db")):
        try:
            storage = connect(f"sqlite:///{path.as_posix()}", request.heartbeat)
        except BadValue:
            continue
        found += [(name, path) for name in _study_names(storage)]
    wanted = [(name, path) for name, path in found if request.study in (None, name)]
    if len(wanted) == 1:
        name, path = wanted[0]
        return dataclasses.replace(request, dataset=path.stem, study=name, storage=f"sqlite:///{path.as_posix()}")
    listing = ", ".join(f"{name} ({path})" for name, path in found) or "none"
    if not wanted:
        what = f"no study {request.study!r}" if request.study else "no study"
        raise BadValue("study", f"{what} under {str(tune_root(request.runs_dir))!r} (studies: {listing}); give --dataset or --storage")
    raise BadValue("study", f"several studies under {str(tune_root(request.runs_dir))!r}: {listing}; choose one with --study")


# --- One trial --------------------------------------------------------------------------------


def _trial_callbacks(trial, state: dict, progress: Callable[[TuneProgress], None] | None, steps: int, epochs: int,
                     common: dict[str, Any]):
    """The Keras callback that reports every epoch's validation accuracy, prunes, and feeds the live line.

    A prune decided after epoch k takes effect when epoch k+1 begins, once the
    trainer has written epoch k to the history and checkpoint; after the last
    epoch there is nothing left to save, so the trial completes.
    """
    import keras
    import optuna

    class TrialReporter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self._epoch = 0
            self._shown = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            if state.get("prune_after") is not None:
                raise optuna.TrialPruned(f"pruned after epoch {state['prune_after']}")
            self._epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            now = time.monotonic()
            if progress is not None and (now - self._shown >= 0.25 or batch + 1 == steps):
                self._shown = now
                progress(_progress(state, common, self._epoch, batch + 1, steps, epochs))

        def on_epoch_end(self, epoch, logs=None):
            accuracy = (logs or {}).get("val_accuracy")
            state["epochs_run"] = epoch + 1
            if accuracy is None or not math.isfinite(accuracy):
                return
            trial.report(float(accuracy), epoch + 1)
            state["last"] = float(accuracy)
            if epoch + 1 < epochs and trial.should_prune():
                state["prune_after"] = epoch + 1

    return [TrialReporter()]


def _progress(state: dict, common: dict[str, Any], epoch: int, step: int, steps: int, epochs: int) -> TuneProgress:
    """The live line's facts, with an ETA: this trial's rest at its own pace, then the trials still to run at the mean pace so far."""
    now = time.monotonic()
    done = epoch + step / max(1, steps)
    trial_elapsed = now - state["started"]
    this_left = trial_elapsed / done * (epochs - done) if done > 0 else None
    durations = common["durations"]
    per_trial = sum(durations) / len(durations) if durations else (trial_elapsed / done * epochs if done > 0 else None)
    eta = None
    target = common["target"]
    if target is not None and this_left is not None and per_trial is not None:
        eta = this_left + max(0, target - common["finished"] - 1) * per_trial
    if common["deadline"] is not None:
        left = max(0.0, common["deadline"] - now)
        eta = left if eta is None else min(eta, left + (this_left or 0.0))
    return TuneProgress(trial=state["number"], epoch=epoch + 1, epochs=epochs, step=step, steps=steps, finished=common["finished"],
                        target=target, best=common["best"], best_trial=common["best_trial"], eta_seconds=eta)


def _drop(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _epoch_seconds(run_dir: Path) -> list[float]:
    history = runs.read_json_or_none(run_dir / runs.HISTORY_FILE)
    if not isinstance(history, list):
        return []
    return [float(h["epoch_seconds"]) for h in history if isinstance(h, dict) and isinstance(h.get("epoch_seconds"), (int, float))]


def _keep_pruned(run_dir: Path, cfg, state: dict) -> float:
    """A pruned trial keeps its config, history and a metrics.json that says it was pruned; no model, no checkpoint.

    Returns:
        The training time it saved: its unrun epochs at its own mean epoch time.
    """
    from lenet_cli.store.atomic import write_json_atomic

    _drop(run_dir / runs.CHECKPOINT_FILE)
    _drop(run_dir / runs.MODEL_FILE)
    seconds = _epoch_seconds(run_dir)
    run = len(seconds)
    saved = (sum(seconds) / run) * (cfg.epochs - run) if run else 0.0
    write_json_atomic(run_dir / runs.METRICS_FILE, {
        "dataset": cfg.dataset, "pruned": True, "study": cfg.study, "trial": cfg.trial, "test_accuracy": None,
        "val_accuracy": state.get("last"), "epochs": cfg.epochs, "epochs_completed": run, "train_seconds": sum(seconds),
        "saved_seconds": saved,
    })
    return saved


class _Objective:
    """Optuna's objective: draw a recipe, train it as one ordinary run, return its final validation accuracy."""

    def __init__(self, request: TuneRequest, opened: OpenStudy, space: tune_space.Space, common: dict[str, Any],
                 progress, log, should_stop):
        self.request = request
        self.opened = opened
        self.space = space
        self.common = common
        self.progress = progress
        self.log = log
        self.should_stop = should_stop
        self.current: int | None = None

    def __call__(self, trial) -> float:
        from lenet_cli.engine.train import TrainRequest
        from lenet_cli.engine.train import train as train_run
        from lenet_cli.engine.trainer import TrainingInterrupted

        optuna = _optuna()
        request = self.request
        self.current = trial.number
        values = tune_space.suggest(trial, self.space)
        study_dir = tune_root(request.runs_dir) / self.opened.name
        run_dir = study_dir / f"trial-{trial.number}"
        cfg = resolve_config(request.dataset, **tune_space.config_overrides(values), train_limit=request.train_limit,
                             validation_size=request.validation_size, seed=request.seed, study=self.opened.name, trial=trial.number)
        for key, value in (("run_dir", str(run_dir.resolve())), ("host", socket.gethostname()), ("epochs", cfg.epochs),
                           ("error", None), ("saved_seconds", 0.0)):
            trial.set_user_attr(key, value)
        retry_of = next((t.system_attrs.get("failed_trial") for t in self.opened.study.get_trials(deepcopy=False)
                         if t.number == trial.number), None)
        if self.log:
            again = f" (retrying trial {retry_of})" if retry_of is not None else ""
            self.log(f"trial {trial.number}{again}: " + ", ".join(f"{k} {_value_text(v)}" for k, v in values.items()))
        state: dict[str, Any] = {"number": trial.number, "started": time.monotonic()}

        def callbacks_for(plan):
            steps = math.ceil(len(plan.data.train) / plan.config.batch_size)
            return _trial_callbacks(trial, state, self.progress, steps, plan.config.epochs, self.common)

        train_request = TrainRequest(cfg, data_dir=request.data_dir, output=run_dir, runs_dir=study_dir, tensorboard=False, score_test=False)
        try:
            outcome = train_run(train_request, callbacks_for=callbacks_for, should_stop=self.should_stop)
        except optuna.TrialPruned:
            saved = _keep_pruned(run_dir, cfg, state)
            trial.set_user_attr("saved_seconds", saved)
            raise
        except TrainingInterrupted:
            _drop(run_dir / runs.CHECKPOINT_FILE)  # the trial is retried from scratch under a new number
            raise
        except LenetError as exc:
            trial.set_user_attr("error", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            _drop(run_dir / runs.CHECKPOINT_FILE)
            raise
        finally:
            self._clear_keras()
        accuracy = outcome.metrics.get("val_accuracy")
        if accuracy is None or not math.isfinite(accuracy):
            raise LenetError("the trial has no validation accuracy to be scored by: the validation split is empty")
        trial.set_user_attr("train_seconds", outcome.metrics.get("train_seconds"))
        return float(accuracy)

    @staticmethod
    def _clear_keras() -> None:
        """Each trial builds a new network: drop the previous one's graphs so memory stays flat over a long search."""
        import gc

        with contextlib.suppress(Exception):
            import keras

            keras.utils.clear_session()
        gc.collect()


def _value_text(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


# --- The search ---------------------------------------------------------------------------------


def _counts(study) -> tuple[int, int, int]:
    """(finished: complete or pruned, running, waiting) trials of the study."""
    finished = running = waiting = 0
    for trial in study.get_trials(deepcopy=False):
        name = trial.state.name
        finished += name in ("COMPLETE", "PRUNED")
        running += name == "RUNNING"
        waiting += name == "WAITING"
    return finished, running, waiting


def _best(study) -> tuple[float | None, int | None]:
    try:
        best = study.best_trial
    except ValueError:
        return None, None
    return best.value, best.number


def _fail_stale(study) -> None:
    """Fail the running trials whose worker stopped sending heartbeats; each goes back in the queue (Optuna's retry callback)."""
    import optuna

    optuna.storages.fail_stale_trials(study)


def _sleep(seconds: float, should_stop) -> int | None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        signum = should_stop() if should_stop is not None else None
        if signum:
            return signum
        time.sleep(min(0.25, max(0.0, end - time.monotonic())))
    return None


def _describe_trial(trial, best: tuple[float | None, int | None]) -> str:
    record = trial_record(trial)
    best_text = f"; best {best[0]:.4f} (trial {best[1]})" if best[0] is not None else ""
    took = human_duration(record.seconds)
    if record.state == "complete":
        return f"trial {trial.number} complete: val_accuracy {record.val_accuracy:.4f} after {plural(record.epochs_run, 'epoch')} ({took}){best_text}"
    if record.state == "pruned":
        at = f"val_accuracy {record.val_accuracy:.4f}" if record.val_accuracy is not None else "no score"
        saved = trial.user_attrs.get("saved_seconds") or 0.0
        return (f"trial {trial.number} pruned after epoch {record.epochs_run}/{record.epochs}: {at} ({took}, "
                f"saved ~{human_duration(saved)}){best_text}")
    error = trial.user_attrs.get("error") or "stopped"
    return f"trial {trial.number} failed: {error}{best_text}"


def search(request: TuneRequest, opened: OpenStudy, space: tune_space.Space, *, progress=None, log=None, should_stop=None) -> tuple[int, str]:
    """Run trials until the study holds ``request.target`` finished ones, or the timeout passes.

    With other workers on the same study, a worker that finds the last
    trials running elsewhere waits for them (or for their heartbeats to lapse,
    and then retries them), so every worker ends with the same count.

    Returns:
        ``(trials this process ran, why it stopped)``.

    Raises:
        TuneInterrupted: ``should_stop`` returned a signal; the trial it stopped is failed and queued again.
        LenetError: :data:`MAX_FAILURES_IN_A_ROW` trials failed in a row.
    """
    from lenet_cli.engine.trainer import TrainingInterrupted

    optuna = _optuna()
    study = opened.study
    target = request.target
    started = time.monotonic()
    deadline = started + request.timeout if request.timeout is not None else None
    common: dict[str, Any] = {"durations": [], "target": target, "finished": 0, "best": None, "best_trial": None, "deadline": deadline}
    objective = _Objective(request, opened, space, common, progress, log, should_stop)
    ran = failures = 0
    waited = False
    while True:
        signum = should_stop() if should_stop is not None else None
        if signum:
            raise TuneInterrupted(signum, None, opened.name)
        if deadline is not None and time.monotonic() >= deadline:
            return ran, "timeout"
        _fail_stale(study)
        finished, running, waiting = _counts(study)
        if target is not None and finished >= target:
            return ran, "trials"
        if target is not None and not waiting and finished + running >= target:
            if log and not waited:
                log(f"waiting for {plural(running, 'trial')} running elsewhere (a stopped worker's trial is retried "
                    f"{2 * request.heartbeat} s after its last heartbeat)")
            waited = True
            signum = _sleep(min(5.0, request.heartbeat), should_stop)
            if signum:
                raise TuneInterrupted(signum, None, opened.name)
            continue
        waited = False
        common["finished"] = finished
        common["best"], common["best_trial"] = _best(study)
        objective.current = None
        trial_started = time.monotonic()
        try:
            study.optimize(objective, n_trials=1, catch=(LenetError,))
        except (TrainingInterrupted, KeyboardInterrupt) as exc:
            number = objective.current
            _requeue(study, number)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise TuneInterrupted(exc.signum, number, opened.name) from None
        except optuna.exceptions.UpdateFinishedTrialError:
            # another worker found this trial's heartbeats late (a stalled machine) and failed it; it is retried there
            if log:
                log(f"trial {objective.current} was failed by another worker (no heartbeat for {2 * request.heartbeat} s) and is "
                    f"queued again; its result here is dropped")
        ran += 1
        common["durations"].append(time.monotonic() - trial_started)
        if objective.current is None:
            continue
        frozen = study.get_trials(deepcopy=False)
        trial = next(t for t in frozen if t.number == objective.current)
        if log:
            log(_describe_trial(trial, _best(study)))
        failures = failures + 1 if trial.state == optuna.trial.TrialState.FAIL else 0
        if failures >= MAX_FAILURES_IN_A_ROW:
            raise LenetError(f"{plural(failures, 'trial')} failed in a row (the last: {trial.user_attrs.get('error') or 'see its run'}); "
                             f"the search stopped")


def _requeue(study, number: int | None) -> None:
    """The interrupted trial is failed (Optuna did it); queue its parameters again so that continuing the study retries it."""
    if number is None:
        return
    import optuna

    with contextlib.suppress(Exception):
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
        if trial.state == optuna.trial.TrialState.FAIL:
            optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)(study, trial)


# --- Results --------------------------------------------------------------------------------------


def _test_accuracy(study, best: TrialRecord, data_dir, log) -> tuple[float | None, str | None]:
    """The best trial's test accuracy: read from the study when this trial was scored before, else scored here, once.

    Returns:
        ``(accuracy, None)``, or ``(None, why not)`` when the trial's model is on another machine.
    """
    kept = study.user_attrs.get(TEST_ATTR)
    if isinstance(kept, dict) and kept.get("trial") == best.number and isinstance(kept.get("test_accuracy"), float):
        return kept["test_accuracy"], None
    run_dir = Path(best.run_dir) if best.run_dir else None
    if run_dir is None or not (run_dir / runs.MODEL_FILE).is_file():
        where = f" on {best.host}" if best.host and best.host != socket.gethostname() else ""
        return None, f"trial {best.number}'s model is not here (it ran{where} in {best.run_dir}); its test accuracy is read where it is"
    from lenet_cli.engine.evaluate import EvaluateRequest, evaluate

    if log:
        log(f"scoring trial {best.number}, the best, on the test split (the only time this study reads it)")
    result = evaluate(EvaluateRequest(model=run_dir, data_dir=data_dir, split="test"))
    accuracy = float(result.accuracy)
    study.set_user_attr(TEST_ATTR, {"trial": best.number, "test_accuracy": accuracy, "test_count": int(result.report.get("count") or 0)})
    return accuracy, None


def write_results(request: TuneRequest, opened: OpenStudy, best: TrialRecord, test_accuracy: float | None) -> Path:
    """``<runs>/tune/<study>-best.json``: the best trial's recipe as ``lenet train`` options, with the evidence for it."""
    from lenet_cli.core.config import TrainConfig
    from lenet_cli.store.atomic import write_json_atomic

    assert best.run_dir is not None
    path = tune_root(request.runs_dir) / f"{opened.name}{BEST_SUFFIX}"
    config_file = Path(best.run_dir) / runs.CONFIG_FILE
    if config_file.is_file():
        recipe = tune_space.recipe_of(TrainConfig.load(config_file))
    else:  # the trial ran on another machine: its parameters over the defaults give the same recipe
        fixed = {o: p.value for o, p in tune_space.build_space(request.dataset, request.space_file, request.epochs).items()
                 if isinstance(p, tune_space.Fixed)}
        cfg = resolve_config(request.dataset, **tune_space.config_overrides({**fixed, **best.params}), seed=request.seed)
        recipe = tune_space.recipe_of(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {
        "recipe": recipe,
        "study": opened.name, "storage": opened.shown, "trial": best.number, "val_accuracy": best.val_accuracy,
        "test_accuracy": test_accuracy, "run_dir": best.run_dir,
        "searched_with": {"train-limit": request.train_limit, "validation-size": request.validation_size, "epochs": request.epochs},
        "retrain": f"lenet train --recipe {path}",
    })
    return path


def finish(request: TuneRequest, opened: OpenStudy, ran: int, stop_reason: str, log=None) -> TuneOutcome:
    """The stopped search's summary: the best trial scored on test (once), its recipe file, and the study's plots."""
    from lenet_cli.store.atomic import write_bytes_atomic
    from lenet_cli.viz.tune_plots import study_plots

    study = opened.study
    records = trial_records(study)
    complete = [r for r in records if r.state == "complete"]
    best = max(complete, key=lambda r: (r.val_accuracy or 0.0, -r.number)) if complete else None
    test_accuracy, note, recipe_file = None, None, None
    if best is not None:
        test_accuracy, note = _test_accuracy(study, best, request.data_dir, log)
        recipe_file = write_results(request, opened, best, test_accuracy)
    else:
        note = "no trial has completed yet"
    pngs, skipped = study_plots(study)
    plots = {name: write_bytes_atomic(tune_root(request.runs_dir) / f"{opened.name}{PLOT_SUFFIXES[name]}", png) for name, png in pngs.items()}
    saved = sum(float(t.user_attrs.get("saved_seconds") or 0.0) for t in study.get_trials(deepcopy=False) if t.state.name == "PRUNED")
    return TuneOutcome(opened.name, opened.shown, dataset_label(request.dataset), records, best, test_accuracy, note, recipe_file, plots,
                       skipped, ran, stop_reason, saved)


def prepare(request: TuneRequest, log=None) -> tuple[OpenStudy, tune_space.Space]:
    """Check everything a search needs before anything is made: the space, the data, the storage and the study.

    Raises:
        BadValue: a bad space file, storage URL or study (exit 2 on the command line).
        LenetError: the data cannot be found or read.
    """
    _optuna()  # a missing extra is the first thing said
    name = study_name(request)
    space = tune_space.build_space(request.dataset, request.space_file, request.epochs)
    url = request.storage or default_storage(request)
    _check_url_shape(url, default=request.storage is None)
    from lenet_cli.engine.train import TrainRequest, load_training_data

    if request.validation_size == 0:
        raise BadValue("validation_size", "--validation-size 0 leaves nothing to score the trials on; hold out some images")
    cfg = resolve_config(request.dataset, train_limit=request.train_limit, validation_size=request.validation_size, seed=request.seed)
    _, data, _ = load_training_data(TrainRequest(cfg, data_dir=request.data_dir, score_test=False), log)
    if len(data.validation) == 0:
        raise BadValue("dataset", f"{request.dataset} has no validation split to score trials on")
    opened = open_study(request, space)
    if log:
        finished, running, _ = _counts(opened.study)
        target = request.target
        goal = f"{target} finished trials" if target is not None else "no trial limit"
        until = f", starting none after {human_duration(request.timeout)}" if request.timeout is not None else ""
        searched = [f"{o} {tune_space.describe(p)}" for o, p in space.items() if not isinstance(p, tune_space.Fixed)]
        fixed = [f"{o} {p.value}" for o, p in space.items() if isinstance(p, tune_space.Fixed)]
        log(f"study {name} in {opened.shown}: {'new' if opened.created else plural(finished, 'finished trial')}"
            f"{f', {running} running' if running else ''}; aiming at {goal}{until}; {len(data.train):,} train / "
            f"{len(data.validation):,} validation images; pruner {request.pruner}")
        log("searching " + "; ".join(searched) + (f"; fixed {', '.join(fixed)}" if fixed else ""))
    return opened, space


def tune(request: TuneRequest, *, progress: Callable[[TuneProgress], None] | None = None, log: Callable[[str], None] | None = None,
         should_stop: Callable[[], int | None] | None = None) -> TuneOutcome:
    """Search for the best recipe: open (or continue) the study, run trials, then score and write the best.

    Args:
        request: What to tune, where the study is kept, and for how long.
        progress: Receives the live line's facts a few times a second while a trial trains.
        log: Receives one line per notable step (the study opened, each trial's end, waiting for other workers).
        should_stop: Polled between trials and after every training step; a signal number stops the search.

    Raises:
        BadValue: bad input, found before anything is created.
        TuneInterrupted: ``should_stop`` returned a signal (the trial it stopped is failed and queued again).
        LenetError: the data cannot be read, or trials keep failing.
    """
    opened, space = prepare(request, log)
    ran, reason = search(request, opened, space, progress=progress, log=log, should_stop=should_stop)
    return finish(request, opened, ran, reason, log)

