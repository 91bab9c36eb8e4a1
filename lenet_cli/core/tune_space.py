"""What ``lenet tune`` searches: the recipe's levers, their default ranges, and the ``--space`` file that changes them.

A space maps ``lenet train`` option names (``learning-rate``, ``ema``) to a
range, a list of choices or one fixed value. The default space covers the
recipe's levers; a ``--space`` file (TOML or JSON) replaces the entries it
names and leaves the others::

    [learning-rate]              # a range; log = true samples it on a log scale
    low = 5e-4
    high = 5e-3
    log = true

    batch-size = [128, 256]      # a list: choose among these
    augment = "flip"             # one value: fixed, not searched
    [dense-units]                # a lever the default space leaves alone
    choices = [300, 600, 1200]

Pure data and checks: no Optuna here. :func:`suggest` asks any object with
Optuna's ``suggest_float`` / ``suggest_int`` / ``suggest_categorical``.

The levers themselves (:mod:`lenet_cli.core.tune_levers`) and the recipe a
trial becomes (:mod:`lenet_cli.core.train_recipe`) have modules of their own.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any, Protocol

from lenet_cli.core import config as C
from lenet_cli.core.errors import BadValue
from lenet_cli.core.train_recipe import read_recipe as read_recipe  # re-exported: cli/train_options imports it here
from lenet_cli.core.train_recipe import read_table_file
from lenet_cli.core.train_recipe import unknown_recipe_key as unknown_recipe_key  # re-exported, as read_recipe
from lenet_cli.core.tune_levers import LEVERS, Lever, option_name
from lenet_cli.core.units import plural

WARMUP_SHARE = 0.2
"""The most of a trial's epochs its warm-up may take: a longer ramp leaves a short trial little training at the full rate."""

# --- Ranges ------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Numbers from ``low`` to ``high`` (inclusive), on a log scale with ``log``, in steps of ``step`` when given."""

    low: float
    high: float
    log: bool = False
    step: float | None = None


@dataclass(frozen=True)
class Choice:
    """One of ``choices``."""

    choices: tuple[Any, ...]


@dataclass(frozen=True)
class Fixed:
    """Always ``value``: set, not searched."""

    value: Any


Param = Range | Choice | Fixed


Space = dict[str, Param]  # lenet train option name -> what the search does with it


