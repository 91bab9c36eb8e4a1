"""What ``lenet runs`` shows: the runs folder as records (filtered by tags), and one run in detail.

Only the small JSON files of each run are read (``config.json``,
``metrics.json``, ``history.json``, ``RUNNING``, the root's ``LATEST``), plus
one ``stat`` per file for the sizes, so a folder of hundreds of runs lists in
a fraction of a second. Never imports TensorFlow, never prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.store import runs
from lenet_cli.store.run_tags import TAG_KEY, read_tags

RUN_MARKERS = (runs.CONFIG_FILE, runs.MODEL_FILE, runs.HISTORY_FILE)  # a folder holding any of them is a run

LIST_FIELDS = (
    "name",
    "dataset",
    "status",
    "epochs_completed",
    "epochs",
    "val_accuracy",
    "test_accuracy",
    "wall_seconds",
    "size_bytes",
    "started",
    "latest",
    "path",
    "study",
    "trial",
    "tags",
    "note",
)


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
    ISO 8601). ``size_bytes`` adds up every file of the run. ``tags`` and
    ``note`` are what ``lenet runs tag`` and ``lenet runs note`` gave it.
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
    tags: dict[str, str] = field(default_factory=dict)
    note: str | None = None

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
    labels = read_tags(run_dir)
    state, state_text = status.state, status.describe()
    if metrics.get("pruned") is True and state != "running":
        state, state_text = (
            "pruned",
            f"pruned after {status.epochs_completed}/{'?' if status.epochs is None else status.epochs}",
        )
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
        trial=config.get("trial")
        if isinstance(config.get("trial"), int) and not isinstance(config.get("trial"), bool)
        else None,
        tags=labels.tags,
        note=labels.note,
    )


def check_tag_filter(tags: Mapping[str, str | None] | None) -> None:
    """A ``tag`` filter: tag keys (a value to match, or None for any value).

    Raises:
        BadValue: a key that no tag could have (field ``tag``).
    """
    for key, value in (tags or {}).items():
        if not isinstance(key, str) or not TAG_KEY.match(key):
            raise BadValue(
                "tag", f"{key!r} is not a tag key: letters, digits and _ . - / (at most 64), not starting with . - /"
            )
        if value is not None and not isinstance(value, str):
            raise BadValue("tag", f"{key}: the value to match must be text, not {value!r}")


def list_runs(
    runs_dir: str | os.PathLike | None = None, tags: Mapping[str, str | None] | None = None
) -> list[RunSummary]:
    """Every run directory directly under the runs root, and every ``lenet tune`` trial under ``tune/<study>/``, newest first.

    A run directory is a folder holding ``config.json``, ``model.keras`` or
    ``history.json``; hidden folders are skipped. An absent root has none.
    ``tags`` keeps only the runs that have every one of these tags (with this
    value, or any value where it is None).

    Raises:
        BadValue: a ``tags`` key no tag could have.
    """
    check_tag_filter(tags)
    root = runs.runs_root(runs_dir)
    if not root.is_dir():
        return []
    latest = _latest_name(root)
    folders = [Path(e.path) for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir()]
    tune = root / runs.TUNE_DIR
    if tune.is_dir():
        folders += [
            trial
            for study in sorted(tune.iterdir())
            if study.is_dir() and not study.name.startswith(".")
            for trial in sorted(study.iterdir())
            if trial.is_dir() and not trial.name.startswith(".")
        ]
    found = [
        summarize_run(f, latest, name=f.relative_to(root).as_posix())
        for f in folders
        if any((f / marker).exists() for marker in RUN_MARKERS)
    ]
    wanted = dict(tags or {})
    found = [
        r
        for r in found
        if all(key in r.tags and (value is None or r.tags[key] == value) for key, value in wanted.items())
    ]
    return sorted(found, key=lambda r: (r.started or "", r.name), reverse=True)


def find_run(run: str | os.PathLike, runs_dir: str | os.PathLike | None = None) -> Path:
    """A run given as a path, or as a name under the runs root.

    Raises:
        RunError: neither names a run directory.
    """
    path = Path(run)
    root = runs.runs_root(runs_dir)
    for candidate in (path, root / path):
        if candidate.is_dir():
            runs.check_readable_run(candidate)
        if candidate.is_dir() and any((candidate / marker).exists() for marker in RUN_MARKERS):
            return candidate
    if path.is_dir() or (root / path).is_dir():
        raise RunError(f"{str(run)!r} is not a run directory: it holds none of {', '.join(RUN_MARKERS)}")
    raise RunError(
        f"no run {str(run)!r}: it does not exist as a folder, nor as a run under {str(root)!r}; `lenet runs` lists them"
    )


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


def list_builtin_models() -> list[dict]:
    """The models shipped with lenet (:mod:`lenet_cli.store.builtin`), one record each, for ``lenet runs`` to list apart."""
    from lenet_cli.store.builtin import builtin_models

    records = []
    for model in builtin_models():
        card = model.card()
        records.append(
            {
                "name": model.name,
                "title": card.get("title"),
                "quantization": card.get("quantization"),
                "test_accuracy": card.get("test", {}).get("accuracy"),
                "size_bytes": model.model_path.stat().st_size,
                "path": str(model.model_path),
            }
        )
    return records
