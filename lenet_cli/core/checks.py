"""The checks a request object runs on its own fields, so the Python API and the command line refuse the same values.

Each raises :class:`~lenet_cli.core.errors.BadValue` whose ``field`` names the parameter (``top_k``), never a
command-line flag, with a message that says what is wrong with the value: the command line prints it under the
field's option (``Invalid value for '--top-k': must be at least 1, not 0``), and API callers read ``exc.field``.
Click's option types stay for completion and instant help; these are the checks that decide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from lenet_cli.core.errors import BadValue


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(field, f"must be a number, not {value!r}")
    if not math.isfinite(value):
        raise BadValue(field, f"must be a finite number, not {value!r}")
    return float(value)


def whole_at_least(field: str, value: Any, low: int) -> None:
    """``value`` is an int of at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(field, f"must be a whole number, not {value!r}")
    if value < low:
        raise BadValue(field, f"must be at least {low}, not {value}")


def probability(field: str, value: Any) -> None:
    """``value`` is a finite number in [0, 1] (NaN would pass a range check and never compare true)."""
    if not 0.0 <= _number(field, value) <= 1.0:
        raise BadValue(field, f"must be between 0 and 1, not {value!r}")


def one_of(field: str, value: Any, choices: Iterable[str]) -> None:
    """``value`` is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise BadValue(field, f"{value!r} is not one of: {', '.join(choices)}")