def default_space(dataset: str) -> Space:
    """The recipe's levers, with ranges around the defaults that train well (README, "Defaults that train well").

    Epochs run up to the dataset's default budget. Flips are offered for
    clothing only: a flipped digit is another digit, or none.
    """
    budget = C.resolve_config(dataset).epochs
    clothing = dataset == "fashion"
    return {
        "learning-rate": Range(3e-4, 1e-2, log=True),
        "batch-size": Choice((64, 128, 256, 512)),
        "epochs": Range(max(1, budget // 3), budget),
        "schedule": Choice(("cosine", "constant")),
        "warmup-epochs": Range(0.0, 2.0),
        "dropout": Range(0.1, 0.6),
        "l1": Range(1e-8, 1e-4, log=True),
        "weight-decay": Range(1e-7, 1e-3, log=True),
        "augment": Choice(
            ("none", "flip", "flip-shift", "shift", "clothing") if clothing else ("none", "shift", "digits")
        ),
        "ema": Choice((0.0, 0.99, 0.999)),
        "label-smoothing": Range(0.0, 0.2),
    }


# --- The --space file ------------------------------------------------------------------

_SPEC_KEYS = {"low", "high", "log", "step", "choices", "value"}


def read_space_file(path: str | os.PathLike) -> dict[str, Any]:
    """The raw table of a ``--space`` file: TOML (``.toml``) or JSON (anything else).

    Raises:
        BadValue: the file cannot be read or parsed, or is not a table (field ``space``).
    """
    data = read_table_file(path, "space")
    if not isinstance(data, dict):
        raise BadValue(
            "space", f'{str(path)!r} must be a table of options (e.g. {{"dropout": {{"low": 0.2, "high": 0.4}}}})'
        )
    return data


def parse_param(name: str, spec: Any) -> Param:
    """One entry of a space file, checked against what ``lenet train --<name>`` accepts.

    Raises:
        BadValue: an unknown option, an empty range or list, or a value the option refuses (field ``space``).
    """
    option = option_name(str(name))
    if option not in LEVERS:
        close = difflib.get_close_matches(option, list(LEVERS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise BadValue(
            "space", f"unknown option {name!r}: {hint}a space sets these lenet train options: {', '.join(LEVERS)}"
        )
    lever = LEVERS[option]
    if isinstance(spec, list):
        spec = {"choices": spec}
    elif not isinstance(spec, dict):
        spec = {"value": spec}
    unknown = sorted(set(spec) - _SPEC_KEYS)
    if unknown:
        raise BadValue(
            "space", f"{option}: unknown key {unknown[0]!r}; use low/high (with log, step), choices, or value"
        )
    try:
        if "value" in spec:
            if len(spec) > 1:
                raise ValueError(f"{option}: a fixed value takes no {', '.join(sorted(set(spec) - {'value'}))}")
            return Fixed(lever.check(spec["value"]))
        if "choices" in spec:
            if set(spec) - {"choices"}:
                raise ValueError(f"{option}: choices take no {', '.join(sorted(set(spec) - {'choices'}))}")
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise ValueError(f"{option}: choices must be a non-empty list; received: {spec['choices']!r}")
            values = tuple(dict.fromkeys(lever.check(v) for v in spec["choices"]))
            return Fixed(values[0]) if len(values) == 1 else Choice(values)
        return _parse_range(lever, spec)
    except ValueError as exc:
        raise BadValue("space", str(exc)) from None


def _parse_range(lever: Lever, spec: dict[str, Any]) -> Param:
    option = lever.option
    if lever.kind is str:
        raise ValueError(
            f"{option} takes choices, not a range: e.g. {option} = [{', '.join(repr(c) for c in lever.choices[:2])}]"
        )
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"{option}: a range needs both low and high (or give choices, or a value)")
    low, high = lever.check(spec["low"]), lever.check(spec["high"])
    if low > high:
        raise ValueError(f"{option}: the range is empty: low {low:g} is above high {high:g}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ValueError(f"{option}: log must be true or false; received: {log!r}")
    if log and low <= 0:
        raise ValueError(f"{option}: a log range needs low > 0; received: {low:g}")
    step = spec.get("step")
    if step is not None:
        if (
            isinstance(step, bool)
            or not isinstance(step, (int, float))
            or step <= 0
            or (lever.kind is int and not float(step).is_integer())
        ):
            raise ValueError(
                f"{option}: step must be a positive {'integer' if lever.kind is int else 'number'}; received: {step!r}"
            )
        if log:
            raise ValueError(f"{option}: a range takes log or step, not both")
        step = int(step) if lever.kind is int else float(step)
    if low == high:
        return Fixed(low)
    return Range(low, high, log=log, step=step)


def parse_space(data: dict[str, Any]) -> Space:
    """Every entry of a space file's table (see :func:`parse_param`).

    Raises:
        BadValue: the first bad entry, or two spellings of one option.
    """
    space: Space = {}
    for name, spec in data.items():
        option = option_name(str(name))
        if option in space:
            raise BadValue("space", f"{option} is given twice (as {name!r} and as another spelling)")
        space[option] = parse_param(name, spec)
    return space


def build_space(dataset: str, space_file: str | os.PathLike | None = None, epochs_cap: int | None = None) -> Space:
    """The space a study searches: the default, the file's entries over it, and epochs at most ``epochs_cap``.

    Raises:
        BadValue: a bad space file, an ``epochs`` entry that ``epochs_cap`` leaves empty, or a warm-up range that
            starts above :data:`WARMUP_SHARE` of the fewest epochs a trial may train.
    """
    space = default_space(dataset)
    if space_file is not None:
        space.update(parse_space(read_space_file(space_file)))
    if epochs_cap is not None:
        space["epochs"] = _capped(space["epochs"], epochs_cap)
    _check_warmup(space)
    return space


def _fewest_epochs(param: Param) -> int:
    if isinstance(param, Range):
        return int(param.low)
    if isinstance(param, Choice):
        return int(min(param.choices))
    return int(param.value)


def _check_warmup(space: Space) -> None:
    """A warm-up range must leave every trial something to draw: its low at most a fifth of the fewest epochs."""
    warmup = space.get("warmup-epochs")
    if not isinstance(warmup, Range):
        return
    fewest = _fewest_epochs(space["epochs"])
    if warmup.low > fewest * WARMUP_SHARE:
        raise BadValue(
            "space",
            f"warmup-epochs: a trial warms up for at most a fifth of its epochs ({fewest * WARMUP_SHARE:g} of "
            f"{plural(fewest, 'epoch')}); the range starts at {warmup.low:g}: lower its low, or raise the epochs",
        )


def _capped(param: Param, cap: int) -> Param:
    if isinstance(param, Range):
        high = min(int(param.high), cap)
        low = min(int(param.low), high)
        return Fixed(low) if low == high else Range(low, high, param.log, param.step)
    if isinstance(param, Choice):
        kept = tuple(v for v in param.choices if v <= cap)
        if not kept:
            raise BadValue("space", f"every epochs choice ({', '.join(map(str, param.choices))}) is above epochs {cap}")
        return Fixed(kept[0]) if len(kept) == 1 else Choice(kept)
    if param.value > cap:
        raise BadValue("space", f"epochs is fixed at {param.value}, above epochs {cap}")
    return param


def describe(param: Param, option: str | None = None) -> str:
    """``0.0003..0.01 (log)``, ``64 | 128 | 256``, ``= 0.3``: a space entry as a person reads it (``option``: its name, for its caveats)."""
    if isinstance(param, Range):
        capped = " (at most a fifth of the trial's epochs)" if option == "warmup-epochs" else ""
        return (
            f"{param.low:g}..{param.high:g}"
            + (" (log)" if param.log else "")
            + (f" step {param.step:g}" if param.step else "")
            + capped
        )
    if isinstance(param, Choice):
        return " | ".join(str(c) for c in param.choices)
    return f"= {param.value}"


# --- Sampling --------------------------------------------------------------------------


class Suggester(Protocol):
    """What :func:`suggest` needs of an Optuna trial."""

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


def suggest(trial: Suggester, space: Space) -> dict[str, Any]:
    """One recipe drawn from ``space``: option name -> value (fixed entries included, not recorded as searched).

    A warm-up range is drawn after the epochs and ends at :data:`WARMUP_SHARE` of them (a list or a fixed
    value is taken as given).
    """
    values: dict[str, Any] = {}
    for option in sorted(
        space, key=lambda name: name == "warmup-epochs"
    ):  # the epochs first: the warm-up's range depends on them
        param = space[option]
        lever = LEVERS[option]
        if isinstance(param, Fixed):
            values[option] = param.value
        elif isinstance(param, Choice):
            values[option] = trial.suggest_categorical(option, list(param.choices))
        elif lever.kind is int:
            values[option] = trial.suggest_int(
                option, int(param.low), int(param.high), step=int(param.step or 1), log=param.log
            )
        else:
            high = float(param.high)
            if option == "warmup-epochs":
                high = min(high, values["epochs"] * WARMUP_SHARE)
            values[option] = trial.suggest_float(
                option, min(float(param.low), high), high, step=param.step, log=param.log
            )
    return {option: values[option] for option in space}


def config_overrides(values: dict[str, Any]) -> dict[str, Any]:
    """Option name -> value, as :func:`~lenet_cli.core.config.resolve_config`'s keyword arguments."""
    return {LEVERS[option].field: value for option, value in values.items()}
