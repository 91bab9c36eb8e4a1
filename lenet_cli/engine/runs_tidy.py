"""Keeping the runs folder tidy: tag and annotate runs, remove some, prune the rest.

Removal is careful by construction. Only folders that are runs can go (one of
``config.json``, ``model.keras`` or ``history.json`` in them); a run that is
training now (its ``RUNNING`` file names a live process) and the run ``LATEST``
names are refused unless forced; a dry run reports exactly what would go. A
run is first renamed to a hidden name beside itself, then deleted, so it
vanishes from every listing at once even if the deletion is cut short.
Never imports TensorFlow, never prints.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lenet_cli.core import checks
from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.engine.runs import RunSummary, find_run, list_runs, summarize_run
from lenet_cli.store import runs
from lenet_cli.store.run_tags import MAX_NOTE, MAX_VALUE, TAG_KEY, RunTags, read_tags, write_tags

PRUNE_ORDERS = ("val_accuracy", "test_accuracy", "started")  # what ``by`` ranks runs by: the best (or newest) are kept
BEST_SUFFIX = "-best.json"  # lenet tune's result file beside a study's trials: it names the study's best trial


# --- Tags and notes -------------------------------------------------------------------------------------


def _check_tag(key: Any, value: Any) -> None:
    if not isinstance(key, str) or not TAG_KEY.match(key):
        raise BadValue(
            "tags", f"{key!r} is not a tag key: letters, digits and _ . - / (at most 64), not starting with . - /"
        )
    if not isinstance(value, str) or len(value) > MAX_VALUE or any(c in value for c in "\r\n"):
        raise BadValue(
            "tags", f"{key}: a tag's value is one line of at most {MAX_VALUE} characters, not {str(value)[:40]!r}"
        )


@dataclass(frozen=True)
class TagRequest:
    """Set (or remove) tags on one run, or give it a note.

    Attributes:
        run: A run folder, or a run's name under the runs folder.
        tags: Tags to set, key -> value (an existing key gets the new value).
        remove: Tag keys to remove.
        note: A note to set (``""`` removes the note; None leaves it as it is).
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
    """

    run: str | os.PathLike
    tags: Mapping[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    note: str | None = None
    runs_dir: str | os.PathLike | None = None

    def __post_init__(self) -> None:
        for key, value in dict(self.tags).items():
            _check_tag(key, value)
        for key in self.remove:
            if not isinstance(key, str) or not TAG_KEY.match(key):
                raise BadValue("remove", f"{key!r} is not a tag key")
        clash = sorted(set(self.tags) & set(self.remove))
        if clash:
            raise BadValue("remove", f"{clash[0]} is both set and removed; choose one")
        if self.note is not None and (not isinstance(self.note, str) or len(self.note) > MAX_NOTE):
            raise BadValue("note", f"a note is text of at most {MAX_NOTE} characters")
        if not self.tags and not self.remove and self.note is None:
            raise BadValue("tags", "give at least one tag (key=value), a tag to remove, or a note")


def tag_run(request: TagRequest) -> RunSummary:
    """Apply the request's tags, removals and note to the run's ``tags.json``; returns the run as ``lenet runs`` lists it.

    Raises:
        LenetError: no such run.
    """
    run_dir = find_run(request.run, request.runs_dir)
    before = read_tags(run_dir)
    tags = {k: v for k, v in before.tags.items() if k not in request.remove}
    tags.update(dict(request.tags))
    note = before.note if request.note is None else (request.note.strip() or None)
    write_tags(run_dir, RunTags(tags, note))
    return summarize_run(run_dir, _latest(request.runs_dir), name=_name(run_dir, request.runs_dir))


# --- Removing runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """One run removed (or, in a dry run, that would be): what it was and what it freed."""

    name: str
    path: str
    dataset: str | None
    status: str
    val_accuracy: float | None
    size_bytes: int
    started: str | None
    removed: bool  # False in a dry run
    latest: bool = False  # it was the run LATEST named (LATEST goes with it)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class RemoveRequest:
    """What ``lenet runs rm`` (and :func:`lenet_cli.api.remove_runs`) is asked to do.

    Attributes:
        runs: Run folders, or names under the runs folder (``tune/<study>/trial-3`` too).
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        force: Remove a run even if it is training now, or is the run ``LATEST`` names.
        dry_run: Only say what would be removed.
    """

    runs: tuple[str | os.PathLike, ...]
    runs_dir: str | os.PathLike | None = None
    force: bool = False
    dry_run: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.runs, (str, os.PathLike)) or not self.runs:
            raise BadValue("runs", f"give at least one run to remove, not {self.runs!r}")


def _latest(runs_dir) -> Path | None:
    name = runs.latest_name(runs.runs_root(runs_dir))
    return (runs.runs_root(runs_dir) / name).resolve() if name else None


def _name(run_dir: Path, runs_dir) -> str:
    """A run as ``lenet runs`` names it: its path under the runs folder, else its folder's name."""
    root = runs.runs_root(runs_dir).resolve()
    try:
        return run_dir.resolve().relative_to(root).as_posix()
    except ValueError:
        return run_dir.name


