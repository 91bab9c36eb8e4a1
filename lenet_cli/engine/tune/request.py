"""What ``lenet tune`` is asked to do (:class:`TuneRequest`), checked when it is built, and the names it derives.

A study's name, its folder under the runs folder and its default storage URL all
follow from the request; a storage URL is refused here, before anything connects
or creates a file. Messages name the request's fields (``storage``), never a
command-line flag: the command line maps a field to its option when it prints.
SQLAlchemy (the tune extra's) is imported only to read a storage URL.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.core import checks
from lenet_cli.core import config as C
from lenet_cli.core.errors import BadValue
from lenet_cli.store import runs

DEFAULT_TRIALS = 20  # with neither trials nor timeout
DEFAULT_HEARTBEAT = 60  # seconds between a running trial's heartbeats; a trial silent for twice this is failed
MAX_RETRIES = 3  # a trial whose worker died is queued again at most this often
STUDY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
URL_FORMS = "sqlite:///FILE, postgresql://USER@HOST/DATABASE or mysql+pymysql://USER@HOST/DATABASE"


@dataclass(frozen=True)
class TuneRequest:
    """What ``lenet tune`` (and :func:`lenet_cli.api.tune`) is asked to do; its fields are checked when it is built.

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
        validation_size: Training images held out to score the trials (None: the dataset's default; never 0).
        epochs: The most epochs a trial trains (caps the space's ``epochs``).
        seed: Every trial's training seed; also seeds the sampler of a study kept in a local SQLite file.
        keep_models: Keep every complete trial's ``model.keras`` (by default only the best trial keeps it; the others keep
            their TensorFlow-free ``model.tflite``, and pruned trials no model at all).
        mlflow: An MLflow tracking URI: the search is one parent run there and each trial a nested run (None:
            ``$MLFLOW_TRACKING_URI``; no tracking when that is unset too).
        mlflow_experiment: The MLflow experiment (None: ``lenet-<dataset>``).

    Raises:
        BadValue: a field out of its range or choices, a timeout that is not a finite positive number, a study name
            that cannot name a folder, a storage that is not a database URL, or a space file that does not exist.
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

        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise BadValue("dataset", f"must be a dataset name or a folder, not {self.dataset!r}")
        if self.validation_size == 0:
            raise BadValue("validation_size", "0 leaves nothing to score the trials on; hold out some images")
        for field in ("trials", "train_limit", "validation_size", "epochs"):
            if getattr(self, field) is not None:
                checks.whole_at_least(field, getattr(self, field), 1)
        checks.whole_at_least("heartbeat", self.heartbeat, 1)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise BadValue("seed", f"must be a whole number, not {self.seed!r}")
        if self.timeout is not None and (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise BadValue("timeout", f"must be a finite number of seconds above 0, not {self.timeout!r}")
        checks.one_of("pruner", self.pruner, C.TUNE_PRUNERS)
        if not isinstance(self.keep_models, bool):
            raise BadValue("keep_models", f"must be True or False, not {self.keep_models!r}")
        if self.space_file is not None and not Path(self.space_file).is_file():
            raise BadValue("space_file", f"no such file: {str(self.space_file)!r}")
        study_name(self)
        if self.storage is not None:
            check_url(self.storage)
        check_fields(self.mlflow, self.mlflow_experiment)

    @property
    def target(self) -> int | None:
        """The finished trials the study should hold (None: until the timeout)."""
        return self.trials if self.trials is not None else (None if self.timeout is not None else DEFAULT_TRIALS)


def dataset_label(dataset: str) -> str:
    """A dataset as a study and file name: its name, or the last part of its path."""
    return dataset if os.sep not in dataset and "/" not in dataset else Path(dataset).name


def study_name(request: TuneRequest) -> str:
    """The study's name: the request's ``study``, else the dataset's.

    Raises:
        BadValue: a name that cannot also be a folder name (field ``study``).
    """
    name = request.study or re.sub(r"[^A-Za-z0-9._-]", "-", dataset_label(request.dataset)).lstrip(".-_") or "study"
    if not isinstance(name, str) or not STUDY_NAME.match(name):
        raise BadValue("study", f"{name!r}: use letters, digits, '.', '_' and '-' (it names the trials' folder)")
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


def check_url(url: str, default: bool = False) -> None:
    """Refuse a URL that is not a database URL before anything connects (or creates a file); ``default``: lenet's own, made as needed.

    Without SQLAlchemy (the tune extra) nothing is checked here: opening the study says the extra is missing first.
    """
    if not isinstance(url, str):
        raise BadValue("storage", f"must be a database URL such as {URL_FORMS}, not {url!r}")
    try:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError
    except ModuleNotFoundError:
        return
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise BadValue("storage", f"{url!r} is not a database URL; write {URL_FORMS}") from None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:") or database.startswith("file:"):
            raise BadValue(
                "storage", f"{url!r}: an in-memory study is lost when the command ends; name a file: sqlite:///FILE"
            )
        parent = Path(database).expanduser().resolve().parent
        if not parent.is_dir() and not default:
            raise BadValue("storage", f"{url!r}: the folder {str(parent)!r} does not exist")
