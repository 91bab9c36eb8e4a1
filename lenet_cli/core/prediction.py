"""One answer for one picture: the record ``lenet predict``, ``lenet serve`` and the Python API return.

Pure numpy: it turns a row of class probabilities into the top classes and the unsure flag.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Prediction:
    """The answer for one input (``error`` set and the rest empty when it failed).

    ``low_confidence`` flags an answer whose top probability is under the
    ``--min-confidence`` threshold: the network is unsure, so a person should
    look (``lenet evaluate`` reports how often it fires and how many mistakes
    it catches).
    """

    path: str
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[dict] = field(default_factory=list)
    error: str | None = None
    low_confidence: bool | None = None

    @classmethod
    def from_probabilities(
        cls, path: str, probabilities: np.ndarray, class_names: Sequence[str], top_k: int, min_confidence: float
    ) -> Prediction:
        """The answer for one image from the network's class probabilities (the top ``top_k`` listed, best first)."""
        k = max(1, min(top_k, len(class_names)))
        order = np.argsort(-probabilities, kind="stable")[:k]
        best = int(order[0])
        confidence = float(probabilities[best])
        return cls(
            path,
            label=class_names[best],
            index=best,
            confidence=confidence,
            top_k=[
                {"label": class_names[int(i)], "index": int(i), "confidence": float(probabilities[int(i)])}
                for i in order
            ],
            low_confidence=confidence < min_confidence,
        )

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "label": self.label,
            "index": self.index,
            "confidence": self.confidence,
            "top_k": self.top_k,
            "low_confidence": self.low_confidence,
            "error": self.error,
        }
