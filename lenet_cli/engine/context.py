"""Which model, which data, which classes, which preprocessing: decided once, here, for every command and the server.

The class names follow the data the model was trained on (its run config or
export metadata carry them); models from before that carried only a dataset
name fall back to that dataset's built-in names.

Which of a run's models answers is decided here too (:func:`choose_engine`):
with ``engine="auto"`` a run (or the latest one) answers with its
TensorFlow-free ``model.tflite`` when ``metrics.json`` records its check
against ``model.keras`` as OK, else with ``model.keras`` and one line that
says why. A copy that then fails to load gives way to ``model.keras`` too
(:meth:`ModelContext.load`).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core import checks
from lenet_cli.core.config import DEFAULT_TOP_K, ENGINES, INFERENCE_BATCH_SIZE, INVERT_MODES, PREPROCESS_MODES
from lenet_cli.core.errors import BadValue, LenetError, ModelError
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
        keras_ref: The run's ``model.keras`` when its TensorFlow-free copy answers (``ref``): what answers if the copy fails to load.
        notice: One line for people, said when the model loads: why a run's ``model.keras`` answers where its copy could have.
    """

    ref: ModelRef
    format: str
    metadata: dict[str, Any]
    preprocess: str | None
    class_names: tuple[str, ...] | None
    dataset: str | None
    data_dir: Path | None = None
    keras_ref: ModelRef | None = None
    notice: str | None = None

    @property
    def label(self) -> str:
        """The model as people are shown it: ``<run>/model.keras`` (or ``<run>/model.tflite``), or the file's name."""
        if self.ref.run_dir is not None:
            return f"{self.ref.run_dir.name}/{self.ref.model_path.name}"
        if self.ref.builtin is not None:
            return f"{self.ref.builtin} (built-in)"
        return self.ref.model_path.name

    def load(
        self, batch_size: int = INFERENCE_BATCH_SIZE, log: Callable[[str], None] | None = None
    ) -> tuple[ModelContext, Any]:
        """Open the model; returns ``(the context of the model that answers, its LoadedModel)``.

        Says :attr:`notice` through ``log``. A run's TensorFlow-free copy that
        cannot be loaded (corrupt, or its runtime missing) gives way to the
        run's ``model.keras``, with a one-line warning; the context returned
        then names ``model.keras``.

        Raises:
            LenetError: the model (or, after a failed copy, ``model.keras``) cannot be loaded.
        """
        from lenet_cli.runtimes.loading import open_model

        if self.notice and log is not None:
            log(self.notice)
        try:
            return self, open_model(self.ref, batch_size)
        except LenetError as exc:
            if self.keras_ref is None:
                raise
            if log is not None:
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log(
                    f"warning: {reason}; model.keras answers instead (TensorFlow: seconds to start); write the copy again with: "
                    f"{export_command(self.keras_ref.model_path.parent)}"
                )
        context = dataclasses.replace(self, ref=self.keras_ref, format="keras", keras_ref=None, notice=None)
        return context, open_model(context.ref, batch_size)

    def picture_settings(self) -> tuple[str, tuple[str, ...]]:
        """``(preprocess, class_names)`` of a context from :func:`for_pictures`, which always sets both."""
        assert self.preprocess is not None and self.class_names is not None, (
            "for_pictures sets both, and load() keeps them"
        )
        return self.preprocess, self.class_names

    @property
    def class_dataset(self) -> str | None:
        """The dataset the class names come from: the model's, else its preprocessing's family."""
        return self.metadata.get("dataset") if self.metadata.get("dataset") in CLASS_NAMES else self.preprocess

    def resolve_top_k(self, top_k: int | None) -> int:
        """The ``top_k`` to use with this model: None is the default, :data:`DEFAULT_TOP_K` or the class count if fewer.

        Raises:
            BadValue: a ``top_k`` asked for is more than the model's classes (the default never is).
        """
        classes = len(self.class_names) if self.class_names is not None else None
        if top_k is None:
            return DEFAULT_TOP_K if classes is None else min(DEFAULT_TOP_K, classes)
        if classes is not None and top_k > classes:
            raise BadValue("top_k", f"{top_k} is more than the model's {classes} classes")
        return top_k


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
        top_k: Classes listed per answer; None: :data:`~lenet_cli.core.config.DEFAULT_TOP_K`, or all of a model's
            classes when it has fewer.

    Raises:
        BadValue: on construction, a field that cannot work whatever the model (the model-dependent checks run
            once it is known).
    """

    inputs: Sequence[str] = ()
    model: str | os.PathLike | None = None
    runs_dir: str | os.PathLike | None = None
    recursive: bool = False
    files_from: str | None = None
    preprocess: str = "auto"
    invert: str = "auto"
    top_k: int | None = None

    def __post_init__(self) -> None:
        checks.one_of("preprocess", self.preprocess, ("auto", *PREPROCESS_MODES))
        checks.one_of("invert", self.invert, INVERT_MODES)
        if self.top_k is not None:
            checks.whole_at_least("top_k", self.top_k, 1)
        if self.files_from is not None and self.files_from != "-" and not Path(self.files_from).is_file():
            raise BadValue("files_from", f"{str(self.files_from)!r} is not a file (a list of input paths, one a line)")


def export_command(run_dir: Path) -> str:
    """The command that gives ``run_dir`` its TensorFlow-free copy (and records its check)."""
    run = shlex.quote(str(run_dir))
    return f"lenet export {run} --to litert --output {shlex.quote(str(run_dir / runs.FAST_MODEL_FILE))}"


def choose_engine(ref: ModelRef, engine: str | None) -> tuple[ModelRef, ModelRef | None, str | None]:
    """Which of a run's models answers under ``engine``: ``(the model, the model.keras behind it or None, a notice or None)``.

    ``auto``: a run's (or the latest run's) ``model.tflite`` when ``metrics.json``
    records its check against ``model.keras`` as OK; otherwise ``model.keras``
    with a one-line notice of why and the command that makes the copy.
    ``keras``: ``model.keras``. None: ``ref`` as it is. A model file named
    directly always answers itself.

    Raises:
        BadValue: ``engine="keras"`` for a model file that is not a ``.keras`` one, or an unknown engine.
    """
    if engine is None:
        return ref, None, None
    if engine not in ENGINES:
        raise BadValue("engine", f"{engine!r} is not one of: {', '.join(ENGINES)}")
    from lenet_cli.runtimes.formats import model_format

    if ref.run_dir is None:
        fmt = model_format(ref.model_path)
        if engine == "keras" and fmt != "keras":
            raise BadValue(
                "engine",
                f"keras needs a run directory or a .keras file, and {str(ref.model_path)!r} is not one (format: {fmt})",
            )
        return ref, None, None
    ref.run_config()  # a damaged run (config.json unreadable) is refused whichever of its models would answer
    if engine == "keras" and ref.model_path.name == runs.FAST_MODEL_FILE:
        raise BadValue(
            "engine",
            f"keras: run {ref.run_dir.name} kept no model.keras (lenet tune keeps it for the best trial only; "
            f"keep_models keeps every trial's); its TensorFlow-free {runs.FAST_MODEL_FILE} answers with engine auto",
        )
    if engine == "keras" or ref.model_path != ref.run_dir / runs.MODEL_FILE:
        return ref, None, None
    run = ref.run_dir
    fast = run / runs.FAST_MODEL_FILE
    record = runs.fast_model_record(run)
    make = export_command(run)
    if record is None:
        return (
            ref,
            None,
            (
                f"note: run {run.name} has no TensorFlow-free {runs.FAST_MODEL_FILE} checked against its model.keras "
                f"(a run of an older lenet), so model.keras answers (TensorFlow: seconds to start); make one with: {make}"
            ),
        )
    if not record.get("ok"):
        return (
            ref,
            None,
            (
                f"warning: run {run.name} has no usable TensorFlow-free {runs.FAST_MODEL_FILE} ({record.get('error')}), "
                f"so model.keras answers; make one with: {make}"
            ),
        )
    if not fast.is_file():
        return (
            ref,
            None,
            f"warning: {str(fast)!r} is missing, so model.keras answers (TensorFlow: seconds to start); write it again with: {make}",
        )
    return ModelRef(fast, run), ref, None


def builtin_notice(ref: ModelRef, runs_dir: str | os.PathLike | None = None) -> str:
    """The one line that says a built-in model answers because nothing has been trained here yet."""
    from lenet_cli.store.builtin import builtin_model

    shipped = builtin_model(ref.builtin or "")
    what = shipped.summary() if shipped is not None else f"lenet's built-in {ref.builtin} model"
    return f"note: no run under {str(runs.runs_root(runs_dir))!r} yet, so {what} answers; train your own with `lenet train`"


def preprocessing_and_classes(meta: dict[str, Any], preprocess: str, model_path: Path) -> tuple[str, tuple[str, ...]]:
    """``(preprocessing mode, class names)`` for pictures given to a model with metadata ``meta``.

    ``preprocess`` is the user's choice; ``auto`` takes the model's.

    Raises:
        ModelError: the metadata says neither (pass preprocess), or names no classes.
    """
    dataset = meta.get("dataset")
    if preprocess == "auto":
        model_preprocess = meta.get("preprocessing") or dataset
        if model_preprocess is None:
            raise ModelError(
                f"cannot tell which dataset {str(model_path)!r} was trained on; pass preprocess 'mnist' or 'fashion'"
            )
        preprocess = (
            model_preprocess if model_preprocess in PREPROCESS_MODES else "mnist"
        )  # else the MNIST family: digit-like pictures
    names = meta.get("class_names") or CLASS_NAMES.get(dataset or "") or CLASS_NAMES.get(preprocess)
    if not names:
        raise ModelError(f"cannot tell the class names of {str(model_path)!r}; pass preprocess 'mnist' or 'fashion'")
    return preprocess, tuple(str(name) for name in names)


def _metadata(ref: ModelRef, keras_ref: ModelRef | None) -> dict[str, Any]:
    """What ``ref`` says about itself; a run's copy whose metadata is unreadable is read as its model.keras would be."""
    from lenet_cli.runtimes.loading import read_metadata

    try:
        return read_metadata(ref)
    except LenetError:
        if keras_ref is None:
            raise
        return read_metadata(keras_ref)


