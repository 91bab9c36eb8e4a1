"""``lenet train``'s work: check the run folder, load the data, start TensorFlow and the strategy, train, tidy up.

The command line shows progress through the callbacks it passes in and
prints the outcome; the Python API (:func:`lenet_cli.api.train`) and
``lenet tune`` call :func:`train` the same way. Nothing here prints.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import checks
from lenet_cli.core.config import DISTRIBUTE_MODES, WORKER_TIMEOUT, TrainConfig
from lenet_cli.core.errors import BadValue
from lenet_cli.data.dataset import Dataset
from lenet_cli.engine import tracking, tracking_run
from lenet_cli.store import runs

SKIPPED_FILE = "skipped_pictures.tsv"  # a picture folder's unreadable or blank pictures: path, tab, why


@dataclass(frozen=True)
class TrainRequest:
    """What ``lenet train`` (and :func:`lenet_cli.api.train`) is asked to do, besides the recipe itself.

    Attributes:
        config: The resolved recipe (:func:`lenet_cli.core.config.resolve_config`).
        data_dir: Where a named dataset's files are (None: ``$LENET_DATA_DIR``, then the cache).
        output: The run directory to create (None: ``<runs_dir>/<dataset>-<timestamp>``).
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        tensorboard, histograms: TensorBoard logs, and weight histograms in them.
        resume: Continue the run in ``output`` from its checkpoint.
        deterministic: TensorFlow's op determinism (bitwise-reproducible runs).
        distribute, devices, workers, task_index, worker_timeout: The distribution strategy (docs/guides/distributed.md).
        keep_checkpoint: Keep ``checkpoint.npz`` once the run has finished.
        score_test: Read the test split and score the finished model on it (``lenet tune``'s trials do not: they are chosen on
            validation, and ``metrics.json``'s ``test_accuracy`` is then null).
        mlflow: An MLflow tracking URI (``http://HOST:PORT``, ``file:/FOLDER``) to log the run to; None: ``$MLFLOW_TRACKING_URI``,
            and no tracking when that is unset too (:mod:`lenet_cli.engine.tracking`).
        mlflow_experiment: The MLflow experiment (None: ``lenet-<dataset>``).
        mlflow_register: Register the run's model under this name in MLflow's model registry.
    """

    config: TrainConfig
    data_dir: str | os.PathLike | None = None
    output: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    tensorboard: bool = True
    histograms: bool = False
    resume: bool = False
    deterministic: bool = False
    distribute: str = "none"
    devices: int | None = None
    workers: str | None = None
    task_index: int | None = None
    worker_timeout: float = WORKER_TIMEOUT
    keep_checkpoint: bool = False
    score_test: bool = True
    mlflow: str | None = None
    mlflow_experiment: str | None = None
    mlflow_register: str | None = None

    def __post_init__(self) -> None:
        """Refuse what cannot run, before the run folder, the data or TensorFlow is touched.

        Raises:
            BadValue: a field out of range or of the wrong kind, or distribution fields that do not go together.
        """
        if not isinstance(self.config, TrainConfig):
            raise BadValue(
                "config", f"must be a TrainConfig (lenet_cli.core.config.resolve_config), not {self.config!r}"
            )
        for name in ("tensorboard", "histograms", "resume", "deterministic", "keep_checkpoint", "score_test"):
            checks.flag(name, getattr(self, name))
        if self.resume and self.output is None:
            raise BadValue("output", "resuming needs the run directory to continue")
        self._check_distribution()
        tracking.check_fields(self.mlflow, self.mlflow_experiment, self.mlflow_register)

    def _check_distribution(self) -> None:
        """The strategy's fields: each in range, and only with the mode it applies to (docs/guides/distributed.md)."""
        checks.one_of("distribute", self.distribute, DISTRIBUTE_MODES)
        checks.finite_at_least("worker_timeout", self.worker_timeout, 1.0)
        if self.devices is not None:
            checks.whole_at_least("devices", self.devices, 1)
            if self.distribute != "mirrored":
                raise BadValue("devices", f"splits the CPU for distribute 'mirrored' only, not {self.distribute!r}")
        if self.task_index is not None:
            checks.whole_at_least("task_index", self.task_index, 0)
        for name in ("workers", "task_index"):
            if getattr(self, name) is not None and self.distribute != "multi-worker":
                raise BadValue(name, f"applies to distribute 'multi-worker' only, not {self.distribute!r}")
        if (self.workers is None) != (self.task_index is None):
            missing = "task_index" if self.task_index is None else "workers"
            raise BadValue(missing, "workers and task_index go together: give both, or neither (TF_CONFIG then)")
        if self.workers is not None:
            from lenet_cli.model.distributed import tf_config_from_workers

            if not isinstance(self.workers, str):
                raise BadValue("workers", f"must be host:port addresses separated by commas, not {self.workers!r}")
            tf_config_from_workers(self.workers, self.task_index or 0)  # each address, and the index among them


@dataclass(frozen=True)
class TrainPlan:
    """What is about to be trained, handed to the caller before the first step (for a progress display's header)."""

    config: TrainConfig
    data: Dataset
    run_dir: Path
    distribution: Any  # lenet_cli.model.distributed.Distribution, or None
    resume: bool


@dataclass
class TrainOutcome:
    """A finished run: where it is and how it scored (``metrics`` is metrics.json's content)."""

    run_dir: Path
    config: TrainConfig
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    weights_sha256: str | None
    distribution: Any = None

    @property
    def writes_the_run(self) -> bool:
        """False for a multi-worker run's other workers, which train in a scratch folder the chief's run does not need."""
        return self.distribution is None or self.distribution.is_chief


def load_training_data(
    request: TrainRequest, log: Callable[[str], None] | None = None
) -> tuple[TrainConfig, Dataset, Any]:
    """Load the dataset the recipe names; return the recipe completed by what the data says, the data, and the data folder.

    Raises:
        LenetError: the data cannot be found, read or used.
    """
    from lenet_cli.data.loader import load_dataset

    cfg = request.config
    data_dir = request.data_dir
    if request.resume:
        data_dir = runs.remembered_data_dir(data_dir, cfg.to_json_dict(), cfg.dataset)
    previous_fingerprint = cfg.data_fingerprint
    if cfg.preprocess == "auto":
        cfg = dataclasses.replace(cfg, preprocess=None)
    data = load_dataset(
        cfg.dataset,
        data_dir,
        validation_size=cfg.validation_size,
        train_limit=cfg.train_limit,
        log=log,
        preprocess=cfg.preprocess,
        splits=("train", "validation", "test") if request.score_test else ("train", "validation"),
    )
    cfg = dataclasses.replace(
        cfg,
        data_source=str(Path(data.source).resolve()),
        validation_size=len(data.split("validation")),
        preprocess=cfg.preprocess or data.preprocess,
        class_names=tuple(data.class_names),
        data_fingerprint=data.fingerprint,
    )
    if (
        request.resume
        and previous_fingerprint
        and data.fingerprint
        and previous_fingerprint != data.fingerprint
        and log
    ):
        log(
            f"warning: {cfg.dataset}'s files changed since this run started (fingerprint {previous_fingerprint[:12]}... "
            f"is now {data.fingerprint[:12]}...)"
        )
    return cfg, data, data_dir


def train(
    request: TrainRequest,
    *,
    callbacks_for: Callable[[TrainPlan], list] | None = None,
    log: Callable[[str], None] | None = None,
    should_stop: Callable[[], int | None] | None = None,
    start_watchdog: Callable[[float, str], Any] | None = None,
    status: Callable[[str], Any] | None = None,
    tracker: tracking.RunTracker | None = None,
) -> TrainOutcome:
    """Train one run and score it on the whole test split.

    Under ``distribute="multi-worker"`` only the chief writes the run
    directory; the other workers train in a temporary directory that is
    removed at the end. A start that fails (a bad ``init_from``, say) leaves no
    half-made run directory behind.

    Args:
        request: The recipe and where the run goes.
        callbacks_for: Given the :class:`TrainPlan`, returns Keras callbacks (a progress display, a pruner) the loop drives.
        log: Receives one line per notable step (data found, a warning).
        should_stop: Polled after every step; a signal number stops training (:class:`TrainingInterrupted`).
        start_watchdog: Guards a multi-worker cluster's start (``(seconds, what) -> watchdog``).
        status: Returns a context manager that shows a passing status (``"starting TensorFlow"``), or None.
        tracker: Log to this MLflow run (a ``lenet tune`` trial's, nested in its study's; the caller ends it) instead of
            the one the request's ``mlflow`` fields ask for.

    Raises:
        LenetError: the run folder, the data or the recipe cannot be used.
        TrainingInterrupted: ``should_stop`` returned a signal number; the checkpoint of the last completed epoch is kept.
    """
    check_run_folder(request)
    owns_tracker = tracker is None
    if tracker is None:
        settings = tracking.resolve(
            request.mlflow, request.mlflow_experiment, request.mlflow_register, request.config.dataset, log
        )
        tracker = tracking.RunTracker(settings, log)
    cfg, data, _ = load_training_data(request, log)
    distribution = _start_strategy(request, start_watchdog, status)
    place = _RunPlace.choose(request, cfg, distribution)
    hooks = _Hooks(callbacks_for, log, should_stop, tracker, owns_tracker)
    result = _train_in_place(request, TrainPlan(cfg, data, place.run_dir, distribution, request.resume), place, hooks)
    record = (
        tracking_run.finish_training(tracker, place.run_dir, result.metrics, data, len(result.history))
        if place.chief
        else None
    )
    if record is not None:
        result.metrics[tracking.METRICS_KEY] = record
    if owns_tracker:
        tracker.end()
    fast = result.metrics.get(runs.FAST_MODEL_KEY)
    if log is not None and fast is not None and not fast["ok"]:
        log(
            f"warning: this run has no TensorFlow-free {runs.FAST_MODEL_FILE} ({fast['error']}); predict, evaluate and serve "
            f"will answer with model.keras"
        )
    return TrainOutcome(
        place.run_dir, result.config, result.metrics, result.history, result.weights_sha256, distribution
    )


def check_run_folder(request: TrainRequest) -> None:
    """Refuse an unusable run folder, runs folder or ``init_from`` now, not after the data and TensorFlow have loaded.

    Raises:
        RunError: the output exists (a new run) or a folder is not writable.
        BadValue: ``init_from`` names no model.
    """
    output = None if request.output is None else Path(request.output)
    if not request.resume:
        runs.check_output_available(output)
    runs.check_writable(runs.runs_root(request.runs_dir), "the runs folder")  # LATEST goes there
    if output is not None:
        runs.check_writable(output, "the run directory" if request.resume else "output")
    if request.config.init_from and not request.resume:
        runs.resolve_model(request.config.init_from, request.runs_dir, field="init_from")


def _start_strategy(
    request: TrainRequest,
    start_watchdog: Callable[[float, str], Any] | None,
    status: Callable[[str], Any] | None,
) -> Any:
    """Start TensorFlow, then the distribution strategy (None without one), each under a status line: both take seconds."""
    import contextlib

    from lenet_cli.core.tensorflow_env import import_tensorflow

    def showing(text: str):
        return status(text) if status is not None else contextlib.nullcontext()

    with showing("starting TensorFlow"):
        import_tensorflow()
    from lenet_cli.model.distributed import build_distribution

    joining = request.distribute == "multi-worker"
    with showing(f"joining the cluster (up to {request.worker_timeout:g} s)" if joining else "building the strategy"):
        return build_distribution(
            request.distribute,
            devices=request.devices,
            workers=request.workers,
            task_index=request.task_index,
            worker_timeout=request.worker_timeout,
            start_watchdog=start_watchdog,
        )


@dataclass(frozen=True)
class _RunPlace:
    """Where this process trains: the run directory, or a multi-worker non-chief's scratch folder (removed at the end)."""

    run_dir: Path
    scratch: Path | None  # set for a non-chief worker
    existed: bool  # the run directory was there before (resumed, or made by the caller): a failed start keeps it
    tensorboard: bool

    @property
    def chief(self) -> bool:
        """This process writes the run (only one worker may: the others' folders are thrown away)."""
        return self.scratch is None

    @classmethod
    def choose(cls, request: TrainRequest, cfg: TrainConfig, distribution: Any) -> _RunPlace:
        output = None if request.output is None else Path(request.output)
        if distribution is not None and not distribution.is_chief:
            scratch = Path(tempfile.mkdtemp(prefix=f"lenet-worker{distribution.worker_index}-"))
            if request.resume:  # the chief's run directory must be on storage every worker can read
                for name in (runs.CONFIG_FILE, runs.CHECKPOINT_FILE, runs.HISTORY_FILE):
                    if output is not None and (output / name).is_file():
                        shutil.copy2(output / name, scratch / name)
            return cls(scratch, scratch, False, False)
        from lenet_cli.data.loader import run_name

        existed = request.resume or (output is not None and output.exists())
        if request.resume and output is not None:
            return cls(output, None, existed, request.tensorboard)
        return cls(
            runs.new_run_dir(run_name(cfg.dataset), request.runs_dir, output), None, existed, request.tensorboard
        )


@dataclass(frozen=True)
class _Hooks:
    """What the caller hands the training loop: its callbacks, log, stop poll, and the MLflow run (ended here if owned)."""

    callbacks_for: Callable[[TrainPlan], list] | None
    log: Callable[[str], None] | None
    should_stop: Callable[[], int | None] | None
    tracker: tracking.RunTracker
    owns_tracker: bool


def _train_in_place(request: TrainRequest, plan: TrainPlan, place: _RunPlace, hooks: _Hooks):
    """Run the epochs in ``place``; on any failure end the owned MLflow run and remove a run folder this call made.

    A failed start leaves nothing half-made; a run with a checkpoint stays (it can be resumed), and so does a
    folder that was there before.
    """
    import contextlib

    run_dir, distribution = place.run_dir, plan.distribution
    try:
        if plan.data.skipped and place.chief:
            from lenet_cli.store.atomic import write_text_atomic

            write_text_atomic(run_dir / SKIPPED_FILE, "".join(f"{path}\t{why}\n" for path, why in plan.data.skipped))
        callbacks = list(hooks.callbacks_for(plan)) if hooks.callbacks_for is not None else []
        if distribution is not None and distribution.watchdog is not None:
            from lenet_cli.model.distributed import first_step_callback

            callbacks.append(first_step_callback(distribution))
        if place.chief and hooks.tracker.active:
            callbacks.append(tracking_run.tracking_callback(hooks.tracker, run_dir, request.resume))
        with runs.running_marker(run_dir) if place.chief else contextlib.nullcontext():
            return _run_epochs(request, plan, place, callbacks, hooks.should_stop)
    except BaseException as exc:
        if hooks.owns_tracker:
            from lenet_cli.engine.interrupted import TrainingInterrupted

            stopped = isinstance(exc, (TrainingInterrupted, KeyboardInterrupt))
            hooks.tracker.end(tracking.STATUS_KILLED if stopped else tracking.STATUS_FAILED)
        if place.chief and not place.existed and not (run_dir / runs.CHECKPOINT_FILE).exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed start leaves nothing half-made
        raise
    finally:
        if place.scratch is not None:
            shutil.rmtree(place.scratch, ignore_errors=True)


def _run_epochs(request: TrainRequest, plan: TrainPlan, place: _RunPlace, callbacks: list, should_stop):
    """The one call into the training loop (:func:`lenet_cli.engine.trainer.train`)."""
    from lenet_cli.engine.trainer import LoopPlan
    from lenet_cli.engine.trainer import train as run_epochs

    return run_epochs(
        LoopPlan(
            plan.config,
            plan.data,
            place.run_dir,
            callbacks=callbacks,
            tensorboard=place.tensorboard,
            histograms=request.histograms,
            runs_dir=request.runs_dir,
            resume=request.resume,
            should_stop=should_stop,
            deterministic=request.deterministic,
            distribution=plan.distribution,
            keep_checkpoint=request.keep_checkpoint,
        )
    )
