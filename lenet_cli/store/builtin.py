"""The models that ship inside the package, so that ``lenet predict digit.png`` answers right after install.

Each built-in is a TensorFlow-free LiteRT file trained by lenet's default
recipe (``lenet train --dataset NAME --seed 0``), with the sidecar every
export carries (``<file>.lenet.json``: dataset, class names, preprocessing,
run config) and a model card (``<name>.card.json``): how it was made, on
which machine and commit, its test accuracy, calibration and per-class
figures, the file's SHA-256, and what it is not for. ``bench/builtin_models.py``
trains and refreshes them.

A built-in is named by its dataset (``mnist``, ``fashion``). A path or a run
of the same name wins over it, so a user's own ``runs/mnist`` is never
shadowed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lenet_cli.core.errors import ModelError

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "builtin_models"
BUILTIN_NAMES = ("mnist", "fashion")
DEFAULT_BUILTIN = "mnist"  # what predict and serve answer with when there is no run at all
CARD_SUFFIX = ".card.json"


@dataclass(frozen=True)
class BuiltinModel:
    """One shipped model: its name, its file and its card."""

    name: str
    model_path: Path
    card_path: Path

    def card(self) -> dict[str, Any]:
        """The model card as a dict.

        Raises:
            ModelError: the card is missing or damaged (a broken install).
        """
        try:
            card = json.loads(self.card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise ModelError(
                f"the built-in {self.name!r} model's card {str(self.card_path)!r} is missing or unreadable; "
                f"reinstall lenet-cli"
            ) from None
        if not isinstance(card, dict):
            raise ModelError(
                f"the built-in {self.name!r} model's card {str(self.card_path)!r} is not a JSON object; reinstall lenet-cli"
            )
        return card

    def summary(self) -> str:
        """One line for people: which model answers, and how well it reads its test split."""
        card = self.card()
        accuracy = card.get("test", {}).get("accuracy")
        figure = f", {accuracy:.2%} on its test split" if isinstance(accuracy, float) else ""
        return f"lenet's built-in {card.get('title', self.name)} model ({card.get('quantization', 'float32')}{figure})"


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model called ``name``, or None when there is none by that name (or its file is not installed)."""
    if name not in BUILTIN_NAMES:
        return None
    model_path = BUILTIN_DIR / f"{name}.tflite"
    if not model_path.is_file():
        return None
    return BuiltinModel(name, model_path, BUILTIN_DIR / f"{name}{CARD_SUFFIX}")


def builtin_models() -> list[BuiltinModel]:
    """Every built-in model this install holds, in ``BUILTIN_NAMES`` order."""
    return [model for model in map(builtin_model, BUILTIN_NAMES) if model is not None]
