"""How ``lenet benchmark`` times a model: batch-1 latency, throughput at a batch size, and a cold start in a fresh process.

Each is a small function of a predict callable (or a file), so each can be checked alone. The rules that make the
figures comparable across formats live here, once:

* every timed call comes after warm-up calls of the same shape (graph tracing, tensor allocation and the first
  invocation's one-off costs are not latency);
* a measurement stops at a number of calls or a time budget, whichever comes first, so a slow format cannot make
  the whole command slow, and a fast one is still timed on many calls;
* a cold start is a new Python process that loads the file through :func:`lenet_cli.runtimes.loading.open_model`
  and answers one image, timed from its start to its exit: what a script that runs ``lenet predict`` once waits for.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LATENCY_WARMUP = 20  # untimed batch-1 calls first
LATENCY_RUNS = 200  # timed batch-1 calls at most
LATENCY_SECONDS = 2.0  # ... or this long, whichever comes first (at least LATENCY_MIN_RUNS calls)
LATENCY_MIN_RUNS = 20
THROUGHPUT_WARMUP = 2  # untimed full-batch calls first
THROUGHPUT_SECONDS = 1.0  # full-batch calls for at least this long ...
THROUGHPUT_MIN_CALLS = 3  # ... and at least this many
COLD_START_TIMEOUT_S = 300

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Latency:
    """Batch-1 latency over ``runs`` timed calls, in milliseconds."""

    p50_ms: float
    p95_ms: float
    runs: int


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolated as numpy's default does."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def batch1_latency(
    predict: Predict,
    images: np.ndarray,
    *,
    warmup: int = LATENCY_WARMUP,
    runs: int = LATENCY_RUNS,
    budget_s: float = LATENCY_SECONDS,
) -> Latency:
    """Time ``predict`` on one image at a time, cycling through ``images``, after ``warmup`` untimed calls.

    Stops after ``runs`` timed calls or ``budget_s`` seconds, whichever comes first, but never before
    :data:`LATENCY_MIN_RUNS` calls (or ``runs``, if fewer).
    """
    for i in range(warmup):
        predict(images[i % len(images)][None])
    durations: list[float] = []
    started = time.perf_counter()
    while len(durations) < runs and (
        len(durations) < min(runs, LATENCY_MIN_RUNS) or time.perf_counter() - started < budget_s
    ):
        image = images[len(durations) % len(images)][None]
        before = time.perf_counter()
        predict(image)
        durations.append((time.perf_counter() - before) * 1000.0)
    return Latency(percentile(durations, 50), percentile(durations, 95), len(durations))


def full_batch(images: np.ndarray, batch_size: int) -> np.ndarray:
    """Exactly ``batch_size`` images: the first ones, repeated when there are fewer (throughput is measured on full batches)."""
    repeats = -(-batch_size // len(images))
    return np.concatenate([images] * repeats)[:batch_size] if repeats > 1 else images[:batch_size]


def images_per_second(
    predict: Predict,
    images: np.ndarray,
    batch_size: int,
    *,
    warmup: int = THROUGHPUT_WARMUP,
    budget_s: float = THROUGHPUT_SECONDS,
    min_calls: int = THROUGHPUT_MIN_CALLS,
) -> float:
    """Images per second when ``predict`` is called on full batches of ``batch_size`` images, after ``warmup`` calls."""
    batch = full_batch(images, batch_size)
    for _ in range(warmup):
        predict(batch)
    calls = 0
    started = time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < budget_s:
        predict(batch)
        calls += 1
    return calls * len(batch) / (time.perf_counter() - started)


COLD_START_SCRIPT = """
import sys
from pathlib import Path
from lenet_cli.core.tensorflow_env import prepare_tensorflow_env
prepare_tensorflow_env()
import numpy as np
from lenet_cli.runtimes.loading import open_model
from lenet_cli.store.runs import ModelRef
model = open_model(ModelRef(Path(sys.argv[1]), None))
print(int(model.predict(np.zeros((1, 28, 28, 1), np.float32)).argmax()))
"""
"""What a cold start runs: the interpreter, lenet's loader and the format's runtime, one answer, exit."""


def cold_start_seconds(path: Path, repeats: int) -> list[float]:
    """Seconds from starting a fresh process that loads ``path`` and answers one image to its exit, ``repeats`` times.

    Raises:
        RuntimeError: a process failed; the message is its last line on stderr.
    """
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", COLD_START_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            timeout=COLD_START_TIMEOUT_S,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            raise RuntimeError(f"the cold-start process failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
        times.append(seconds)
    return times


def median(values: list[float]) -> float:
    return float(statistics.median(values))
