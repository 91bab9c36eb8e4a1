"""Where ``lenet tune``'s studies live: storage URLs, opening (or making) a study that fits the request, and reading its trials.

A study is kept in an Optuna RDB storage: a SQLite file by default
(``<runs>/tune/<dataset>.db``), or a PostgreSQL or MySQL database that any
number of workers on any machines share. Every storage sends heartbeats for
running trials and queues a dead worker's trial again (Optuna's retry
callback). A study remembers what it tunes (the data and the training subset)
and refuses a request for other data. Nothing here prints; Optuna and
SQLAlchemy are imported only when a storage is opened.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import tune_space
from lenet_cli.core.errors import BadValue, StorageLost
from lenet_cli.store import runs

DEFAULT_TRIALS = 20  # with neither --trials nor --timeout
DEFAULT_HEARTBEAT = 60  # seconds between a running trial's heartbeats; a trial silent for twice this is failed
MAX_RETRIES = 3  # a trial whose worker died is queued again at most this often
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# the study's user attribute: what it tunes (dataset, training subset), checked when it is opened again
LENET_ATTR = "lenet"


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
        keep_models: Keep every complete trial's ``model.keras`` (by default only the best trial keeps it; the others keep
            their TensorFlow-free ``model.tflite``, and pruned trials no model at all).
        mlflow: An MLflow tracking URI: the search is one parent run there and each trial a nested run (None:
            ``$MLFLOW_TRACKING_URI``; no tracking when that is unset too).
        mlflow_experiment: The MLflow experiment (None: ``lenet-<dataset>``).
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
    keep_models: bool = False
    mlflow: str | None = None
    mlflow_experiment: str | None = None

    def __post_init__(self) -> None:
        from lenet_cli.engine.tracking import check_fields

        check_fields(self.mlflow, self.mlflow_experiment)

    @property
    def target(self) -> int | None:
        """The finished trials the study should hold (None: until the timeout)."""
        return self.trials if self.trials is not None else (None if self.timeout is not None else DEFAULT_TRIALS)


@dataclass(frozen=True)
class TrialRecord:
    """One row of ``lenet tune --show``: a trial as people and programs read it.

    ``val_accuracy`` is the score of a complete trial, and the last reported
    epoch's of any other; ``epochs_run`` counts the epochs it reported.
    ``seconds`` is its training time, the sum of its epochs' times: the time
    ``lenet runs`` shows for its run (None before its first epoch ends).
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
        raise BadValue(
            "study", f"--study {name!r}: use letters, digits, '.', '_' and '-' (it names the trials' folder)"
        )
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
    except Exception:
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", url)


# --- Opening a study -----------------------------------------------------------------------


