"""The levers of a recipe: the ``lenet train`` options a search may set, each with the values that option accepts.

A ``lenet tune`` space (:mod:`lenet_cli.core.tune_space`) and a recipe file
(:mod:`lenet_cli.core.train_recipe`) both name options as ``lenet train``
spells them; each is checked here against what the option itself accepts, so
a space or a recipe never holds a value the command would refuse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from lenet_cli.core import config as C


@dataclass(frozen=True)
class Lever:
    """One ``lenet train`` option a search may set, with the values that option accepts.

    Attributes:
        option: The option's long name without dashes (``learning-rate``), as ``lenet train --help`` spells it.
        field: The :class:`~lenet_cli.core.config.TrainConfig` field (and Click parameter) it sets.
        kind: ``int``, ``float`` or ``str``.
        low, high: The option's bounds (None: unbounded); ``low_open`` / ``high_open`` exclude the bound itself.
        choices: The only values a ``str`` option takes.
    """

    option: str
    field: str
    kind: type
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def check(self, value: Any) -> Any:
        """``value`` as this option's type.

        Raises:
            ValueError: a value ``lenet train --<option>`` would refuse.
        """
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{self.option} takes one of {', '.join(self.choices)}; received: {value!r}")
            return value
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or (self.kind is int and not float(value).is_integer())
        ):
            raise ValueError(
                f"{self.option} takes {'an integer' if self.kind is int else 'a number'}; received: {value!r}"
            )
        number = int(value) if self.kind is int else float(value)
        too_low = self.low is not None and (number < self.low or (self.low_open and number == self.low))
        too_high = self.high is not None and (number > self.high or (self.high_open and number == self.high))
        if too_low or too_high or (isinstance(number, float) and not math.isfinite(number)):
            raise ValueError(f"{self.option} must be {self.bounds_text()}; received: {value!r}")
        return number

    def bounds_text(self) -> str:
        low = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        high = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "a number"


LEVERS: dict[str, Lever] = {
    lever.option: lever
    for lever in (
        Lever("epochs", "epochs", int, low=1),
        Lever("batch-size", "batch_size", int, low=1),
        Lever("optimizer", "optimizer", str, choices=C.OPTIMIZERS),
        Lever("learning-rate", "learning_rate", float, low=0, low_open=True),
        Lever("schedule", "schedule", str, choices=C.SCHEDULES),
        Lever("warmup-epochs", "warmup_epochs", float, low=0),
        Lever("l1", "l1", float, low=0),
        Lever("weight-decay", "weight_decay", float, low=0),
        Lever("dropout", "dropout", float, low=0, high=1, high_open=True),
        Lever("dense-units", "dense_units", int, low=1),
        Lever("augment", "augment", str, choices=C.AUGMENTATIONS),
        Lever("ema", "ema_momentum", float, low=0, high=1, high_open=True),
        Lever("label-smoothing", "label_smoothing", float, low=0, high=1, high_open=True),
    )
}
"""Every option a space may name, keyed by its ``lenet train`` spelling (a test checks them against the command)."""


def option_name(name: str) -> str:
    """A space or recipe key as ``lenet train`` spells the option: ``learning_rate`` and ``ema_momentum`` are accepted too."""
    for lever in LEVERS.values():
        if name in (lever.option, lever.field):
            return lever.option
    return name
