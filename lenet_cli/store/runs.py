"""Run directories: where ``lenet train`` writes, and how later commands find a model.

A run directory holds ``model.keras``, ``config.json``, ``history.json``,
``metrics.json`` and ``logs/`` (TensorBoard), and ``RUNNING`` while a
process trains it. A finished run also holds ``model.tflite`` (with its
``model.tflite.lenet.json``): a TensorFlow-free copy of ``model.keras``
whose check against it ``metrics.json`` records under ``fast_model``. Runs live under the runs root:
``--runs-dir``, else ``$LENET_RUNS_DIR``, else ``./runs``. After a successful
run, ``<runs root>/LATEST`` names it; commands given no model use that run,
or else the newest run directory that holds a ``model.keras``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.core.env import DATA_DIR_ENV, RUNS_DIR_ENV
from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.store.atomic import write_json_atomic, write_text_atomic

LATEST_FILE = "LATEST"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
LOGS_DIR = "logs"
CHECKPOINT_FILE = "checkpoint.npz"
RUNNING_FILE = "RUNNING"
TUNE_DIR = "tune"  # <runs root>/tune/: lenet tune's study databases, results, and <study>/trial-<n>/ run directories
FAST_MODEL_FILE = "model.tflite"  # the TensorFlow-free copy (LiteRT) that predict, evaluate and serve answer with
FAST_MODEL_KEY = "fast_model"  # metrics.json's record of it: file, ok, parity figures


def runs_root(runs_dir: str | os.PathLike | None = None) -> Path:
    """The folder that holds run directories."""
    return Path(runs_dir or os.environ.get(RUNS_DIR_ENV) or "runs")


def check_output_available(output: str | os.PathLike | None) -> None:
    """Fail early (before any data is loaded) when ``output`` names a non-empty directory or a file.

    Raises:
        BadValue: ``output`` is a file.
        RunError: ``output`` is a directory that already holds files.
    """
    if output is None:
        return
    path = Path(output)
    if path.exists() and not path.is_dir():
        raise BadValue("output", f"{str(path)!r} is a file; name a directory")
    if path.is_dir() and any(path.iterdir()):
        raise RunError(f"output directory {str(path)!r} already exists and is not empty; choose another output folder")


def check_writable(path: str | os.PathLike, what: str) -> None:
    """Fail fast, before any data loads, when nothing can be written at ``path``.

    Creates nothing: a temporary file is opened (and vanishes) in ``path``, or
    in its nearest existing ancestor when ``path`` does not exist yet. A probe
    rather than ``os.access``, which says yes to root on a read-only mount.

    Raises:
        RunError: the nearest existing ancestor is a file, or refuses a new file.
    """
    import tempfile

    target = Path(path)
    existing = target
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():  # a dangling link
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise RunError(
            f"{what} {str(target)!r} cannot be created: {str(existing)!r} is a file, not a folder; choose another path"
        )
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(
            f"{what} {str(target)!r} is not writable ({reason} in {str(existing)!r}); "
            f"fix its permissions or choose another folder"
        ) from None


def new_run_dir(
    dataset: str, runs_dir: str | os.PathLike | None = None, output: str | os.PathLike | None = None
) -> Path:
    """Create and return a fresh run directory: ``output`` if given, else ``<root>/<dataset>-<timestamp>``."""
    if output is not None:
        check_output_available(output)
        path = Path(output)
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in [""] + [f"-{i}" for i in range(1, 1000)]:
        path = root / f"{dataset}-{stamp}{suffix}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RunError(f"cannot create a run directory under {str(root)!r}")


def mark_latest(run_dir: Path, runs_dir: str | os.PathLike | None = None) -> None:
    """Record ``run_dir`` as the latest run of the runs root (by name, or by absolute path when it lives elsewhere)."""
    root = runs_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    inside = run_dir.resolve().parent == root.resolve()
    write_text_atomic(root / LATEST_FILE, (run_dir.name if inside else str(run_dir.resolve())) + "\n")


def latest_name(root: Path) -> str | None:
    """The run name (or absolute path) ``<root>/LATEST`` records, or None when it records none that can be a path."""
    try:
        text = (Path(root) / LATEST_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not text or "\x00" in text or "\n" in text or "\r" in text:
        return None
    return text


def latest_run(runs_dir: str | os.PathLike | None = None) -> Path:
    """The run later commands use when given no model.

    Raises:
        RunError: there is no run yet, or ``LATEST`` names a run that is gone
            (the newest other run is not silently used in its place).
    """
    root = runs_root(runs_dir)
    name = latest_name(root)
    if name is not None:
        candidate = root / name
        if (candidate / MODEL_FILE).is_file():
            return candidate
        raise RunError(
            f"{str(root / LATEST_FILE)!r} names the run {name!r}, which holds no {MODEL_FILE} (deleted or moved?); "
            f"pass a run directory or model file, or delete {LATEST_FILE} to use the newest run (`lenet runs` lists them)"
        )
    try:
        runs = [p for p in root.glob("*/") if (p / MODEL_FILE).is_file()] if root.is_dir() else []
    except OSError as exc:
        raise RunError(
            f"cannot read the runs folder {str(root)!r}: {exc.strerror or exc}; fix its permissions"
        ) from None
    if not runs:
        raise NoRunsYet(f"no trained model found under {str(root)!r}; run `lenet train` first or pass a model path")
    return max(runs, key=lambda p: (p / MODEL_FILE).stat().st_mtime)


class NoRunsYet(RunError):
    """The runs root holds no finished run (and no ``LATEST``): nothing has been trained here yet."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model argument: the model file and, when it came from a run, its run directory.

    ``builtin`` names the shipped model it is (:mod:`lenet_cli.store.builtin`), or is None.
    """

    model_path: Path
    run_dir: Path | None
    builtin: str | None = None

    def run_config(self) -> dict | None:
        """The run's ``config.json`` as a dict, or None when the model did not come from a run."""
        folder = self.run_dir
        if folder is None:
            sidecar = self.model_path.parent / CONFIG_FILE
            folder = self.model_path.parent if sidecar.is_file() else None
        if folder is None:
            return None
        path = folder / CONFIG_FILE
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except PermissionError:
            raise RunError(
                f"cannot read {str(path)!r}: permission denied; fix the run folder's permissions (or ask its owner)"
            ) from None
        except (OSError, ValueError):
            raise RunError(
                f"{str(path)!r} is unreadable or not valid JSON; the run is damaged: restore {CONFIG_FILE} "
                f"from a backup or train the run again"
            ) from None
        if not isinstance(config, dict):
            raise RunError(
                f"{str(path)!r} is not a lenet config (not a JSON object); the run is damaged: restore {CONFIG_FILE} "
                f"from a backup or train the run again"
            )
        from lenet_cli.core.config import check_config_types

        try:
            check_config_types(config)
        except ValueError as exc:
            raise RunError(
                f"{str(path)!r} is not a lenet config ({exc}); the run is damaged: restore {CONFIG_FILE} "
                f"from a backup or train the run again"
            ) from None
        return config


