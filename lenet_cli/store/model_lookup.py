"""How later commands find a model: a path, a run's name, a built-in model's name, or nothing (the latest run).

After a successful run, ``<runs root>/LATEST`` names it; commands given no
model use that run, or else the newest run directory that holds a
``model.keras``. A name is looked up as a path, then as a run under the runs
root, then as a built-in model, so a user's own files are never shadowed by
lenet's. Every command that takes a model resolves it here, so they all
accept the same things and refuse the rest with the same message.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from lenet_cli.core.errors import BadValue, RunError
from lenet_cli.store.atomic import write_text_atomic
from lenet_cli.store.run_files import CONFIG_FILE, FAST_MODEL_FILE, LATEST_FILE, METRICS_FILE, MODEL_FILE, runs_root
from lenet_cli.store.run_status import unfinished_run_message


class NoRunsYet(RunError):
    """The runs root holds no finished run (and no ``LATEST``): nothing has been trained here yet."""


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
