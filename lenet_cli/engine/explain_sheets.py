"""Explanation sheets: one PNG per picture, named after it, rendered in worker processes while the next pictures are explained.

:mod:`lenet_cli.engine.explain` computes each explanation; this module turns
it into the picklable content a sheet shows (:mod:`lenet_cli.viz.explain_plots`
draws it) and writes the files.
"""

from __future__ import annotations

import os
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from lenet_cli.core.prediction import Explanation
from lenet_cli.store.runs import FAST_MODEL_FILE


class Explainer(Protocol):
    """What a sheet reads from the explainer that made its explanation (:class:`lenet_cli.engine.explain.Explainer`)."""

    loaded: Any  # the loaded model: its format, path and run config say why a sheet lacks feature maps
    class_names: list[str]
    gap_limit: float
    filters: Any  # conv_1's kernels, or None without a Keras model

    def detail(self, steps_used: int | None = None) -> str: ...


def sheet_name(item_name: str, taken: set[str]) -> str:
    """A file name for an input's sheet: its stem (``stdin`` for ``-``), numbered when a stem repeats."""
    stem = "stdin" if item_name == "<stdin>" else Path(item_name).stem or "image"
    stem = "".join(ch if ch.isprintable() and ch not in "/\\" else "_" for ch in stem)
    name = f"{stem}.png"
    number = 2
    while name in taken:
        name = f"{stem}-{number}.png"
        number += 1
    taken.add(name)
    return name


def sheet_content(explanation: Explanation, explainer: Explainer, model_label: str, dataset: str | None, top_k: int):
    """What ``explanation``'s sheet shows, as a picklable :class:`~lenet_cli.viz.explain_plots.SheetContent`."""
    from lenet_cli.viz.explain_plots import SheetContent

    fmt = {"onnx": ".onnx", "litert": ".tflite", "savedmodel": "SavedModel"}.get(
        explainer.loaded.format, explainer.loaded.format
    )
    reason = f"they need a .keras model; this is a {fmt} model"
    if explainer.loaded.path.name == FAST_MODEL_FILE and explainer.loaded.run_config is not None:
        reason = "they need the run's model.keras (engine 'keras'); this is its TensorFlow-free model.tflite"
    original = explanation.original if explanation.original is not None else explanation.network_input
    assert (
        original is not None
        and explanation.network_input is not None
        and explanation.probabilities is not None
        and explanation.method is not None
        and explanation.target is not None
        and explanation.attribution is not None
    ), "only an explained input (error None) gets a sheet, and Explainer.explain fills all of these"
    return SheetContent(
        name=explanation.path,
        model=model_label,
        dataset=dataset,
        original=original,
        network_input=explanation.network_input,
        class_names=explainer.class_names,
        probabilities=explanation.probabilities,
        top_k=top_k,
        method=explanation.method,
        method_detail=explainer.detail(explanation.steps_used),
        target=explanation.target["index"],
        attribution=explanation.attribution,
        completeness_gap=explanation.completeness_gap,
        logit_difference=explanation.logit_difference,
        attribution_reliable=explanation.attribution_reliable,
        gap_limit=explainer.gap_limit if explanation.completeness_gap is not None else None,
        conv_1_maps=explanation.conv_1_maps,
        conv_2_maps=explanation.conv_2_maps,
        conv_1_filters=explainer.filters,
        unavailable_reason=reason,
        original_size=explanation.original_size,
    )


def render_sheet_file(content, path: Path) -> Path:
    """Draw a sheet and write it to ``path`` atomically (run in sheet-writing worker processes too)."""
    from lenet_cli.store.atomic import write_bytes_atomic
    from lenet_cli.viz.explain_plots import render_explanation_png

    return write_bytes_atomic(path, render_explanation_png(content))


def write_sheet(
    explanation: Explanation, explainer: Explainer, path: Path, model_label: str, dataset: str | None, top_k: int
) -> Path:
    """Render ``explanation``'s sheet and write it to ``path`` atomically; records the path in the explanation."""
    render_sheet_file(sheet_content(explanation, explainer, model_label, dataset, top_k), path)
    explanation.sheet = os.fspath(path)
    return path


PARALLEL_SHEETS_MIN = 4
"""From this many inputs on, sheets are drawn in worker processes (each costs ~0.5 s of matplotlib)."""


def _start_sheet_worker() -> None:
    """Leave Ctrl-C to the parent, and import matplotlib now, while the parent loads the model."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    import lenet_cli.viz.explain_plots  # noqa: F401


def _nothing() -> None:
    return None


class SheetWriter:
    """Write sheets in order: in spawned worker processes, or in this one.

    Drawing a sheet (matplotlib, ~0.5 s) costs more than explaining an image,
    so with many inputs it runs in workers while this process explains the
    next batch. They are *spawned*, not forked: this process has started
    TensorFlow's threads, and only numpy, Pillow and matplotlib run in them.
    Create it before the model loads, so the workers import matplotlib
    meanwhile. :meth:`submit` and :meth:`finish` hand back the explanations
    whose sheets are written, in input order.
    """

    def __init__(self, workers: int = 1):
        from collections import deque

        self.pool = None
        self.pending: deque = deque()
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_sheet_worker
            )
            for _ in range(workers):
                self.pool.submit(_nothing)  # start every worker now

    def submit(self, explanation: Explanation, content=None, path: Path | None = None) -> list[Explanation]:
        """Queue ``explanation`` (its sheet drawn from ``content`` into ``path``; failed inputs pass none)."""
        future = None
        if content is not None:
            assert path is not None, "a sheet's content always comes with the path it is written to"
            explanation.sheet = os.fspath(path)
            if self.pool is not None:
                try:
                    future = self.pool.submit(render_sheet_file, content, path)
                except BrokenProcessPool:
                    self._fall_back()
            if self.pool is None:
                render_sheet_file(content, path)
                content = None
        self.pending.append((explanation, future, content, path))
        return self._collect(wait=False)

    def finish(self) -> list[Explanation]:
        """Wait for every queued sheet; the explanations not handed back yet."""
        return self._collect(wait=True)

    def _collect(self, wait: bool) -> list[Explanation]:
        done = []
        while self.pending:
            explanation, future, content, path = self.pending[0]
            if future is not None:
                if not (wait or future.done()):
                    break
                try:
                    future.result()
                except BrokenProcessPool:
                    # a worker died (killed, out of memory, or a program that spawns cannot start): draw the rest here
                    self._fall_back()
                    render_sheet_file(content, path)
            self.pending.popleft()
            done.append(explanation)
        return done

    def _fall_back(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
