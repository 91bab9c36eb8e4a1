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


def finite_at_least(field: str, value: Any, low: float, *, open_low: bool = False) -> None:
    """``value`` is a finite number of at least ``low`` (above it, with ``open_low``); NaN and infinity are refused."""
    number = _number(field, value)
    if number < low or (open_low and number == low):
        raise BadValue(field, f"must be {'above' if open_low else 'at least'} {low:g}, not {value!r}")


def fraction(field: str, value: Any) -> None:
    """``value`` is a finite number in [0, 1): a rate or a share that cannot be the whole (a dropout of 1 drops everything)."""
    if not 0.0 <= _number(field, value) < 1.0:
        raise BadValue(field, f"must be at least 0 and below 1, not {value!r}")


def flag(field: str, value: Any) -> None:
    """``value`` is True or False (not a string such as ``"false"``, which Python would read as true)."""
    if not isinstance(value, bool):
        raise BadValue(field, f"must be True or False, not {value!r}")


def whole(field: str, value: Any) -> None:
    """``value`` is an int (a bool is not)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadValue(field, f"must be a whole number, not {value!r}")


def names_among(field: str, values: Any, choices: Iterable[str]) -> None:
    """``values`` is a tuple or list of names, each one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, str) for v in values):
        raise BadValue(field, f"must be a list of names, not {values!r}")
    for value in values:
        one_of(field, value, choices)
