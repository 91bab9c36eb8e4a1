"""The rich consoles lenet writes through: one for people (stderr), one for tables of data (stdout).

In a terminal rich fits text to the window. Written to a file or a pipe, it
would wrap every line at 80 columns, splitting an epoch line or a URL in two;
so off a terminal the stderr console prints each line whole (rich's
``soft_wrap``: no word wrapping, no cropping), and the stdout console lays
tables out as wide as their content needs.
"""

from __future__ import annotations

from rich.console import Console

UNBOUNDED_WIDTH = 10_000  # columns a table may take off a terminal: wide enough for any row lenet prints


def stderr_console(quiet: bool = False) -> Console:
    """The console for progress, notes and warnings meant for people (stderr).

    Args:
        quiet: print nothing (``--quiet``).
    """
    console = Console(stderr=True, quiet=quiet)
    if not console.is_terminal:
        console.soft_wrap = True
    return console


def stdout_console() -> Console:
    """The console for tables printed as a command's result (stdout): never squeezed to 80 columns in a pipe."""
    console = Console()
    if not console.is_terminal:
        console = Console(width=UNBOUNDED_WIDTH, soft_wrap=True)
    return console
