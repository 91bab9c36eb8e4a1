"""lenet's Python API: the same verbs as the command line, with keyword arguments and dataclass results.

Every ``lenet`` command is a thin shell over the engine functions these call,
so a script gets exactly what the command line prints::

    from lenet_cli import api

    run = api.train(dataset="mnist", epochs=1, train_limit=2000, output="runs/quick")
    report = api.evaluate(model=run.run_dir)
    answers = api.predict(["digit.png"], model=run.run_dir)
    api.export(model=run.run_dir, output="model.onnx")
    keras_model = api.load_model(run.run_dir)

Errors are :class:`lenet_cli.core.errors.LenetError` subclasses with a
one-line message. Importing this module is light; TensorFlow loads only when
a verb needs it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lenet_cli.core.prediction import Prediction
from lenet_cli.engine.evaluate import EvaluateRequest, EvaluateResult
from lenet_cli.engine.explain import ExplainRequest, ExplainResult
from lenet_cli.engine.export_request import ExportRequest
from lenet_cli.engine.export_write import ExportResult
from lenet_cli.engine.predict import PredictRequest
from lenet_cli.engine.train import TrainOutcome, TrainRequest

__all__ = [
    "train",
    "evaluate",
    "predict",
    "explain",
    "export",
    "tune",
    "load_model",
    "benchmark",
    "list_runs",
    "tag_run",
    "compare_runs",
    "remove_runs",
    "prune_runs",
]

_RUN_OPTIONS = {f for f in TrainRequest.__dataclass_fields__ if f != "config"}


def train(dataset: str | None = None, preset: str | None = None, **options: Any) -> TrainOutcome:
    """Train a network as ``lenet train`` does, and return the finished run.

    Args:
        dataset: A dataset name (``mnist``, ``fashion``, ...) or the path of your own data [default: mnist].
        preset: ``default``, or ``seed`` for the original tutorial's values [default: default].
        **options: Any recipe field of :class:`lenet_cli.core.config.TrainConfig` (``epochs``,
            ``batch_size``, ``learning_rate``, ``augment``, ``train_limit``, ...), and any field of
            :class:`lenet_cli.engine.train.TrainRequest` (``output``, ``runs_dir``, ``data_dir``,
            ``tensorboard``, ...). ``resume``: a run to continue from its last completed epoch (its folder, or its
            name under ``runs_dir``), as ``lenet train --resume RUN`` does: with its saved recipe, of which only
            ``epochs`` may be given (the run's new end).

    Returns:
        The run directory, its metrics (``metrics["test_accuracy"]``) and history.

    Raises:
        BadValue: a value refused before any data loads (``exc.field``: ``epochs``, ``dropout``, ``resume``, ...).
        RunError: ``resume`` names a run that has finished or cannot be resumed.
    """
    from lenet_cli.engine.train import train as train_run

    run_options = {k: options.pop(k) for k in list(options) if k in _RUN_OPTIONS}
    resume = run_options.pop("resume", False)
    if resume is None or resume is False:
        from lenet_cli.core.config import TrainConfig, resolve_config

        dataset = TrainConfig.dataset if dataset is None else dataset
        preset = TrainConfig.preset if preset is None else preset
        request = TrainRequest(resolve_config(dataset, preset, **options), **run_options)
    else:
        from lenet_cli.engine.resume import resume_request

        run = run_options.get("output") if resume is True else resume  # resume=True: continue ``output``
        request = resume_request(run, {"dataset": dataset, "preset": preset, **options}, **run_options)
    return train_run(request)


def evaluate(model: str | os.PathLike | None = None, **options: Any) -> EvaluateResult:
    """Score a model as ``lenet evaluate`` does; ``options`` are :class:`~lenet_cli.engine.evaluate.EvaluateRequest`'s fields.

    ``result.report`` is what ``lenet evaluate --format json`` prints.
    """
    from lenet_cli.engine.evaluate import evaluate as run

    return run(EvaluateRequest(model=model, **options))


def predict(
    inputs: Sequence[str | os.PathLike], model: str | os.PathLike | None = None, **options: Any
) -> list[Prediction]:
    """Classify pictures as ``lenet predict`` does: one :class:`Prediction` per input, in order (``error`` set for a bad one).

    ``options`` are :class:`~lenet_cli.engine.predict.PredictRequest`'s fields (``top_k``, ``preprocess``, ...).
    """
    from lenet_cli.engine.predict import start_predict

    run = start_predict(PredictRequest(inputs=[os.fspath(i) for i in inputs], model=model, **options))
    return list(run.predictions)


def explain(
    inputs: Sequence[str | os.PathLike], model: str | os.PathLike | None = None, **options: Any
) -> ExplainResult:
    """Write explanation sheets as ``lenet explain`` does; ``options`` are :class:`~lenet_cli.engine.explain.ExplainRequest`'s fields."""
    from lenet_cli.engine.explain import explain as run

    return run(ExplainRequest(inputs=[os.fspath(i) for i in inputs], model=model, **options))


def export(
    model: str | os.PathLike | None = None, *, output: str | os.PathLike, to: str | None = None, **options: Any
) -> list[ExportResult]:
    """Export and verify a model as ``lenet export`` does.

    Args:
        model: A run directory or ``.keras`` file; None for the latest run.
        output: The file to write (a folder for ``savedmodel`` and ``all``).
        to: ``keras``, ``savedmodel``, ``litert``, ``onnx`` or ``all``; None: from ``output``'s suffix
            (``savedmodel`` with ``serving_version``).
        **options: The other fields of :class:`~lenet_cli.engine.export_request.ExportRequest`: ``quantize``, ``dataset``,
            ``runs_dir``, ``data_dir``, ``verify``, and ``serving_version`` (TensorFlow Serving's layout: ``output`` is
            the model's base folder, the SavedModel goes in ``<output>/<N>/``).

    Raises:
        BadValue: a value refused before any work (``exc.field``: ``to``, ``quantize``, ``output``, ...).
    """
    from lenet_cli.engine.export import export_model

    return export_model(ExportRequest(model=model, output=output, to=to, **options))


def benchmark(model: str | os.PathLike | None = None, **options: Any):
    """Export a Keras model to every format and measure each, as ``lenet benchmark`` does.

    ``options`` are :class:`~lenet_cli.engine.benchmark.BenchmarkRequest`'s fields (``formats``, ``count``, ``batch_size``,
    ``output``, ``plot``, ``cold_starts``, ...).

    Returns:
        A :class:`~lenet_cli.engine.benchmark.BenchmarkResult`: one row per format (``result.rows``), the machine and the
        library versions; ``result.to_json_dict()`` is what ``lenet benchmark --format json`` prints.
    """
    from lenet_cli.engine.benchmark import BenchmarkRequest
    from lenet_cli.engine.benchmark import benchmark as run

    return run(BenchmarkRequest(model=model, **options))


def tune(dataset: str = "mnist", **options: Any):
    """Search for the best recipe as ``lenet tune`` does; ``options`` are :class:`~lenet_cli.engine.tune.TuneRequest`'s fields.

    Returns:
        A :class:`~lenet_cli.engine.tune.TuneOutcome`: the trials, the best one with its test accuracy, the recipe file.
    """
    from lenet_cli.engine.tune import TuneRequest
    from lenet_cli.engine.tune import tune as run

    return run(TuneRequest(dataset=dataset, **options))


def load_model(model: str | os.PathLike | None = None, runs_dir: str | os.PathLike | None = None):
    """A plain ``keras.Model`` (outputs class probabilities) from a run directory or ``.keras`` file; None: the latest run.

    Loaded with ``safe_mode=True``: no code from the file runs.
    """
    from lenet_cli.core.errors import ModelError
    from lenet_cli.model.network import load_model_file
    from lenet_cli.runtimes.formats import model_format
    from lenet_cli.store import runs

    ref = runs.resolve_model(model, runs_dir)
    if model_format(ref.model_path) != "keras":
        raise ModelError(
            f"{str(ref.model_path)!r} is not a .keras model; load_model returns Keras models (open exports with their runtime)"
        )
    return load_model_file(ref.model_path)


# --- The runs folder: list, tag, compare, remove, prune (``lenet runs``) ---------------------------------------


def list_runs(
    runs_dir: str | os.PathLike | None = None, tags: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """The runs folder as ``lenet runs --format json`` lists it, newest first.

    Args:
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        tags: Keep only runs with every one of these tags (key -> value, or None for any value).
    """
    from lenet_cli.engine.runs import list_runs as listing

    return [summary.to_dict() for summary in listing(runs_dir, tags)]


def tag_run(
    run: str | os.PathLike,
    tags: dict[str, str] | None = None,
    *,
    remove: Sequence[str] = (),
    note: str | None = None,
    runs_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Set or remove a run's tags, or give it a note (``note=""`` removes it), as ``lenet runs tag`` and ``lenet runs note`` do.

    Tags live in the run's ``tags.json``; ``lenet runs --tag key=value`` filters on them. Returns the run's record.
    """
    from lenet_cli.engine.runs_tidy import TagRequest
    from lenet_cli.engine.runs_tidy import tag_run as apply

    return apply(TagRequest(run, tags or {}, tuple(remove), note, runs_dir)).to_dict()


def compare_runs(
    runs: Sequence[str | os.PathLike],
    *,
    runs_dir: str | os.PathLike | None = None,
    include_same: bool = False,
    plot: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Two or more runs side by side, as ``lenet runs compare --format json`` prints them.

    ``rows`` hold ``section`` (config, metrics, run), ``key``, ``values`` (one per run) and ``same``; ``plot`` writes their
    validation curves overlaid in one PNG.
    """
    from lenet_cli.engine.runs_compare import CompareRequest
    from lenet_cli.engine.runs_compare import compare_runs as compare

    return compare(CompareRequest(tuple(runs), runs_dir, include_same, plot))


def remove_runs(
    runs: Sequence[str | os.PathLike],
    *,
    runs_dir: str | os.PathLike | None = None,
    force: bool = False,
    dry_run: bool = False,
) -> list[dict[str, Any]]:
    """Remove runs as ``lenet runs rm`` does: all or none; one training now, or the run ``LATEST`` names, only with ``force``.

    Returns one record per run removed (``removed`` is False in a dry run).
    """
    from lenet_cli.engine.runs_tidy import RemoveRequest
    from lenet_cli.engine.runs_tidy import remove_runs as remove

    return [removal.to_dict() for removal in remove(RemoveRequest(tuple(runs), runs_dir, force, dry_run))]


def prune_runs(
    keep: int,
    *,
    by: str = "val_accuracy",
    older_than: float | None = None,
    study: str | None = None,
    runs_dir: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Keep the ``keep`` best runs of each dataset and remove the rest, as ``lenet runs prune`` does.

    Args:
        keep: Runs kept per dataset.
        by: ``val_accuracy``, ``test_accuracy`` (highest kept) or ``started`` (newest kept).
        older_than: Remove only runs started at least this many seconds ago.
        study: Prune this ``lenet tune`` study's trials instead of the runs folder's own runs.
        runs_dir: The runs folder (None: ``$LENET_RUNS_DIR`` or ``./runs``).
        dry_run: Only say what would be removed.

    Returns:
        ``removed`` (records), ``kept`` (names), ``protected`` (name -> why), ``freed_bytes``, ``dry_run``.
    """
    from lenet_cli.engine.runs_tidy import PruneRequest
    from lenet_cli.engine.runs_tidy import prune_runs as prune

    return prune(PruneRequest(keep, by, older_than, study, runs_dir, dry_run)).to_dict()