def for_pictures(
    model: str | os.PathLike | ModelRef | None,
    runs_dir: str | os.PathLike | None = None,
    preprocess: str = "auto",
    engine: str | None = None,
    builtin_when_no_runs: bool = False,
) -> ModelContext:
    """The context of a model that answers for pictures (predict, explain, serve); ``model`` may be resolved already.

    ``engine`` chooses among a run's models (:func:`choose_engine`; None: the model as resolved).
    ``builtin_when_no_runs``: with no model and no run yet, the default built-in model answers, and the
    context's notice says so (predict and serve answer right after install).

    Raises:
        LenetError: no such model or run, or one whose dataset cannot be told.
    """
    from lenet_cli.runtimes.formats import model_format

    ref = model if isinstance(model, ModelRef) else runs.resolve_model(model, runs_dir, builtin_when_no_runs)
    ref, keras_ref, notice = choose_engine(ref, engine)
    if model is None and ref.builtin is not None:
        notice = builtin_notice(ref, runs_dir)
    meta = _metadata(ref, keras_ref)
    preprocess, class_names = preprocessing_and_classes(meta, preprocess, ref.model_path)
    return ModelContext(
        ref,
        model_format(ref.model_path),
        meta,
        preprocess,
        class_names,
        meta["dataset"],
        keras_ref=keras_ref,
        notice=notice,
    )


