"""Rank 7, the command line: Click commands that parse, call :mod:`lenet_cli.api`, and present the result.

``lenet = "lenet_cli.cli:main"`` is the console script.
"""

from lenet_cli.cli.main import cli, main

__all__ = ["cli", "main"]
