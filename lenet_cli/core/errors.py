"""The project's own error types for expected failures.

Lower layers raise a :class:`LenetError` subclass with a message that says
what went wrong and how to fix it; the command line turns it into one
``Error: ...`` line on stderr and exit code 1 (exit 2 for a
:class:`BadValue`, which names the option to fix). Anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class LenetError(Exception):
    """An expected failure (bad file, bad data, missing model) with an actionable message.

    Args:
        message: What went wrong, and how to fix it, in one line.
        hint: A further step a caller may show (an install command, say), or None.
    """

    def __init__(self, message: str = "", hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class DataError(LenetError):
    """A dataset that cannot be found, read or used: missing files, bad IDX, a broken picture folder."""


class ModelError(LenetError):
    """A model that cannot be found, loaded or trusted: unknown format, unsafe file, missing metadata."""


class RunError(LenetError):
    """A run directory that cannot be made, resumed or read."""


class ExportError(LenetError):
    """An export that cannot be written or failed its verification."""


class MissingExtra(LenetError):
    """An optional dependency is not installed; ``hint`` is the pip command that installs it."""


class BadValue(LenetError):
    """A value the caller chose that cannot work with this model or data.

    ``field`` names the parameter (``top_k``), never a command-line flag: the
    command line maps it to its option, and exits 2 as for any usage error.
    """

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
