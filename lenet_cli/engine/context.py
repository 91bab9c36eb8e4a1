"""Which model, which data, which classes, which preprocessing: decided once, here, for every command and the server.

The class names follow the data the model was trained on (its run config or
export metadata carry them); models from before that carried only a dataset
name fall back to that dataset's built-in names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core.config import PREPROCESS_MODES
from lenet_cli.core.errors import BadValue, ModelError
from lenet_cli.data.dataset import CLASS_NAMES
from lenet_cli.store import runs
from lenet_cli.store.runs import ModelRef


@dataclass(frozen=True)
class ModelContext:
    """A resolved model and everything later steps need to know about it.

    Attributes:
        ref: The model file and its run directory (if it came from a run).
        format: ``keras``, ``onnx``, ``litert`` or ``savedmodel``.
        metadata: What the model carries (:func:`lenet_cli.runtimes.loading.read_metadata`).
        preprocess: How a picture becomes its input (``mnist``, ``fashion``, ``none``), or None
            when a dataset that is not the model's own brings its own inputs.
        class_names: The class names answers are given in (None only when a dataset
            without built-in names is yet to be read).
        dataset: The data the command works on: the model's own, or the one asked for.
        data_dir: Where that data is read from (the run's remembered folder when none is given).
    """

    ref: ModelRef
    format: str
    metadata: dict[str, Any]
    preprocess: str | None
    class_names: tuple[str, ...] | None
    dataset: str | None
    data_dir: Path | None = None

    @property
    def label(self) -> str:
        """The model as people are shown it: ``<run>/model.keras``, or the file's name."""
        if self.ref.run_dir is not None:
            return f"{self.ref.run_dir.name}/{self.ref.model_path.name}"
        return self.ref.model_path.name

    @property
    def class_dataset(self) -> str | None:
        """The dataset the class names come from: the model's, else its preprocessing's family."""
        return self.metadata.get("dataset") if self.metadata.get("dataset") in CLASS_NAMES else self.preprocess

    def check_top_k(self, top_k: int) -> None:
        """``top_k`` above the class count is the caller's mistake.

        Raises:
            BadValue: ``top_k`` is more than the model's classes.
        """
        if self.class_names is not None and top_k > len(self.class_names):
            raise BadValue("top_k", f"{top_k} is more than the model's {len(self.class_names)} classes")


@dataclass(frozen=True)
class PictureRequest:
    """What every command that answers for pictures is given: the pictures, the model, and how pictures become inputs.

    Attributes:
        inputs: Image files, directories, or ``-`` for one image on stdin.
        model: A run directory or model file; None for the latest run.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        recursive: Descend into sub-directories of directory inputs.
        files_from: A file (or ``-``) listing more inputs, one per line.
        preprocess: ``auto`` (as the model's data was made), ``mnist``, ``fashion`` or ``none``.
        invert: ``auto``, ``always`` or ``never``.
        top_k: Classes listed per answer.
    """

    inputs: Sequence[str] = ()
    model: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    recursive: bool = False
    files_from: str | None = None
    preprocess: str = "auto"
    invert: str = "auto"
    top_k: int = 3


def preprocessing_and_classes(meta: dict[str, Any], preprocess: str, model_path: Path) -> tuple[str, tuple[str, ...]]:
    """``(preprocessing mode, class names)`` for pictures given to a model with metadata ``meta``.

    ``preprocess`` is the user's choice; ``auto`` takes the model's.

    Raises:
        ModelError: the metadata says neither (pass --preprocess), or names no classes.
    """
    dataset = meta.get("dataset")
    if preprocess == "auto":
        preprocess = meta.get("preprocessing") or dataset
        if preprocess is None:
            raise ModelError(f"cannot tell which dataset {str(model_path)!r} was trained on; pass --preprocess mnist or --preprocess fashion")
        if preprocess not in PREPROCESS_MODES:
            preprocess = "mnist"  # the MNIST family: digit-like pictures
    names = meta.get("class_names") or CLASS_NAMES.get(dataset or "") or CLASS_NAMES.get(preprocess)
    if not names:
        raise ModelError(f"cannot tell the class names of {str(model_path)!r}; pass --preprocess mnist or --preprocess fashion")
    return preprocess, tuple(str(name) for name in names)


def for_pictures(model: str | os.PathLike | ModelRef | None, runs_dir: str | os.PathLike | None = None,
                 preprocess: str = "auto") -> ModelContext:
    """The context of a model that answers for pictures (predict, explain, serve); ``model`` may be resolved already.

    Raises:
        LenetError: no such model or run, or one whose dataset cannot be told.
    """
    from lenet_cli.runtimes.loading import model_format, read_metadata

    ref = model if isinstance(model, ModelRef) else runs.resolve_model(model, runs_dir)
    meta = read_metadata(ref)
    preprocess, class_names = preprocessing_and_classes(meta, preprocess, ref.model_path)
    return ModelContext(ref, model_format(ref.model_path), meta, preprocess, class_names, meta["dataset"])


def for_dataset(model: str | os.PathLike | None, runs_dir: str | os.PathLike | None = None, dataset: str | None = None,
                data_dir: str | os.PathLike | None = None) -> ModelContext:
    """The context of a model scored or converted on a dataset (evaluate, export): its own unless ``dataset`` names another.

    Raises:
        LenetError: no such model or run, or one whose dataset cannot be told and none was given.
    """
    from lenet_cli.runtimes.loading import model_format, read_metadata

    ref = runs.resolve_model(model, runs_dir)
    meta = read_metadata(ref)
    dataset = dataset or meta["dataset"]
    if dataset is None:
        raise ModelError(f"cannot tell which dataset {str(ref.model_path)!r} was trained on; pass --dataset mnist or --dataset fashion")
    same_data = dataset == meta["dataset"]  # the model's own classes; another dataset brings its own
    names = (meta["class_names"] if same_data else None) or CLASS_NAMES.get(dataset)
    return ModelContext(
        ref, model_format(ref.model_path), meta,
        preprocess=meta["preprocessing"] if same_data else None,
        class_names=tuple(names) if names else None,
        dataset=dataset,
        data_dir=runs.remembered_data_dir(data_dir, meta["run_config"], dataset),
    )
