"""What ``lenet runs`` shows: the runs folder as records, one run in detail, two runs side by side.

Only the small JSON files of each run are read (``config.json``,
``metrics.json``, ``history.json``, ``RUNNING``, the root's ``LATEST``), plus
one ``stat`` per file for the sizes, so a folder of hundreds of runs lists in
a fraction of a second. Never imports TensorFlow, never prints.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from lenet_cli.core.errors import LenetError
from lenet_cli.store import runs

RUN_MARKERS = (runs.CONFIG_FILE, runs.MODEL_FILE, runs.HISTORY_FILE)  # a folder holding any of them is a run

LIST_FIELDS = ("name", "dataset", "status", "epochs_completed", "epochs", "val_accuracy", "test_accuracy",
               "wall_seconds", "size_bytes", "started", "latest", "path", "study", "trial")


@dataclass(frozen=True)
class RunSummary:
    """One row of ``lenet runs``.

    ``status`` is ``finished``, ``interrupted``, ``running`` or ``pruned`` (a
    ``lenet tune`` trial stopped early); ``status_text`` adds the epochs
    (``interrupted after 3/12``). ``study`` and ``trial`` name the ``lenet tune``
    study and trial a run is (None for other runs), and its ``name`` is then
    its path under the runs folder (``tune/fashion/trial-3``). ``wall_seconds`` is the
    training time ``metrics.json`` records, else the sum of the completed
    epochs' times. ``started`` is when ``config.json`` was written (local time,
    ISO 8601). ``size_bytes`` adds up every file of the run.
    """

    name: str
    path: str
    dataset: str | None
    status: str
    status_text: str
    epochs_completed: int
    epochs: int | None
    val_accuracy: float | None
    test_accuracy: float | None
    wall_seconds: float | None
    size_bytes: int
    started: str | None
    latest: bool
    study: str | None = None
    trial: int | None = None

    def to_dict(self) -> dict:
        """The machine-readable record (``status_text`` is for people only)."""
        data = asdict(self)
        data.pop("status_text")
        return {key: data[key] for key in LIST_FIELDS}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tree_files(folder: Path) -> list[tuple[str, int]]:
    """Every file under ``folder`` as (relative path, size), sorted; symlinks are not followed."""
    found: list[tuple[str, int]] = []
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            name = prefix + entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), name + "/"))
                else:
                    found.append((name, entry.stat(follow_symlinks=False).st_size))
            except OSError:
                continue
    return sorted(found)


def _started(run_dir: Path) -> str | None:
    for path in (run_dir / runs.CONFIG_FILE, run_dir):
        try:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(path.stat().st_mtime))
        except OSError:
            continue
    return None


def _latest_name(root: Path) -> Path | None:
    text = runs.latest_name(root)
    return (root / text).resolve() if text else None


def summarize_run(run_dir: str | os.PathLike, latest: Path | None = None, name: str | None = None) -> RunSummary:
    """Read one run's small files into a :class:`RunSummary` (``name``: how the listing names it, default its folder's name)."""
    run_dir = Path(run_dir)
    config = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
    config = config if isinstance(config, dict) else {}
    metrics = runs.read_json_or_none(run_dir / runs.METRICS_FILE)
    metrics = metrics if isinstance(metrics, dict) else {}
    history = runs.read_json_or_none(run_dir / runs.HISTORY_FILE)
    history = history if isinstance(history, list) else []
    status = runs.run_status(run_dir, config=config, history=history)
    state, state_text = status.state, status.describe()
    if metrics.get("pruned") is True and state != "running":
        state, state_text = "pruned", f"pruned after {status.epochs_completed}/{'?' if status.epochs is None else status.epochs}"
    last = history[-1] if history and isinstance(history[-1], dict) else {}
    wall = _number(metrics.get("train_seconds"))
    if wall is None and history:
        times = [_number(h.get("epoch_seconds")) for h in history if isinstance(h, dict)]
        wall = sum(t for t in times if t is not None) if any(t is not None for t in times) else None
    return RunSummary(
        name=name or run_dir.name,
        path=str(run_dir),
        dataset=config.get("dataset") or metrics.get("dataset"),
        status=state,
        status_text=state_text,
        epochs_completed=status.epochs_completed,
        epochs=status.epochs,
        val_accuracy=_number(metrics.get("val_accuracy", last.get("val_accuracy"))),
        test_accuracy=_number(metrics.get("test_accuracy")),
        wall_seconds=wall,
        size_bytes=sum(size for _, size in _tree_files(run_dir)),
        started=_started(run_dir),
        latest=latest is not None and run_dir.resolve() == latest,
        study=config.get("study") if isinstance(config.get("study"), str) else None,
        trial=config.get("trial") if isinstance(config.get("trial"), int) and not isinstance(config.get("trial"), bool) else None,
    )


def list_runs(runs_dir: str | os.PathLike | None = None) -> list[RunSummary]:
    """Every run directory directly under the runs root, and every ``lenet tune`` trial under ``tune/<study>/``, newest first.

    A run directory is a folder holding ``config.json``, ``model.keras`` or
    ``history.json``; hidden folders are skipped. An absent root has none.
    """
    root = runs.runs_root(runs_dir)
    if not root.is_dir():
        return []
    latest = _latest_name(root)
    folders = [Path(e.path) for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir()]
    tune = root / runs.TUNE_DIR
    if tune.is_dir():
        folders += [trial for study in sorted(tune.iterdir()) if study.is_dir() and not study.name.startswith(".")
                    for trial in sorted(study.iterdir()) if trial.is_dir() and not trial.name.startswith(".")]
    found = [summarize_run(f, latest, name=f.relative_to(root).as_posix()) for f in folders if any((f / marker).exists() for marker in RUN_MARKERS)]
    return sorted(found, key=lambda r: (r.started or "", r.name), reverse=True)


def find_run(run: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> Path:
    """A run given as a path, or as a name under the runs root.

    Raises:
        LenetError: neither names a run directory.
    """
    path = Path(run)
    root = runs.runs_root(runs_dir)
    for candidate in (path, root / path):
        if candidate.is_dir():
            runs.check_readable_run(candidate)
        if candidate.is_dir() and any((candidate / marker).exists() for marker in RUN_MARKERS):
            return candidate
    if path.is_dir() or (root / path).is_dir():
        raise LenetError(f"{str(run)!r} is not a run directory: it holds none of {', '.join(RUN_MARKERS)}")
    raise LenetError(f"no run {str(run)!r}: not a folder, nor a run under {str(root)!r}; `lenet runs` lists them")


def show_run(run: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> dict:
    """One run in detail: its summary, ``config``, ``metrics`` and ``files`` (path and size)."""
    run_dir = find_run(run, runs_dir)
    summary = summarize_run(run_dir, _latest_name(runs.runs_root(runs_dir)))
    config = runs.read_json_or_none(run_dir / runs.CONFIG_FILE)
    metrics = runs.read_json_or_none(run_dir / runs.METRICS_FILE)
    return {
        **summary.to_dict(),
        "status_text": summary.status_text,
        "config": config if isinstance(config, dict) else {},
        "metrics": metrics if isinstance(metrics, dict) else {},
        "files": [{"path": name, "size_bytes": size} for name, size in _tree_files(run_dir)],
    }


SUMMARY_KEYS = ("status", "epochs_completed", "wall_seconds", "size_bytes", "started")


def compare_runs(run_a: str | os.PathLike, run_b: str | os.PathLike, runs_dir: str | os.PathLike | None = None,
                 include_same: bool = False) -> dict:
    """Two runs side by side: ``{"runs": [a, b], "rows": [{section, key, a, b, same}]}``.

    Sections: ``config`` (the recipe), ``metrics`` (``metrics.json``) and
    ``run`` (status, epochs, wall time, size, start); an interrupted run's metrics are
    what ``lenet runs`` shows for it (its last validation accuracy). Rows whose values are
    equal are left out unless ``include_same``; metrics rows are always kept.
    """
    a, b = show_run(run_a, runs_dir), show_run(run_b, runs_dir)
    rows = []
    # an interrupted run has no metrics.json: its accuracies are what `lenet runs` reads (the last epoch's validation)
    metrics_a, metrics_b = ({**{k: run[k] for k in ("val_accuracy", "test_accuracy") if run[k] is not None}, **run["metrics"]}
                            for run in (a, b))
    for section, left, right in (("config", a["config"], b["config"]), ("metrics", metrics_a, metrics_b),
                                 ("run", {k: a[k] for k in SUMMARY_KEYS}, {k: b[k] for k in SUMMARY_KEYS})):
        keys = list(left) + [k for k in right if k not in left]
        for key in keys:
            va, vb = left.get(key), right.get(key)
            same = va == vb
            if same and not include_same and section != "metrics":
                continue
            rows.append({"section": section, "key": key, "a": va, "b": vb, "same": same})
    return {"runs": [a["name"], b["name"]], "paths": [a["path"], b["path"]], "rows": rows}
