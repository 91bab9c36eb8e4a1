"""MLflow tracking for ``lenet train`` and ``lenet tune``: a run's recipe, curves, figures and model on a tracking server.

Tracking is on when a request names a tracking URI (its ``mlflow`` field) or
``MLFLOW_TRACKING_URI`` is set, and off otherwise; MLflow is imported only
when it is on, so an untracked run pays nothing for it.

A tracker is a guest in the training loop, as ultralytics' MLflow callbacks
are: every call to the server goes through one guard, and the first call that
fails is one warning line, after which the tracker stays quiet for the rest of
the run. Training never waits on a server that is gone: MLflow's HTTP retries
and timeouts are set low (unless the user set them), and the run folder is
complete whatever the server did. Nothing here prints; lines go to ``log``.
What a finished training run logs (results, figures, model) is
:mod:`lenet_cli.engine.tracking_run`'s.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core.env import MLFLOW_TRACKING_URI_ENV
from lenet_cli.core.errors import BadValue, MissingExtra
from lenet_cli.store import runs
from lenet_cli.store.atomic import write_json_atomic

EXTRA_HINT = "pip install 'lenet-cli[mlflow]'"
RUN_FILE = "mlflow.json"  # in the run folder: which MLflow run it logs to, so a resumed run continues that one
METRICS_KEY = "mlflow"  # metrics.json's record of the MLflow run
# the run folder's absolute path: MLflow points at the folder, metrics.json at the MLflow run
RUN_DIR_TAG = "lenet.run_dir"
HTTP_SETTINGS = {  # MLflow's own defaults retry 7 times over minutes; a tracker must give up in seconds
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
MAX_NAME = 250  # experiment and registered model names (MLflow's database columns hold more; this keeps them readable)
NOT_RESULTS = (
    "val_accuracy",
    "val_cross_entropy",
    "images_per_second",  # curves already (a second point would blur them)
    "epochs",
    runs.FAST_MODEL_KEY,
    METRICS_KEY,
)  # a param, and the copy's check figures
STATUS_FINISHED, STATUS_FAILED, STATUS_KILLED = "FINISHED", "FAILED", "KILLED"
Log = Callable[[str], None]


# --- Which server, and checked before anything starts ------------------------------------------------------


@dataclass(frozen=True)
class TrackingSettings:
    """Where a run is tracked: the server (or folder), the experiment, and the registered model to add a version to."""

    uri: str
    experiment: str
    register: str | None = None
    from_env: bool = False  # the URI came from MLFLOW_TRACKING_URI, not from the request

    @property
    def is_folder(self) -> bool:
        """A folder store (``file:/PATH`` or a plain path) rather than a server or a database."""
        return self.uri.startswith("file:") or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", self.uri) is None

    @property
    def shown(self) -> str:
        """The URI fit to print: a password in it hidden."""
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1:***@", self.uri)


def _name(field: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise BadValue(field, f"must be a non-empty name, not {value!r}")
    if len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise BadValue(field, f"must be one line of at most {MAX_NAME} characters, not {value[:40]!r}...")


def check_fields(mlflow: Any, experiment: Any, register: Any = None) -> None:
    """A request's tracking fields, checked when it is built (the URI itself is tried when the run starts).

    Raises:
        BadValue: an empty or multi-line URI or name, or a URI with a scheme MLflow cannot use.
    """
    if mlflow is not None:
        if not isinstance(mlflow, str) or not mlflow.strip() or any(c.isspace() for c in mlflow.strip()):
            raise BadValue(
                "mlflow", f"must be a tracking URI (http://HOST:PORT, file:/FOLDER or a folder), not {mlflow!r}"
            )
        scheme = mlflow.split("://", 1)[0] if "://" in mlflow else ""
        if scheme in ("http", "https") and not mlflow.split("://", 1)[1].strip("/"):
            raise BadValue("mlflow", f"{mlflow!r} names no host; write e.g. http://127.0.0.1:5000")
    if experiment is not None:
        _name("mlflow_experiment", experiment)
    if register is not None:
        _name("mlflow_register", register)


def resolve(
    mlflow: str | None, experiment: str | None, register: str | None, dataset: str, log: Log | None = None
) -> TrackingSettings | None:
    """The tracking a request asks for: its ``mlflow`` URI, else ``MLFLOW_TRACKING_URI``; None when neither is set.

    A URI given in the request needs MLflow installed; one only inherited from
    the environment (set for other tools, say) does not stop a run: it is one
    warning line, and the run goes on untracked.

    Raises:
        MissingExtra: the request names a URI and MLflow is not installed.
        BadValue: ``register`` or ``experiment`` given with tracking off.
    """
    from lenet_cli.data.loader import run_name

    uri = mlflow or os.environ.get(MLFLOW_TRACKING_URI_ENV) or None
    if uri is None:
        for field, value in (("mlflow_register", register), ("mlflow_experiment", experiment)):
            if value is not None:
                raise BadValue(
                    field, f"needs a tracking server: give mlflow (a tracking URI) or set {MLFLOW_TRACKING_URI_ENV}"
                )
        return None
    if not mlflow_installed():
        if mlflow is not None:
            raise missing_mlflow()
        if log is not None:
            log(
                f"warning: {MLFLOW_TRACKING_URI_ENV} is set, but MLflow is not installed ({EXTRA_HINT}); this run is not tracked"
            )
        return None
    return TrackingSettings(
        uri=uri, experiment=experiment or f"lenet-{run_name(dataset)}", register=register, from_env=mlflow is None
    )


def mlflow_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("mlflow") is not None


def missing_mlflow() -> MissingExtra:
    return MissingExtra(f"MLflow tracking needs the mlflow extra: {EXTRA_HINT}", hint=EXTRA_HINT)


def load_mlflow():
    """MLflow, quiet (its loggers and warnings are not lenet's users' business), with retries a tracker can afford.

    Raises:
        MissingExtra: MLflow is not installed.
    """
    import logging
    import warnings

    for name, value in HTTP_SETTINGS.items():
        os.environ.setdefault(name, value)
    try:
        import mlflow
    except ModuleNotFoundError:
        raise missing_mlflow() from None
    from mlflow.utils.logging_utils import disable_logging

    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # stdout carries lenet's results (JSON), never a link
    disable_logging()  # MLflow's event lines ("Created version '1' of model ...") on stderr
    for name in ("mlflow", "urllib3", "alembic", "git"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # a failure is said once, by the guard, in one line
    warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
    return mlflow


def _cause(exc: BaseException) -> str:
    """A failed call in a few words: ``Connection refused``, ``Read timed out``, or the first line of the message."""
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text) or re.search(
        r"(Read timed out|Connection refused|Name or service not known)", text
    )
    if found:
        return found.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first if len(first) <= 160 else first[:157] + "..."


# --- One lenet run as one MLflow run -----------------------------------------------------------------------


def _param_text(value: Any) -> str:
    """A config.json value as an MLflow param: strings as they are, everything else as JSON (``true``, ``null``, ``[...]``)."""
    return value if isinstance(value, str) else json.dumps(value)


def _numbers(record: dict, prefix: str = "") -> dict[str, float]:
    """Every finite number in ``record`` (nested blocks as ``calibration.temperature``), booleans left out."""
    found: dict[str, float] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            found.update(_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            found[f"{prefix}{key}"] = float(value)
    return found


class RunTracker:
    """One lenet run logged as one MLflow run: params at the start, metrics every epoch, results and model at the end.

    ``parent`` makes it a nested run (a ``lenet tune`` trial under its study's
    run); a nested run logs params and metrics but no files, and a failure
    silences the parent as well, so a study warns once. Every method is safe to
    call on a tracker that is off or has failed: it does nothing.
    """

    def __init__(
        self,
        settings: TrackingSettings | None,
        log: Log | None = None,
        *,
        parent: RunTracker | None = None,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ):
        self.settings = settings
        self.log = log
        self.parent = parent
        self.run_name = run_name
        self.tags = dict(tags or {})
        self.active: bool = settings is not None and (parent is None or parent.active)
        self.client: Any = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.error: str | None = None
        self.registered: dict[str, Any] | None = None  # the model version registered for this run: name and version

    @classmethod
    def off(cls) -> RunTracker:
        """A tracker that tracks nothing (tracking switched off, or already failed for a study)."""
        return cls(None)

    @contextlib.contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Run one exchange with the server; the first failure is one warning, and the tracker goes quiet.

        Whatever MLflow prints meanwhile is dropped: stdout carries lenet's results, and stderr says a failure once.
        """
        import io

        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        except Exception as exc:
            if not self.active:
                return
            self.active = False
            self.error = f"{doing}: {_cause(exc)}"
            if self.parent is not None:
                self.parent.active = False
            assert self.settings is not None
            if self.log is not None:
                if self.run_id is None:
                    self.log(
                        f"warning: MLflow tracking at {self.settings.shown} is unavailable ({_cause(exc)}); "
                        f"training goes on untracked, and the run folder keeps everything"
                    )
                else:
                    self.log(
                        f"warning: MLflow tracking at {self.settings.shown} failed while {doing} ({_cause(exc)}); "
                        f"tracking stops here, training goes on, and the run folder keeps everything"
                    )

    def _connect(self):
        assert self.settings is not None
        if (
            self.settings.is_folder
        ):  # MLflow 3 keeps its folder store only for those who opt in; naming a folder is opting in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow = load_mlflow()
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.settings.uri)  # the model flavour logs through MLflow's default client
        self.client = MlflowClient(self.settings.uri)
        experiment = self.client.get_experiment_by_name(self.settings.experiment)
        if experiment is None:
            try:
                self.experiment_id = self.client.create_experiment(self.settings.experiment)
            except Exception:  # another process made it a moment ago
                experiment = self.client.get_experiment_by_name(self.settings.experiment)
                if experiment is None:
                    raise
                self.experiment_id = experiment.experiment_id
        else:
            self.experiment_id = experiment.experiment_id
        return mlflow

    def start(self, params: dict[str, Any], tags: dict[str, str] | None = None) -> None:
        """Open a new MLflow run (nested under ``parent`` if any) with these params and tags."""
        if not self.active:
            return
        with self._guard("starting the run"):
            self._connect()
            from mlflow.entities import Param
            from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

            all_tags = {**self.tags, **(tags or {})}
            if self.parent is not None and self.parent.run_id is not None:
                all_tags[MLFLOW_PARENT_RUN_ID] = self.parent.run_id
            run = self.client.create_run(self.experiment_id, run_name=self.run_name, tags=all_tags)
            self.run_id = run.info.run_id
            items = [Param(key, _param_text(value)) for key, value in params.items()]
            for first in range(0, len(items), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run_id, params=items[first : first + 100])

    def begin_run(self, run_dir: Path, resume: bool) -> None:
        """Start tracking a lenet run folder: its ``config.json`` as params, its path as a tag; a resumed run continues its MLflow run."""
        if not self.active:
            return
        from lenet_cli import __version__

        run_dir = Path(run_dir)
        previous = runs.read_json_or_none(run_dir / RUN_FILE) if resume else None
        if (
            isinstance(previous, dict)
            and previous.get("tracking_uri") == self._shown()
            and isinstance(previous.get("run_id"), str)
        ):
            with self._guard("continuing the run"):
                self._connect()
                self.client.update_run(previous["run_id"], status="RUNNING")
                self.run_id = previous["run_id"]
            return
        config = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
        params = {**(config if isinstance(config, dict) else {}), "lenet_version": __version__}
        self.run_name = self.run_name or run_dir.name
        self.start(params, {RUN_DIR_TAG: str(run_dir.resolve())})
        if self.run_id is not None:
            write_json_atomic(run_dir / RUN_FILE, self.record())

    def _shown(self) -> str | None:
        return None if self.settings is None else self.settings.shown

    def record(self) -> dict[str, Any]:
        """What ``metrics.json`` (and ``mlflow.json``) keep of the MLflow run: where it is, and whether it is complete."""
        assert self.settings is not None
        return {
            "tracking_uri": self.settings.shown,
            "experiment": self.settings.experiment,
            "experiment_id": self.experiment_id,
            "run_id": self.run_id,
            "complete": self.active and self.error is None,
            **({"error": self.error} if self.error else {}),
            **({"registered_model": self.registered} if self.registered else {}),
        }

    def log_metrics(self, values: dict[str, Any], step: int, doing: str) -> None:
        """Log every finite number of ``values`` at ``step``, in one request."""
        if not self.active or self.run_id is None:
            return
        with self._guard(doing):
            import time

            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            metrics = [Metric(key, value, now, step) for key, value in _numbers(values).items()]
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_epoch(self, epoch: int, logs: dict[str, Any]) -> None:
        """One epoch's logs (``history.json``'s names) at ``step`` = the epoch's number (1-based, as ``history.json``)."""
        self.log_metrics(logs, epoch, f"logging epoch {epoch}")

    def set_tags(self, tags: dict[str, str]) -> None:
        if not self.active or self.run_id is None:
            return
        with self._guard("tagging the run"):
            for key, value in tags.items():
                self.client.set_tag(self.run_id, key, value)

    def log_files(self, files: list[Path], folder: str | None = None) -> None:
        """Upload these files (those that exist) as the run's artifacts."""
        if not self.active or self.run_id is None:
            return
        with self._guard("uploading files"):
            for path in files:
                if Path(path).is_file():
                    self.client.log_artifact(self.run_id, str(path), folder)

    def log_pictures(self, pictures: dict[str, bytes]) -> None:
        """Upload PNGs made for MLflow only (the run folder does not keep them)."""
        if not self.active or self.run_id is None or not pictures:
            return
        with tempfile.TemporaryDirectory(prefix="lenet-mlflow-") as folder:
            paths = []
            for name, png in pictures.items():
                path = Path(folder) / name
                path.write_bytes(png)
                paths.append(path)
            self.log_files(paths)

    def end(self, status: str = STATUS_FINISHED) -> None:
        """Mark the MLflow run finished, failed or killed (a run the server lost is left as the server has it)."""
        if not self.active or self.run_id is None:
            return
        with self._guard("closing the run"):
            self.client.set_terminated(self.run_id, status)
