"""``lenet serve``'s settings in one frozen dataclass (the CLI's defaults come from here).

Import-light on purpose: ``lenet serve --help`` reads these defaults without
loading the web stack or TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenet_cli.core.config import DEFAULT_TOP_K, MIN_CONFIDENCE

MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """How the server batches, what it accepts, and how it preprocesses by default.

    Attributes:
        batching: Merge concurrent requests into one model call (see :mod:`lenet_cli.serve.batching`).
        max_batch: Most images in one model call.
        batch_timeout_ms: How long a batch may wait for requests already being read or decoded
            (never when none are; a lone request goes straight through).
        max_bytes: Largest request body accepted (413 above it).
        max_images: Most images in one request (413 above it).
        preprocess: Default for the ``preprocess`` query parameter; ``auto`` = the model's dataset.
        invert: Default for the ``invert`` query parameter.
        top_k: Default for the ``top_k`` query parameter.
        min_confidence: Default for the ``min_confidence`` query parameter (answers below it are flagged ``low_confidence``).
        decode_threads: Threads that parse and preprocess uploads [None: one per CPU this process may use].
    """

    batching: bool = True
    max_batch: int = 64
    batch_timeout_ms: float = 2.0
    max_bytes: int = 8 * MIB
    max_images: int = 256
    preprocess: str = "auto"
    invert: str = "auto"
    top_k: int = DEFAULT_TOP_K
    min_confidence: float = MIN_CONFIDENCE
    decode_threads: int | None = None