def for_dataset(
    model: str | os.PathLike | None,
    runs_dir: str | os.PathLike | None = None,
    dataset: str | None = None,
    data_dir: str | os.PathLike | None = None,
    engine: str | None = None,
) -> ModelContext:
    """The context of a model scored or converted on a dataset (evaluate, export): its own unless ``dataset`` names another.

    ``engine`` chooses among a run's models (:func:`choose_engine`; None: the model as resolved, as export needs).

    Raises:
        LenetError: no such model or run, or one whose dataset cannot be told and none was given.
    """
    from lenet_cli.runtimes.formats import model_format

    ref, keras_ref, notice = choose_engine(runs.resolve_model(model, runs_dir), engine)
    meta = _metadata(ref, keras_ref)
    dataset = dataset or meta["dataset"]
    if dataset is None:
        raise ModelError(
            f"cannot tell which dataset {str(ref.model_path)!r} was trained on; pass dataset 'mnist' or 'fashion'"
        )
    same_data = dataset == meta["dataset"]  # the model's own classes; another dataset brings its own
    names = (meta["class_names"] if same_data else None) or CLASS_NAMES.get(dataset)
    return ModelContext(
        ref,
        model_format(ref.model_path),
        meta,
        preprocess=meta["preprocessing"] if same_data else None,
        class_names=tuple(names) if names else None,
        dataset=dataset,
        data_dir=runs.remembered_data_dir(
            data_dir, None if ref.builtin else meta["run_config"], dataset
        ),  # a built-in's folder was not yours
        keras_ref=keras_ref,
        notice=notice,
    )