def fast_model_record(run_dir: Path) -> dict | None:
    """``metrics.json``'s record of the run's TensorFlow-free copy, or None (an older run, or no readable metrics)."""
    metrics = read_json_or_none(Path(run_dir) / METRICS_FILE)
    record = metrics.get(FAST_MODEL_KEY) if isinstance(metrics, dict) else None
    return record if isinstance(record, dict) else None


def record_fast_model(run_dir: Path, record: dict) -> None:
    """Write ``record`` into the run's ``metrics.json`` under ``fast_model`` (atomically; the other metrics kept).

    Raises:
        RunError: the run has no readable ``metrics.json`` (it has not finished).
    """
    path = Path(run_dir) / METRICS_FILE
    metrics = read_json_or_none(path)
    if not isinstance(metrics, dict):
        raise RunError(
            f"{str(path)!r} is missing or unreadable, so the run's {FAST_MODEL_FILE} cannot be recorded; "
            f"finish the run first (lenet train --resume {run_dir})"
        )
    metrics[FAST_MODEL_KEY] = record
    write_json_atomic(path, metrics)


def check_readable_run(folder: Path) -> None:
    """Raise :class:`RunError` when ``folder`` cannot be listed or entered (another user's run, say)."""
    if not os.access(folder, os.R_OK | os.X_OK):
        raise RunError(
            f"cannot read the run folder {str(folder)!r}: permission denied; ask its owner to share it "
            f"(chmod -R a+rX) or copy the run somewhere you can read"
        )


