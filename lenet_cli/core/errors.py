"""The project's own error types for expected failures.

Lower layers raise a :class:`LenetError` subclass with a message that says
what went wrong and how to fix it; the command line turns it into one
``Error: ...`` line on stderr and the class's ``exit_code``, so each code
means one thing to a shell script (docs/guides/reliability.md, "Exit codes"). Anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations

# Exit codes, one meaning each (docs/guides/reliability.md); 130 / 143 are a signal's 128 + number, as shells report them.
EXIT_ERROR = 1  # a handled error: a bad or missing file, bad data, an unloadable model
EXIT_USAGE = 2  # a value or combination the command cannot take (Click's usage errors, BadValue)
EXIT_MISSING_EXTRA = 3  # an optional dependency is not installed: the message names the pip command
EXIT_BELOW_BAR = 4  # the command worked, and the model missed the accuracy bar it was given (a CI gate)
# a shared store (lenet tune's database) went away mid-command: run the same command again once it is back
EXIT_STORAGE_LOST = 5


class LenetError(Exception):
    """An expected failure (bad file, bad data, missing model) with an actionable message.

    Args:
        message: What went wrong, and how to fix it, in one line.
        hint: A further step a caller may show (an install command, say), or None.
        mentions: The request fields the message names, as a Python caller spells them (``init_from='runs/a'``,
            ``epochs``): a front end with its own spelling says them its own way (the command line: ``--init-from
            runs/a``, ``--epochs``), so the message uses a mentioned field's name for that field only.
    """

    exit_code = EXIT_ERROR
    mentions: tuple[str, ...] = ()

    def __init__(self, message: str = "", hint: str | None = None, *, mentions: tuple[str, ...] = ()):
        super().__init__(message)
        self.hint = hint
        self.mentions = tuple(mentions)


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

    exit_code = EXIT_MISSING_EXTRA


class BelowBar(LenetError):
    """The model was scored, and its accuracy is below the bar the caller set: a weak model, not a broken pipeline."""

    exit_code = EXIT_BELOW_BAR


class StorageLost(LenetError):
    """A shared store went away mid-command (``lenet tune``'s study database): run the same command again once it is back."""

    exit_code = EXIT_STORAGE_LOST


class BadValue(LenetError):
    """A value the caller chose that cannot work with this model or data.

    ``field`` names the parameter (``top_k``), never a command-line flag: the
    command line maps it to its option, and exits 2 as for any usage error.
    """

    exit_code = EXIT_USAGE

    def __init__(self, field: str, message: str, *, mentions: tuple[str, ...] = ()):
        super().__init__(message, mentions=mentions)
        self.field = field
