"""``lenet predict``'s work: resolve the model, decode the pictures in parallel, predict in batches, yield answers in order.

Returns plain records (:class:`~lenet_cli.core.prediction.Prediction`, one per
input, in order); the command line formats them. Needs numpy and Pillow, plus
whatever runtime loads the model (TensorFlow for ``.keras``; onnxruntime or
LiteRT for exported models and a run's ``model.tflite``, which answers for a
run by default: then TensorFlow is never imported).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lenet_cli.core import checks
from lenet_cli.core.config import DEFAULT_TOP_K, ENGINES, MIN_CONFIDENCE
from lenet_cli.core.prediction import Prediction
from lenet_cli.data.picture_inputs import (
    DECODE_CHUNK,
    ChunkDecoder,
    InputItem,
    gather_inputs,
)
from lenet_cli.engine.context import ModelContext, PictureRequest


@dataclass(frozen=True)
class PredictRequest(PictureRequest):
    """What ``lenet predict`` (and :func:`lenet_cli.api.predict`) is asked to do: a :class:`PictureRequest`, and

    Attributes:
        min_confidence: Answers under this top probability are flagged ``low_confidence``.
        batch_size: Images decoded and predicted per batch.
        save_preprocessed: A folder to write the exact 28x28 inputs into, or None.
        engine: Which of a run's models answers: ``auto`` (its TensorFlow-free ``model.tflite`` when checked OK) or ``keras``.
    """

    min_confidence: float = MIN_CONFIDENCE
    batch_size: int = 512
    save_preprocessed: str | os.PathLike | None = None
    engine: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        checks.probability("min_confidence", self.min_confidence)
        checks.whole_at_least("batch_size", self.batch_size, 1)
        checks.one_of("engine", self.engine, ENGINES)


@dataclass
class PredictRun:
    """A prediction under way: the model that answers, the inputs, and the answers as they come (in input order)."""

    context: ModelContext
    items: list[InputItem]
    predictions: Iterator[Prediction]
    top_k: int  # classes each answer lists: the request's, or the default for this model


def start_predict(request: PredictRequest, log: Callable[[str], None] | None = None) -> PredictRun:
    """Resolve the model and inputs, start decoding (in worker processes for many inputs), then load the model.

    Decoding starts before the model loads, so it overlaps the runtime's start-up.

    Args:
        request: What to predict, and with which model.
        log: Receives one line when a run's ``model.keras`` answers where its TensorFlow-free copy could have, and why.

    Raises:
        LenetError: no inputs, no such model, or a ``top_k`` above the class count (:class:`BadValue`).
    """
    from lenet_cli.data.preprocess import PreprocessOptions
    from lenet_cli.engine.context import for_pictures

    items = gather_inputs(request.inputs, request.recursive, request.files_from, log=log)
    context = for_pictures(
        request.model, request.runs_dir, request.preprocess, request.engine, builtin_when_no_runs=True
    )
    top_k = context.resolve_top_k(request.top_k)
    preprocess, class_names = context.picture_settings()
    save = None if request.save_preprocessed is None else Path(request.save_preprocessed)
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    decoder = ChunkDecoder(
        items,
        PreprocessOptions(mode=preprocess, invert=request.invert),
        chunk_size=min(request.batch_size, DECODE_CHUNK),
    )
    try:
        context, loaded = context.load(log=log)
    except BaseException:
        decoder.close()
        raise
    answers = Answering(top_k, request.min_confidence, request.batch_size, request.invert, save)
    predictions = predict_items(items, loaded.predict, class_names, preprocess, answers, decoder)
    return PredictRun(context, items, predictions, top_k)


@dataclass(frozen=True)
class Answering:
    """How :func:`predict_items` turns pictures into answers, beyond the model and its classes.

    Attributes:
        top_k: Classes each answer lists.
        min_confidence: Answers under this top probability are flagged ``low_confidence``.
        batch_size: Images predicted per model call.
        invert: ``auto``, ``always`` or ``never`` (used when :func:`predict_items` makes its own decoder).
        save_preprocessed: A folder to write the exact 28x28 inputs into, or None.
    """

    top_k: int = DEFAULT_TOP_K
    min_confidence: float = MIN_CONFIDENCE
    batch_size: int = 512
    invert: str = "auto"
    save_preprocessed: Path | None = None


def predict_items(
    items: list[InputItem],
    predict_fn,
    class_names: Sequence[str],
    preprocess_mode: str,
    answering: Answering | None = None,
    decoder: ChunkDecoder | None = None,
) -> Iterator[Prediction]:
    """Yield one :class:`Prediction` per item, in order, decoding and predicting a chunk at a time.

    ``decoder`` (already decoding ``items``, perhaps in worker processes) is made here when not given.
    """
    from lenet_cli.data.preprocess import PreprocessOptions, save_preprocessed_png

    answering = answering or Answering()
    batch_size, save_preprocessed = answering.batch_size, answering.save_preprocessed
    if decoder is None:
        options = PreprocessOptions(mode=preprocess_mode, invert=answering.invert)
        decoder = ChunkDecoder(items, options, workers=1, chunk_size=batch_size)
    position = 0
    for batch_items, results in _batches(decoder, batch_size):
        good = [array for array, _ in results if array is not None]
        probabilities = (
            predict_fn(np.stack(good)[..., None].astype(np.float32)) if good else np.zeros((0, len(class_names)))
        )
        row = 0
        for number, (item, (array, error)) in enumerate(zip(batch_items, results), start=position):
            if array is None:
                yield Prediction(item.name, error=error)
                continue
            if save_preprocessed is not None:
                stem = Path(item.name).stem if item.path is not None else "stdin"
                save_preprocessed_png(array, save_preprocessed / f"{number:05d}_{stem}.png")
            yield Prediction.from_probabilities(
                item.name, probabilities[row], class_names, answering.top_k, answering.min_confidence
            )
            row += 1
        position += len(batch_items)


def _batches(decoder: ChunkDecoder, batch_size: int):
    """Decoded items and their results, regrouped into network batches of about ``batch_size`` (fewer, larger calls)."""
    items: list[InputItem] = []
    results: list[tuple[np.ndarray | None, str | None]] = []
    for chunk, decoded in decoder:
        items += chunk
        results += decoded
        if len(items) >= batch_size:
            yield items, results
            items, results = [], []
    if items:
        yield items, results