def newest_serving_version(base: Path) -> Path | None:
    """The newest version of a TensorFlow Serving base folder (``models/lenet/3`` of ``models/lenet``), or None when it holds none."""
    try:
        versions = [p for p in base.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()]
    except OSError:
        return None
    return max(versions, key=lambda p: int(p.name)) if versions else None


def resolve_model(
    model: str | os.PathLike | None,
    runs_dir: str | os.PathLike | None = None,
    builtin_when_no_runs: bool = False,
    field: str = "model",
) -> ModelRef:
    """Turn a run directory, a model file, a run's name, a built-in model's name, or nothing (the latest run) into a :class:`ModelRef`.

    A name is looked up in that order: a path, a run of that name under the runs root, then a built-in
    model (``mnist``, ``fashion``), so a user's own files are never shadowed by lenet's.
    ``builtin_when_no_runs``: with no model and no run at all, answer with the default built-in model
    (predict and serve) instead of refusing. ``field`` is the request field the model came from.

    Raises:
        BadValue: nothing of that name exists (a path, a run or a built-in).
        RunError: the path is neither a model file nor a run directory.
    """
    from lenet_cli.store.builtin import DEFAULT_BUILTIN, builtin_model

    if model is None:
        try:
            run = latest_run(runs_dir)
        except NoRunsYet:
            shipped = builtin_model(DEFAULT_BUILTIN) if builtin_when_no_runs else None
            if shipped is None:
                raise
            return ModelRef(shipped.model_path, None, builtin=shipped.name)
        return ModelRef(run / MODEL_FILE, run)
    path = Path(model)
    if (
        not path.exists() and not path.is_absolute()
    ):  # a name: a run under the runs root (tune/<study>/trial-3 too), then a built-in
        run = runs_root(runs_dir) / path
        shipped = builtin_model(path.name) if path.name == str(model) else None
        if run.is_dir():
            path = run
        elif shipped is not None:
            return ModelRef(shipped.model_path, None, builtin=shipped.name)
    if path.is_dir():
        check_readable_run(path)
        if (path / MODEL_FILE).is_file():
            return ModelRef(path / MODEL_FILE, path)
        if (path / FAST_MODEL_FILE).is_file() and (
            path / METRICS_FILE
        ).is_file():  # a lenet tune trial keeps only its TensorFlow-free copy
            return ModelRef(path / FAST_MODEL_FILE, path)
        if (path / "saved_model.pb").is_file():
            return ModelRef(path, None)
        newest = newest_serving_version(path)
        if (
            newest is not None
        ):  # TensorFlow Serving's base folder: its newest version, as TensorFlow Serving would serve it
            return ModelRef(newest, None)
        if (path / CONFIG_FILE).is_file():
            raise RunError(unfinished_run_message(path))
        raise RunError(f"{str(path)!r} is not a run directory: it holds no {MODEL_FILE}")
    if not path.exists():
        raise BadValue(
            field,
            f"{str(path)!r} does not exist; pass a run directory, a model file, a run's name "
            f"(`lenet runs` lists them) or a built-in model's (mnist, fashion)",
        )
    return ModelRef(path, None)


def remembered_data_dir(data_dir, run_config: dict | None, dataset: str | None):
    """Where a command that scores or resumes a run finds its data.

    ``--data-dir`` wins, then ``$LENET_DATA_DIR`` (returned as None: the loader
    reads it); else the folder the run was trained from, when it still exists
    and the command wants that run's dataset; else None (the usual look-up).
    """
    if data_dir is not None or os.environ.get(DATA_DIR_ENV):
        return data_dir
    source = (run_config or {}).get("data_source")
    if source and (run_config or {}).get("dataset") == dataset and Path(source).is_dir():
        return Path(source)
    return None


def unfinished_run_message(run_dir: Path) -> str:
    """Why a run directory has no model yet, and the commands that give it one."""
    status = run_status(run_dir)
    total = "?" if status.epochs is None else status.epochs
    if status.state == "running":
        return (
            f"run {str(run_dir)!r} is still training ({status.epochs_completed} of {total} epochs done, pid {status.pid}); "
            f"its model.keras appears when it finishes"
        )
    done = status.epochs_completed
    if done == 0:
        return (
            f"run {str(run_dir)!r} was interrupted before its first epoch finished, so it has no model; "
            f"resume it with: lenet train --resume {run_dir}"
        )
    return (
        f"run {str(run_dir)!r} was interrupted after epoch {done} of {total}, so it has no model.keras yet; "
        f"resume it with: lenet train --resume {run_dir}, or keep epoch {done}'s weights as its model with: "
        f"lenet train --resume {run_dir} --epochs {done}"
    )