def _refusal(summary: RunSummary, force: bool) -> str | None:
    """Why a run may not be removed without ``force`` (None: it may)."""
    if force:
        return None
    if summary.status == "running":
        status = runs.run_status(summary.path)
        where = f"pid {status.pid}" + (f" on {status.hostname}" if status.hostname else "")
        return f"{summary.name} is training now ({where}); stop it first, or force its removal"
    if summary.latest:
        return (
            f"{summary.name} is the run LATEST names (evaluate, predict and export use it by default); "
            f"force its removal, and the newest remaining run takes its place"
        )
    return None


def _remove_folder(path: Path) -> None:
    """Rename the run to a hidden name beside itself (gone from every listing at once), then delete it."""
    hidden = path.with_name(f".{path.name}.removing-{os.getpid()}")
    try:
        os.replace(path, hidden)
    except OSError as exc:
        raise RunError(f"cannot remove {str(path)!r}: {exc.strerror or exc}; check the folder's permissions") from None
    shutil.rmtree(hidden, ignore_errors=True)
    if hidden.exists():
        raise RunError(
            f"{str(path)!r} was only partly removed (what is left is in {str(hidden)!r}); check its permissions and delete it"
        )


def _removal(summary: RunSummary, removed: bool) -> Removal:
    return Removal(
        summary.name,
        summary.path,
        summary.dataset,
        summary.status,
        summary.val_accuracy,
        summary.size_bytes,
        summary.started,
        removed,
        summary.latest,
    )


def _remove(summaries: list[RunSummary], runs_dir, dry_run: bool) -> list[Removal]:
    done = []
    for summary in summaries:
        if not dry_run:
            _remove_folder(Path(summary.path))
            if summary.latest:
                (runs.runs_root(runs_dir) / runs.LATEST_FILE).unlink(
                    missing_ok=True
                )  # the newest remaining run is used instead
        done.append(_removal(summary, not dry_run))
    return done


def remove_runs(request: RemoveRequest) -> list[Removal]:
    """Remove the runs named, all or none: every run is found and checked before the first is removed.

    Raises:
        LenetError: a run that does not exist; :class:`RunError` for one that is training now or is the run ``LATEST``
            names, without ``force`` (nothing is removed then).
    """
    latest = _latest(request.runs_dir)
    summaries: list[RunSummary] = []
    for run in request.runs:
        run_dir = find_run(run, request.runs_dir)
        if any(Path(s.path).resolve() == run_dir.resolve() for s in summaries):
            continue
        summaries.append(summarize_run(run_dir, latest, name=_name(run_dir, request.runs_dir)))
    refusals = [why for why in (_refusal(s, request.force) for s in summaries) if why]
    if refusals:
        more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
        raise RunError(f"refusing to remove anything: {refusals[0]}{more}")
    return _remove(summaries, request.runs_dir, request.dry_run)