def load_optuna():
    """Optuna, quiet: its own log lines and experimental-feature warnings are not for lenet's users."""
    import warnings

    try:
        import optuna
    except ModuleNotFoundError:
        from lenet_cli.core.errors import MissingExtra

        raise MissingExtra(
            "lenet tune needs Optuna: pip install 'lenet-cli[tune]'", hint="pip install 'lenet-cli[tune]'"
        ) from None
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def _driver_url(url: str) -> str:
    """``postgresql://`` through psycopg 3 (the tune extra's driver) when psycopg2 is absent; anything else as given."""
    import importlib.util

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if (
        parsed.drivername == "postgresql"
        and importlib.util.find_spec("psycopg2") is None
        and importlib.util.find_spec("psycopg") is not None
    ):
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def connect(url: str, heartbeat: int = DEFAULT_HEARTBEAT):
    """An Optuna RDB storage with heartbeats, whose dead workers' trials are queued again.

    Raises:
        BadValue: the URL is malformed, names a database that cannot be reached or opened, or needs a driver
            that is not installed (field ``storage``).
    """
    optuna = load_optuna()
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
                return _heartbeat_tolerant_storage()(
                    driver_url,
                    engine_kwargs=kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=MAX_RETRIES
                    ),
                )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 2:
                    raise
                time.sleep(
                    0.5 + attempt
                )  # workers that start together race to create a new database's tables: the loser waits
        raise AssertionError("unreachable")
    except (ModuleNotFoundError, ImportError) as exc:
        raise BadValue(
            "storage",
            f"--storage {shown}: its database driver is not installed ({exc}); PostgreSQL works with the "
            f"tune extra (pip install 'lenet-cli[tune]'), MySQL with pip install pymysql and mysql+pymysql://",
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as exc:
        detail = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise BadValue(
            "storage",
            f"--storage {shown}: cannot open the study database ({detail}); check the URL, that the "
            f"server runs and that the database exists",
        ) from None


@functools.cache
def _heartbeat_tolerant_storage():
    """Optuna's RDB storage, but a heartbeat that cannot reach the database is skipped, not a thread dying with a traceback.

    The trial's own next write (its epoch's score) meets the same lost database, and the search stops there in one
    line (:func:`storage_lost`); a database back by then has missed a heartbeat, not the trial.
    """
    load_optuna()  # quiet, and a missing extra said first
    from optuna.storages import RDBStorage

    class HeartbeatTolerantStorage(RDBStorage):
        def record_heartbeat(self, trial_id: int) -> None:
            try:
                super().record_heartbeat(trial_id)
            except Exception as exc:
                if _connection_failure(exc) is None:
                    raise

    return HeartbeatTolerantStorage


def _connection_failure(exc: BaseException | None):
    """The SQLAlchemy error that says the database cannot be reached, found in ``exc`` or in what it was raised from or during.

    Optuna wraps a failed commit in its own error, and a failed write while it records a failed trial ends in an
    unrelated one (an UnboundLocalError in Optuna 4); the lost connection is further down the chain.
    """
    import sqlalchemy.exc

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or (
            isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
        ):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def storage_lost(exc: BaseException, opened: OpenStudy) -> StorageLost | None:
    """A :class:`StorageLost` naming the study's database (password hidden) when ``exc`` comes from losing it; None otherwise."""
    failure = _connection_failure(exc)
    if failure is None:
        return None
    lines = str(getattr(failure, "orig", None) or failure).strip().splitlines()
    detail = lines[0][:200] if lines else type(failure).__name__
    from sqlalchemy.engine import make_url

    with contextlib.suppress(Exception):
        password = make_url(opened.url).password
        if password:
            detail = detail.replace(str(password), "***")
    return StorageLost(
        f"the study's database {opened.shown} went away ({detail}); run the same command again once it is back "
        f"(a trial left running is failed when its heartbeats lapse, and retried)"
    )


def check_url(url: str, default: bool = False) -> None:
    """Refuse a URL that is not a database URL before anything connects (or creates a file); ``default``: lenet's own, made as needed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise BadValue(
            "storage",
            f"--storage {url!r} is not a database URL; write sqlite:///FILE, "
            f"postgresql://USER@HOST/DATABASE or mysql+pymysql://USER@HOST/DATABASE",
        ) from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise BadValue(
                "storage",
                f"--storage {url!r}: an in-memory study is lost when the command ends; name a file: sqlite:///FILE",
            )
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
    tracker: Any = None  # the search's MLflow parent run (lenet_cli.engine.tracking.RunTracker), once a search starts


def _study_names(storage) -> list[str]:
    return [summary.study_name for summary in storage.get_all_studies()]


def _fixed_settings(request: TuneRequest) -> dict[str, Any]:
    """What every trial of a study must share to be compared: the data and the training subset."""
    return {
        "dataset": dataset_label(request.dataset),
        "train_limit": request.train_limit,
        "validation_size": request.validation_size,
    }


def _check_study(study, name: str, request: TuneRequest, shown: str, space: tune_space.Space) -> None:
    """An existing study must tune the same data the same way, and with parameters of the same kinds.

    Raises:
        BadValue: another dataset or training subset (field ``study``), or a space whose entries the study
            recorded as another kind of distribution (field ``space``).
    """
    optuna = load_optuna()
    settings = study.user_attrs.get(LENET_ATTR)
    if not isinstance(settings, dict):
        raise BadValue("study", f"--study {name} in {shown} was not made by lenet tune; choose another --study")
    for key, value in _fixed_settings(request).items():
        if settings.get(key) != value:
            option = "--" + key.replace("_", "-")
            raise BadValue(
                "study",
                f"--study {name} in {shown} tunes with {option} {settings.get(key)}, not {value}; "
                f"give the same {option} to continue it, or choose another --study",
            )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise BadValue(
            "study", f"--study {name} in {shown} minimises its objective; lenet tune maximises validation accuracy"
        )
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
            raise BadValue(
                "space",
                f"{option}: --study {name} searched it as {_describe_distribution(distribution)}; "
                f"a study keeps each parameter's kind (and a list its choices): use another --study",
            ) from None


def _distribution(param: tune_space.Param, option: str):
    optuna = load_optuna()
    if isinstance(param, tune_space.Choice):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    assert isinstance(param, tune_space.Range)
    if tune_space.LEVERS[option].kind is int:
        return optuna.distributions.IntDistribution(
            int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
        )
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
    optuna = load_optuna()
    target = request.target or DEFAULT_TRIALS
    seed = request.seed + finished_before if local else None
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=max(3, min(10, target // 4)), multivariate=True, constant_liar=not local
    )


def _pruner(name: str, max_epochs: int):
    optuna = load_optuna()
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
    optuna = load_optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    check_url(url, default=request.storage is None)
    trials_dir = tune_root(request.runs_dir) / name
    earlier = _earlier_trials(trials_dir)
    local_file = Path(url.removeprefix("sqlite:///")) if request.storage is None else None
    if earlier and local_file is not None and not local_file.is_file():
        raise BadValue(
            "study",
            f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
            f"give its --storage (or its --dataset), or choose another --study",
        )
    if local_file is not None:
        local_file.parent.mkdir(parents=True, exist_ok=True)
    storage = connect(url, request.heartbeat)
    local = url.startswith("sqlite")
    names = _study_names(storage)
    if name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        _check_study(study, name, request, shown, space)
        study = optuna.load_study(
            study_name=name,
            storage=storage,
            sampler=_sampler(request, local, len(study.get_trials(deepcopy=False))),
            pruner=_pruner(request.pruner, _max_epochs(space)),
        )
        return OpenStudy(study, name, url, shown, created=False)
    if earlier:
        raise BadValue(
            "study",
            f"{str(trials_dir)!r} holds {earlier} of a study {name!r} kept in another database than {shown}; "
            f"give its --storage, move that folder away, or choose another --study",
        )
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=_sampler(request, local, 0),
        pruner=_pruner(request.pruner, _max_epochs(space)),
    )
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
    attrs = trial.user_attrs if state != "waiting" else {}
    seconds = attrs.get("train_seconds")
    return TrialRecord(
        number=trial.number,
        state=state,
        val_accuracy=value,
        epochs_run=len(steps),
        epochs=attrs.get("epochs", trial.params.get("epochs")),
        seconds=float(seconds) if isinstance(seconds, (int, float)) else None,
        params=dict(trial.params),
        run_dir=attrs.get("run_dir"),
        host=attrs.get("host"),
        retry_of=trial.system_attrs.get("failed_trial"),
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
    optuna = load_optuna()
    name = study_name(request)
    url = request.storage or default_storage(request)
    shown = shown_url(url)
    check_url(url, default=request.storage is None)
    if request.storage is None and not Path(url.removeprefix("sqlite:///")).is_file():
        raise BadValue(
            "study",
            f"no study database {url.removeprefix('sqlite:///')!r} yet; lenet tune --dataset "
            f"{dataset_label(request.dataset)} makes it",
        )
    storage = connect(url, request.heartbeat)
    names = _study_names(storage)
    if only_one and len(names) == 1:
        name = names[0]
    if name not in names:
        raise BadValue(
            "study", f"no study {name!r} in {shown} (studies there: {', '.join(names) if names else 'none'})"
        )
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
        raise BadValue(
            "study",
            f"{what} under {str(tune_root(request.runs_dir))!r} (studies: {listing}); give --dataset or --storage",
        )
    raise BadValue(
        "study", f"several studies under {str(tune_root(request.runs_dir))!r}: {listing}; choose one with --study"
    )