def discard_unstarted_run(run_dir: str | os.PathLike) -> bool:
    """Remove what a run wrote before its first epoch completed, and the directory when nothing else is left in it.

    A run stopped before any epoch finished has nothing to resume: its
    checkpoint holds the initial weights (and is three times the model's
    size), ``config.json`` and ``logs/`` describe a run that did not happen.
    ``RUNNING`` (the stopping process's own marker) does not count as
    something left; anything else in the folder keeps it.

    Returns:
        Whether the directory itself was removed.
    """
    import shutil

    run_dir = Path(run_dir)
    for name in (CHECKPOINT_FILE, CONFIG_FILE, HISTORY_FILE):
        (run_dir / name).unlink(missing_ok=True)
    shutil.rmtree(run_dir / LOGS_DIR, ignore_errors=True)
    if any(path.name != RUNNING_FILE for path in run_dir.iterdir()):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return not run_dir.exists()


@contextlib.contextmanager
def running_marker(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Mark ``run_dir`` as being trained by this process for the duration of the block.

    Writes ``RUNNING`` atomically (JSON: ``pid``, ``hostname``, ``started``, an
    ISO 8601 UTC time) and removes it on exit, whether the block returns or
    raises. A process killed outright leaves the file behind; :func:`run_status`
    then sees that its pid is gone and reports the run as interrupted.
    """
    path = Path(run_dir) / RUNNING_FILE
    marker = {
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_text_atomic(path, json.dumps(marker) + "\n")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(path.read_text(encoding="utf-8")).get("pid") == marker["pid"]:
                path.unlink()


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state`` is ``finished``, ``interrupted`` or ``running``.

    ``epochs_completed`` counts the entries of ``history.json``; ``epochs`` is
    the run's planned total from ``config.json`` (None when it has none).
    ``pid``, ``hostname`` and ``started`` come from ``RUNNING`` while it runs.
    """

    state: str
    epochs_completed: int
    epochs: int | None
    pid: int | None = None
    hostname: str | None = None
    started: str | None = None

    def describe(self) -> str:
        """``finished``, ``interrupted after 3/12`` or ``running 3/12`` (epochs completed / planned)."""
        if self.state == "finished":
            return "finished"
        total = "?" if self.epochs is None else self.epochs
        word = "interrupted after" if self.state == "interrupted" else "running"
        return f"{word} {self.epochs_completed}/{total}"


def read_json_or_none(path: Path):
    """A small JSON file's content, or None when it is absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def run_status(run_dir: str | os.PathLike, config: dict | None = None, history: list | None = None) -> RunStatus:
    """Read whether a run finished, was interrupted, or is running now.

    Running: a ``RUNNING`` file whose process is alive (or lives on another
    host, which cannot be checked from here); a ``RUNNING`` file left by a dead
    process on this host means interrupted. Finished: ``metrics.json`` and a
    model are there (``model.keras``, or only ``model.tflite`` for a ``lenet tune``
    trial that was not the best). Anything else is interrupted after the
    epochs ``history.json`` records. ``config`` and ``history`` may be passed
    when the caller has read them already.
    """
    run_dir = Path(run_dir)
    if config is None:
        config = read_json_or_none(run_dir / CONFIG_FILE)
    if history is None:
        history = read_json_or_none(run_dir / HISTORY_FILE)
    epochs = config.get("epochs") if isinstance(config, dict) and isinstance(config.get("epochs"), int) else None
    completed = len(history) if isinstance(history, list) else 0
    marker = read_json_or_none(run_dir / RUNNING_FILE) if (run_dir / RUNNING_FILE).exists() else None
    if isinstance(marker, dict) and isinstance(marker.get("pid"), int):
        pid, host = marker["pid"], marker.get("hostname")
        if host not in (None, socket.gethostname()) or pid_alive(pid):
            return RunStatus("running", completed, epochs, pid=pid, hostname=host, started=marker.get("started"))
    if ((run_dir / MODEL_FILE).is_file() or (run_dir / FAST_MODEL_FILE).is_file()) and (
        run_dir / METRICS_FILE
    ).is_file():
        return RunStatus("finished", completed, epochs)
    return RunStatus("interrupted", completed, epochs)