# --- Pruning -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PruneRequest:
    """What ``lenet runs prune`` (and :func:`lenet_cli.api.prune_runs`) is asked to do.

    Attributes:
        keep: How many runs to keep per dataset (the best by ``by``): an MNIST accuracy does not rank a Fashion-MNIST run.
        by: ``val_accuracy`` or ``test_accuracy`` (the highest are kept; runs without one rank last), or ``started``
            (the newest are kept).
        older_than: Remove only runs started at least this many seconds ago (None: whatever their age).
        study: Prune this ``lenet tune`` study's trials instead of the runs folder's own runs.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        dry_run: Only say what would be removed.
    """

    keep: int
    by: str = "val_accuracy"
    older_than: float | None = None
    study: str | None = None
    runs_dir: str | os.PathLike | None = None
    dry_run: bool = False

    def __post_init__(self) -> None:
        checks.whole_at_least("keep", self.keep, 0)
        checks.one_of("by", self.by, PRUNE_ORDERS)
        if self.older_than is not None:
            if (
                isinstance(self.older_than, bool)
                or not isinstance(self.older_than, (int, float))
                or not self.older_than >= 0
            ):
                raise BadValue("older_than", f"must be a number of seconds, at least 0, not {self.older_than!r}")
        if self.study is not None and (
            not isinstance(self.study, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", self.study)
        ):
            raise BadValue("study", f"{self.study!r} is not a study's name")


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed (or would), what it kept, and the runs it never touches with why."""

    removed: list[Removal]
    kept: list[str]
    protected: dict[str, str]  # run name -> why it is never pruned
    dry_run: bool

    @property
    def freed_bytes(self) -> int:
        return sum(r.size_bytes for r in self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "removed": [r.to_dict() for r in self.removed],
            "kept": self.kept,
            "protected": self.protected,
            "dry_run": self.dry_run,
            "freed_bytes": self.freed_bytes,
        }


def _started_seconds(summary: RunSummary) -> float | None:
    try:
        return (Path(summary.path) / runs.CONFIG_FILE).stat().st_mtime
    except OSError:
        try:
            return Path(summary.path).stat().st_mtime
        except OSError:
            return None


def _rank(summary: RunSummary, by: str) -> tuple:
    """Sort key: the runs to keep first."""
    if by == "started":
        return (-(_started_seconds(summary) or 0.0), summary.name)
    value = getattr(summary, by)
    return (value is None, -(value or 0.0), summary.name)


def _study_best(runs_dir, study: str) -> str | None:
    """The folder of the trial ``<study>-best.json`` names: the recipe lenet tune recommends stays with its evidence."""
    record = runs.read_json_or_none(runs.runs_root(runs_dir) / runs.TUNE_DIR / f"{study}{BEST_SUFFIX}")
    folder = record.get("run_dir") if isinstance(record, dict) else None
    return str(Path(folder).resolve()) if isinstance(folder, str) else None


def prune_runs(request: PruneRequest) -> PruneResult:
    """Keep the ``keep`` best runs of each dataset (by ``by``), and remove the others (those older than ``older_than``).

    The runs folder's own runs are pruned, or with ``study`` that study's trials. Never pruned: a run training now,
    the run ``LATEST`` names, and the trial a study's ``<study>-best.json`` names.

    Raises:
        BadValue: no such study (field ``study``).
    """
    every = list_runs(request.runs_dir)
    if request.study is None:
        pool = [s for s in every if s.study is None and "/" not in s.name]
        best = None
    else:
        pool = [s for s in every if s.name.startswith(f"{runs.TUNE_DIR}/{request.study}/")]
        if not pool and not (runs.runs_root(request.runs_dir) / runs.TUNE_DIR / request.study).is_dir():
            raise BadValue(
                "study", f"no study {request.study!r} under {str(runs.runs_root(request.runs_dir) / runs.TUNE_DIR)!r}"
            )
        best = _study_best(request.runs_dir, request.study)
    protected: dict[str, str] = {}
    for s in pool:
        if s.status == "running":
            protected[s.name] = "training now"
        elif s.latest:
            protected[s.name] = "the run LATEST names"
        elif best is not None and str(Path(s.path).resolve()) == best:
            protected[s.name] = "the study's best trial"
    groups: dict[str | None, list[RunSummary]] = {}
    for s in pool:
        groups.setdefault(s.dataset, []).append(s)
    cutoff = time.time() - request.older_than if request.older_than is not None else None
    doomed: list[RunSummary] = []
    kept: list[str] = []
    for members in groups.values():
        for position, s in enumerate(sorted(members, key=lambda m: _rank(m, request.by))):
            started = _started_seconds(s)
            young = cutoff is not None and (started is None or started > cutoff)
            if position < request.keep or s.name in protected or young:
                kept.append(s.name)
            else:
                doomed.append(s)
    removed = _remove(doomed, request.runs_dir, request.dry_run)
    return PruneResult(removed, sorted(kept), protected, request.dry_run)
