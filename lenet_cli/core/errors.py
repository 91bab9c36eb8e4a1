"""The project's own error type for expected failures.

Worker modules raise :class:`LenetError` with a message that says what went
wrong and how to fix it; the CLI turns it into a one-line ``Error: ...`` on
stderr and exit code 1. Anything else is a bug and keeps its traceback.
"""


class LenetError(Exception):
    """An expected failure (bad file, bad data, missing model) with an actionable message."""
