"""A run's recipe as ``lenet train`` options: what ``lenet tune`` writes as its best and ``lenet train --recipe`` reads.

A recipe file is TOML or JSON, either a plain table of options or the
``recipe`` table of ``lenet tune``'s ``<study>-best.json``. The reading of
such a table file is shared with ``lenet tune --space`` (:mod:`lenet_cli.core.tune_space`).
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

from lenet_cli.core import config as C
from lenet_cli.core.errors import BadValue
from lenet_cli.core.tune_levers import LEVERS

RECIPE_OPTIONS = ("dataset", *LEVERS, "calibrate", "precision", "seed")
"""The ``lenet train`` options a recipe file (``<study>-best.json``) sets: the dataset and the whole recipe."""


def read_table_file(path: str | os.PathLike, field: str) -> Any:
    """The parsed content of a ``--space`` or ``--recipe`` file: TOML (``.toml``) or JSON (anything else).

    Raises:
        BadValue: the file cannot be read or parsed (``field`` names the request field it was given as).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadValue(field, f"cannot read {str(path)!r}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            raise BadValue(field, f"{str(path)!r}: reading TOML needs Python 3.11; write it as JSON") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadValue(field, f"{str(path)!r} is not valid TOML: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadValue(field, f"{str(path)!r} is not valid JSON ({exc}); name it .toml if it is TOML") from None


def recipe_of(config: C.TrainConfig) -> dict[str, Any]:
    """A run's recipe as ``lenet train`` options (:data:`RECIPE_OPTIONS`): what ``lenet train --recipe`` reads back."""
    fields = {
        "dataset": "dataset",
        "calibrate": "calibrate",
        "precision": "precision",
        "seed": "seed",
        **{option: lever.field for option, lever in LEVERS.items()},
    }
    return {option: getattr(config, fields[option]) for option in RECIPE_OPTIONS}


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """A recipe file's options: the ``recipe`` table of ``lenet tune``'s ``<study>-best.json``, or a plain table of options,
    in TOML (``.toml``: ``dropout = 0.3``) or JSON (``{"dropout": 0.3}``), as a space file may be.

    Raises:
        BadValue: the file cannot be read or parsed, or holds no table of options (field ``recipe``).
    """
    data = read_table_file(path, "recipe")
    recipe = data.get("recipe", data) if isinstance(data, dict) else None
    if not isinstance(recipe, dict):
        raise BadValue(
            "recipe",
            f"{str(path)!r} holds no recipe: expected a table of lenet train options "
            f'(TOML: dropout = 0.3; JSON: {{"dropout": 0.3}})',
        )
    return recipe


def unknown_recipe_key(key: str, known: list[str]) -> str:
    """The message for a recipe key that is no ``lenet train`` option, with the closest one when there is one."""
    close = difflib.get_close_matches(key, known, n=1)
    return f"sets {key!r}, which is not a lenet train option" + (f"; did you mean {close[0]!r}?" if close else "")
