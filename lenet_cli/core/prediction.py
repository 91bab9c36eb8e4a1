"""One answer for one picture: the records ``lenet predict``, ``lenet serve``, ``lenet explain`` and the Python API return.

Pure numpy: it turns a row of class probabilities into the top classes and the unsure flag. A
:class:`Prediction` and an :class:`Explanation` share what every answer says (:class:`Answer`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Answer:
    """What every answer for one input says: the input, the top class, its confidence and the top k, or the error."""

    path: str
    label: str | None = None
    index: int | None = None
    confidence: float | None = None
    top_k: list[dict] = field(default_factory=list)
    error: str | None = None


@dataclass
class Prediction(Answer):
    """The answer for one input (``error`` set and the rest empty when it failed).

    ``low_confidence`` flags an answer whose top probability is under the
    ``min_confidence`` threshold: the network is unsure, so a person should
    look (``lenet evaluate`` reports how often it fires and how many mistakes
    it catches).
    """

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


@dataclass
class Explanation(Answer):
    """One input's explanation: its answer, the attribution map and its check, and the sheet's path.

    ``error`` is set and the rest empty when it failed. What ``lenet explain`` and
    :func:`lenet_cli.api.explain` return, one per input.
    """

    method: str | None = None
    target: dict | None = None
    attribution: np.ndarray | None = field(default=None, repr=False)
    completeness_gap: float | None = None
    logit_difference: float | None = None
    steps_used: int | None = None
    attribution_reliable: bool | None = None  # Integrated Gradients: the gap within the limit (None for occlusion)
    sheet: str | None = None
    # for the sheet only
    original: np.ndarray | None = field(default=None, repr=False)
    original_size: tuple[int, int] | None = None  # (width, height) of the file; ``original`` may be a thumbnail
    network_input: np.ndarray | None = field(default=None, repr=False)
    probabilities: np.ndarray | None = field(default=None, repr=False)
    conv_1_maps: np.ndarray | None = field(default=None, repr=False)
    conv_2_maps: np.ndarray | None = field(default=None, repr=False)

    def release_pictures(self) -> None:
        """Drop the arrays only the sheet needs (feature maps weigh ~66 KB per image)."""
        self.original = self.original_size = self.network_input = self.probabilities = self.conv_1_maps = (
            self.conv_2_maps
        ) = None

    def to_dict(self, decimals: int = 6) -> dict:
        """The JSON record: the prediction, the method, the 28x28 map (rounded), the gap and its verdict, the sheet's path."""
        attribution = None
        if self.attribution is not None:
            attribution = np.round(self.attribution.astype(np.float64), decimals).tolist()
        return {
            "path": self.path,
            "label": self.label,
            "index": self.index,
            "confidence": self.confidence,
            "top_k": self.top_k,
            "method": self.method,
            "target": self.target,
            "attribution": attribution,
            "completeness_gap": self.completeness_gap,
            "logit_difference": self.logit_difference,
            "steps_used": self.steps_used,
            "attribution_reliable": self.attribution_reliable,
            "sheet": self.sheet,
            "error": self.error,
        }
