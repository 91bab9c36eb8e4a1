"""The optional packages a runtime needs, and the one-line error that names them all."""

from __future__ import annotations

import importlib.util

from lenet_cli.core.errors import MissingExtra

EXTRA_HINTS = {
    "onnx": "pip install 'lenet-cli[onnx]'",
    "litert": "pip install 'lenet-cli[litert]'",
}


def missing_extra(extra: str, what: str) -> MissingExtra:
    """The one-line error for an optional dependency that is not installed."""
    return MissingExtra(f"{what} needs the {extra} extra: {EXTRA_HINTS[extra]}", hint=EXTRA_HINTS[extra])


def module_missing(module: str) -> bool:
    """True when ``module`` cannot be imported here (checked without importing it)."""
    return importlib.util.find_spec(module) is None
